"""Annotation files for tests: the real downloads in tests/data/annotations, and the older
WKW-bucket variant built with libwkw (the reference WKW codec) in WEBKNOSSOS' layout."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import wkw

from napari_wkw.core.nml import Nml, Parameters, Volume, nml_bytes

from .conftest import DATA

L4_SAMPLE = DATA / "annotations" / "l4_sample__explorational__suser__94b271.zip"
EMPTY_WKW = DATA / "annotations" / "empty_volume_annotation.zip"
SKELETON = DATA / "annotations" / "test_a.nml"
#: what the l4 sample's volume holds: label 1 in buckets from (3296, 3392, 1024) to (4000, 3808, 1056)
L4_PAINTED = ((3296, 3392, 1024), (704, 416, 32))


def wkw_bucket_zip(folder: Path, labels: np.ndarray, offset: tuple[int, int, int], mags=((1, 1, 1),)) -> bytes:
    """A data ZIP of the WKW variant: per mag ``<mag>/header.wkw`` and one LZ4 file of one
    32^3 block per painted bucket (libwkw writes them; empty buckets are left out, as
    WEBKNOSSOS does). ``labels`` is (z, y, x) at ``offset`` (x, y, z); coarser mags are
    plain subsamples (the reader does not care how they were made)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for mag in mags:
            name = "-".join(str(v) for v in mag) if len(set(mag)) > 1 else str(mag[0])
            root = folder / name
            header = wkw.Header(labels.dtype, block_len=32, file_len=1, block_type=wkw.Header.BLOCK_TYPE_LZ4)
            with wkw.Dataset.create(str(root), header) as dataset:
                part = labels[:: mag[2], :: mag[1], :: mag[0]]
                start = [o // m for o, m in zip(offset, mag)]
                # libwkw writes compressed files whole: pad to the bucket grid
                first = [a // 32 * 32 for a in start]
                stop = [-(-(a + s) // 32) * 32 for a, s in zip(start, part.shape[::-1])]
                padded = np.zeros([b - a for a, b in zip(first, stop)][::-1], labels.dtype)
                padded[tuple(slice(a - f, a - f + s) for a, f, s in zip(start[::-1], first[::-1], part.shape))] = part
                dataset.write(first, np.asfortranarray(padded.transpose(2, 1, 0)))
            archive.write(root / "header.wkw", f"{name}/header.wkw")
            for file in sorted(root.glob("z*/y*/x*.wkw")):
                with wkw.Dataset.open(str(root)) as dataset:
                    z, y, x = (
                        int(p.name.lstrip("zyx").removesuffix(".wkw")) for p in (file.parent.parent, file.parent, file)
                    )
                    if not dataset.read((x * 32, y * 32, z * 32), (32, 32, 32)).any():
                        continue
                archive.write(file, file.relative_to(folder).as_posix())
    return buffer.getvalue()


def annotation_zip(
    path: Path,
    data_zip: bytes,
    *,
    voxel_size=(11.24, 11.24, 25.0),
    fmt: str | None = None,
    largest: int | None = None,
    dataset_name: str = "test_dataset",
    extra: dict | None = None,
) -> Path:
    """An annotation ZIP: an NML naming one volume ``Volume`` and its data ZIP."""
    nml = Nml(
        parameters=Parameters(dataset_name=dataset_name, voxel_size=tuple(float(v) for v in voxel_size)),
        volumes=[Volume(id=0, name="Volume", location="data_Volume.zip", format=fmt, largest_segment_id=largest)],
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{path.stem}.nml", nml_bytes(nml))
        archive.writestr("data_Volume.zip", data_zip)
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return path


def blob_labels(shape=(40, 100, 120), seed=3) -> np.ndarray:
    """A few box-shaped segments with holes of zeros, (z, y, x) uint32."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint32)
    for label in range(1, 9):
        z, y, x = (int(rng.integers(0, s - 8)) for s in shape)
        dz, dy, dx = (int(rng.integers(4, 24)) for _ in range(3))
        labels[z : z + dz, y : y + dy, x : x + dx] = label
    return labels
