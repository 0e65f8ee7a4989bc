"""WEBKNOSSOS annotations: both data variants open lazily and exactly, writing round-trips,
and bad files are one clear error (or, in a viewer, zeros and a warning)."""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile

import numpy as np
import pytest

from napari_wkw.core import BoundingBox, CancelledError, CancelToken, DatasetFormatError, Mag, WKWError, WKWWarning
from napari_wkw.core.annotation import Annotation, looks_like_annotation
from napari_wkw.core.annotation_write import VolumeToWrite, default_mags, write_volume_annotation
from napari_wkw.core.downsample import downsample_data
from napari_wkw.core.nml import Segment, read_nml
from napari_wkw.core.zarr_mag import ZarrMagView

from ..annotation_files import (
    EMPTY_WKW,
    L4_PAINTED,
    L4_SAMPLE,
    SKELETON,
    annotation_zip,
    blob_labels,
    wkw_bucket_zip,
)


def _extract(zip_path, folder):
    with zipfile.ZipFile(zip_path) as outer:
        inner = zipfile.ZipFile(io.BytesIO(outer.read("data_Volume.zip")))
        inner.extractall(folder)
    return folder


# ---- reading the real downloads ---------------------------------------------------------------


def test_l4_sample_opens_with_its_nml_and_zarr3_volume():
    with Annotation.open(L4_SAMPLE) as annotation:
        assert annotation.dataset_name == "l4_sample"
        assert annotation.voxel_size == pytest.approx((11.24, 11.24, 28.0))
        assert len(annotation.nml.trees) == 1 and annotation.nml.node_count == 3
        volume = annotation.volume()
        assert volume.volume_name == "Volume" and volume.data_format == "zarr3"
        layer = volume.layer
        assert [m.folder_name() for m in layer.mags] == ["1", "2-2-1", "4-4-1", "8-8-2", "16-16-4"]
        assert layer.properties.largest_segment_id == 1
        assert layer.bounding_box == BoundingBox((3072, 3072, 512), (1024, 1024, 1024))  # the dataset's box
        assert volume.data_box() == BoundingBox(*L4_PAINTED)
        assert len(volume.buckets()) == 111
        assert [len(volume.buckets(mag)) for mag in layer.mags] == [111, 44, 21, 6, 4]


def test_l4_sample_voxels_equal_tensorstore_on_the_unpacked_chunks(tmp_path):
    """Reading buckets straight from the nested ZIPs gives what tensorstore reads from the
    same chunks unpacked onto disk, in every mag."""
    folder = _extract(L4_SAMPLE, tmp_path / "unpacked")
    with Annotation.open(L4_SAMPLE) as annotation:
        layer = annotation.volume().layer
        for mag, view in layer.mags.items():
            direct = ZarrMagView.open_folder(None, mag, folder / "volumeAnnotationData" / mag.folder_name(), "zarr3")
            box = BoundingBox(*L4_PAINTED).in_mag(mag)
            ours = view.read(box)
            np.testing.assert_array_equal(ours, direct.read(box))
            assert set(np.unique(ours)) <= {0, 1}
        painted = layer.mags[Mag(1, 1, 1)].read(BoundingBox(*L4_PAINTED))
        assert int((painted == 1).sum()) == 64576


def test_empty_wkw_annotation_opens_with_its_mags_and_nothing_painted():
    with Annotation.open(EMPTY_WKW) as annotation:
        volume = annotation.volume()
        assert volume.data_format == "wkw"
        assert [m.folder_name() for m in volume.layer.mags] == ["1", "2-2-1", "4-4-1", "8-8-1", "16-16-1"]
        assert volume.data_box().is_empty and len(volume.buckets()) == 0
        assert annotation.voxel_size == (550.0, 550.0, 550.0)


def test_skeleton_nml_opens_without_volumes():
    with Annotation.open(SKELETON) as annotation:
        assert annotation.volumes == [] and len(annotation.nml.trees) == 3
        assert annotation.unit == "micrometer"


def test_looks_like_annotation_claims_only_annotations(tmp_path):
    assert looks_like_annotation(L4_SAMPLE) and looks_like_annotation(EMPTY_WKW) and looks_like_annotation(SKELETON)
    other = tmp_path / "photos.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("a.jpg", b"x")
    (tmp_path / "text.zip").write_text("not a zip")
    for path in (other, tmp_path / "text.zip", tmp_path / "missing.zip", tmp_path):
        assert not looks_like_annotation(path)


# ---- the older WKW-bucket variant -----------------------------------------------------------


@pytest.fixture
def wkw_variant(tmp_path):
    labels = blob_labels()
    offset = (64, 32, 96)
    data = wkw_bucket_zip(tmp_path / "buckets", labels, offset, mags=((1, 1, 1), (2, 2, 1)))
    return annotation_zip(tmp_path / "wkw_variant.zip", data, largest=8), labels, offset


def test_wkw_variant_reads_back_the_labels_exactly(wkw_variant):
    path, labels, offset = wkw_variant
    box = BoundingBox(offset, labels.shape[::-1])
    with Annotation.open(path) as annotation:
        volume = annotation.volume()
        assert volume.data_format == "wkw"  # found from the entries: the NML names no format
        assert list(volume.layer.mags) == [Mag(1, 1, 1), Mag(2, 2, 1)]
        np.testing.assert_array_equal(volume.layer.finest_mag.read(box), labels)
        painted = volume.data_box()
        assert painted.intersection(box) == box.intersection(painted)
        np.testing.assert_array_equal(
            volume.layer.mags[Mag(2, 2, 1)].read(box.in_mag(Mag(2, 2, 1))), labels[:, ::2, ::2]
        )
        assert volume.layer.properties.largest_segment_id == 8


def test_wkw_variant_bucket_of_the_wrong_size_is_an_error_or_zeros_in_a_viewer(tmp_path):
    labels = blob_labels()
    data = wkw_bucket_zip(tmp_path / "buckets", labels, (0, 0, 0))
    inner = zipfile.ZipFile(io.BytesIO(data))
    victim = next(n for n in inner.namelist() if n.endswith(".wkw") and "header" not in n)
    rebuilt = io.BytesIO()
    with zipfile.ZipFile(rebuilt, "w") as out:
        for name in inner.namelist():
            content = inner.read(name)
            out.writestr(name, content[: len(content) // 2] if name == victim else content)
    path = annotation_zip(tmp_path / "cut.zip", rebuilt.getvalue())
    box = BoundingBox((0, 0, 0), labels.shape[::-1])
    with Annotation.open(path) as annotation, pytest.raises(DatasetFormatError, match=f"{victim}: bucket is truncated"):
        annotation.volume().layer.finest_mag.read(box)
    with Annotation.open(path, tolerant=True) as annotation:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = annotation.volume().layer.finest_mag.read(box)
        assert any(issubclass(w.category, WKWWarning) and victim in str(w.message) for w in caught)
        z, y, x = (int(p.lstrip("zyx").removesuffix(".wkw")) for p in victim.split("/")[1:])
        bucket = (slice(z * 32, z * 32 + 32), slice(y * 32, y * 32 + 32), slice(x * 32, x * 32 + 32))
        assert not data[bucket].any()
        others = labels.copy()
        others[bucket] = 0
        np.testing.assert_array_equal(data, others)  # every other bucket reads as it was


# ---- writing --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64", "int32", "int64"])
def test_written_annotation_reads_back_exactly_with_a_mode_pyramid(tmp_path, dtype):
    labels = blob_labels().astype(dtype)
    offset = (37, 5, 70)  # not on the bucket grid
    path = write_volume_annotation(
        tmp_path / "out.zip", VolumeToWrite(labels, offset, name="Cells"), voxel_size=(11.24, 11.24, 28)
    )
    with Annotation.open(path) as annotation:
        volume = annotation.volume("Cells")
        layer = volume.layer
        stored = np.dtype(dtype if dtype.startswith("u") else dtype.replace("int", "uint"))
        assert layer.dtype == stored
        box = BoundingBox(offset, labels.shape[::-1])
        np.testing.assert_array_equal(layer.finest_mag.read(box), labels)
        assert layer.properties.largest_segment_id == int(labels.max())
        mags = list(layer.mags)
        assert mags == default_mags(box, (11.24, 11.24, 28))
        for finer, coarser in zip(mags, mags[1:]):
            factor = tuple(c // f for c, f in zip(coarser.xyz, finer.xyz))
            source_box = box.in_mag(coarser).from_mag(coarser).in_mag(finer).aligned((64, 64, 64))
            source = layer.mags[finer].read(source_box)
            expected = downsample_data(source, factor, "mode")
            target_box = BoundingBox(
                tuple(a // f for a, f in zip(source_box.topleft, factor)),
                tuple(s // f for s, f in zip(source_box.size, factor)),
            )
            np.testing.assert_array_equal(layer.mags[coarser].read(target_box), expected)


def test_written_zip_has_webknossos_layout_and_only_painted_buckets(tmp_path):
    labels = np.zeros((64, 128, 128), np.uint32)
    labels[40:50, 10:20, 100:110] = 7
    path = write_volume_annotation(
        tmp_path / "one_blob.zip",
        VolumeToWrite(labels, (0, 0, 0), segments=[Segment(id=7, name="axon", color=(1.0, 0.0, 0.0, 1.0))]),
        voxel_size=(8, 8, 30),
        dataset_name="my_dataset",
    )
    with zipfile.ZipFile(path) as outer:
        names = outer.namelist()
        assert names == ["one_blob.nml", "data_0_Volume.zip"]
        assert outer.getinfo("data_0_Volume.zip").compress_type == zipfile.ZIP_STORED
        nml = read_nml(outer.read("one_blob.nml"))
        inner = zipfile.ZipFile(io.BytesIO(outer.read("data_0_Volume.zip")))
        entries = inner.namelist()
    assert nml.parameters.dataset_name == "my_dataset" and nml.parameters.voxel_size == (8.0, 8.0, 30.0)
    volume = nml.volumes[0]
    assert (volume.format, volume.location, volume.largest_segment_id) == ("zarr3", "data_0_Volume.zip", 7)
    assert volume.segments[0].name == "axon"
    properties = json.loads(inner.read("datasource-properties.json"))
    layer = properties["dataLayers"][0]
    assert layer["name"] == "volumeAnnotationData" and layer["dataFormat"] == "zarr3"
    assert layer["boundingBox"] == {"topLeft": [0, 0, 0], "width": 128, "height": 128, "depth": 64}
    chunks = [name for name in entries if "/c." in name]
    assert "volumeAnnotationData/1/c.0.3.0.1" in chunks and len([c for c in chunks if "/1/" in c]) == 1
    for mag in layer["mags"]:
        name = "-".join(str(v) for v in mag["mag"]) if len(set(mag["mag"])) > 1 else str(mag["mag"][0])
        metadata = json.loads(inner.read(f"volumeAnnotationData/{name}/zarr.json"))
        assert metadata["codecs"][0] == {"name": "transpose", "configuration": {"order": "F"}}


def test_empty_labels_write_a_valid_annotation_without_buckets(tmp_path):
    path = write_volume_annotation(
        tmp_path / "empty.zip", VolumeToWrite(np.zeros((10, 20, 30), np.uint32)), voxel_size=(1, 1, 1)
    )
    with Annotation.open(path) as annotation:
        volume = annotation.volume()
        assert len(volume.buckets()) == 0 and annotation.nml.volumes[0].largest_segment_id == 0


def test_writing_refuses_what_webknossos_cannot_hold(tmp_path):
    with pytest.raises(WKWError, match="negative value -3"):
        labels = np.zeros((4, 40, 40), np.int32)
        labels[1, 2, 3] = -3
        write_volume_annotation(tmp_path / "neg.zip", VolumeToWrite(labels), voxel_size=(1, 1, 1))
    with pytest.raises(WKWError, match="unsigned integer labels"):
        write_volume_annotation(
            tmp_path / "f.zip", VolumeToWrite(np.zeros((4, 4, 4), np.float32)), voxel_size=(1, 1, 1)
        )
    with pytest.raises(WKWError, match="cannot be negative"):
        write_volume_annotation(
            tmp_path / "o.zip", VolumeToWrite(np.zeros((4, 4, 4), np.uint8), (-1, 0, 0)), voxel_size=(1, 1, 1)
        )
    with pytest.raises(WKWError, match="a .zip file"):
        write_volume_annotation(tmp_path / "x.tif", VolumeToWrite(np.zeros((4, 4, 4), np.uint8)), voxel_size=(1, 1, 1))
    assert sorted(os.listdir(tmp_path)) == []  # nothing half-written


def test_a_cancelled_write_leaves_the_existing_file_as_it_was(tmp_path):
    path = tmp_path / "keep.zip"
    path.write_bytes(L4_SAMPLE.read_bytes())
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(CancelledError):
        write_volume_annotation(path, VolumeToWrite(blob_labels()), voxel_size=(1, 1, 1), cancel=cancel)
    assert path.read_bytes() == L4_SAMPLE.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.zip"]


def test_saving_with_a_template_keeps_the_skeleton(tmp_path):
    with Annotation.open(L4_SAMPLE) as annotation:
        template = annotation.nml
        labels = annotation.volume().layer.finest_mag.read(BoundingBox(*L4_PAINTED))
    path = write_volume_annotation(
        tmp_path / "again.zip",
        VolumeToWrite(labels, L4_PAINTED[0]),
        voxel_size=template.parameters.voxel_size,
        template=template,
    )
    with Annotation.open(path) as again:
        assert again.nml.trees == template.trees and again.dataset_name == "l4_sample"
        np.testing.assert_array_equal(again.volume().layer.finest_mag.read(BoundingBox(*L4_PAINTED)), labels)


# ---- bad files --------------------------------------------------------------------------------


def _rezip(tmp_path, name, entries: dict[str, bytes]):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        for entry, content in entries.items():
            archive.writestr(entry, content)
    return path


def _l4_entries() -> dict[str, bytes]:
    with zipfile.ZipFile(L4_SAMPLE) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_a_climbing_entry_is_refused(tmp_path):
    entries = _l4_entries()
    entries["../escape.txt"] = b"x"
    path = _rezip(tmp_path, "climb.zip", entries)
    with pytest.raises(DatasetFormatError, match=r"climb\.zip: entry '\.\./escape\.txt' climbs out of the archive"):
        Annotation.open(path)
    assert not (tmp_path.parent / "escape.txt").exists()


def test_a_truncated_inner_zip_is_one_error(tmp_path):
    entries = _l4_entries()
    entries["data_Volume.zip"] = entries["data_Volume.zip"][:-300]
    path = _rezip(tmp_path, "cut.zip", entries)
    with pytest.raises(DatasetFormatError, match=r"cut\.zip!data_Volume\.zip: .*(truncated|corrupt)"):
        Annotation.open(path)


@pytest.mark.parametrize(
    ("nml", "message"),
    [
        (b"<things><parameters><scale x='1' y='1' z='1'/></parameters>", "not valid XML"),
        (
            b"<things version='2'><parameters><experiment name='d'/><scale x='1' y='1' z='1'/></parameters></things>",
            "unknown NML version 2",
        ),
    ],
)
def test_a_broken_nml_names_the_file(tmp_path, nml, message):
    entries = _l4_entries()
    del entries["l4_sample__explorational__suser__94b271.nml"]
    entries["broken.nml"] = nml
    path = _rezip(tmp_path, "broken.zip", entries)
    with pytest.raises(DatasetFormatError, match=rf"broken\.zip!broken\.nml: .*{message}"):
        Annotation.open(path)


def test_a_missing_volume_data_opens_empty_with_a_warning(tmp_path):
    entries = _l4_entries()
    del entries["data_Volume.zip"]
    path = _rezip(tmp_path, "nodata.zip", entries)
    with pytest.warns(WKWWarning, match="does not hold; it opens empty"), Annotation.open(path) as annotation:
        assert annotation.volume().layer is None
    assert len(annotation.nml.trees) == 1


def test_a_zip_without_annotation_is_not_ours(tmp_path):
    path = _rezip(tmp_path, "photos.zip", {"a.jpg": b"jpeg"})
    with pytest.raises(WKWError, match="without an NML file or volume data"):
        Annotation.open(path)


def test_a_bare_data_zip_opens_as_one_volume(tmp_path):
    path = tmp_path / "data_Volume.zip"
    path.write_bytes(_l4_entries()["data_Volume.zip"])
    with Annotation.open(path) as annotation:
        volume = annotation.volume()
        assert volume.data_box() == BoundingBox(*L4_PAINTED)
        assert annotation.voxel_size == pytest.approx((11.24, 11.24, 28.0))


def test_a_corrupt_zarr_chunk_is_zeros_and_a_warning_in_a_viewer(tmp_path):
    outer = _l4_entries()
    inner = zipfile.ZipFile(io.BytesIO(outer["data_Volume.zip"]))
    victim = "volumeAnnotationData/1/c.0.110.110.32"
    rebuilt = io.BytesIO()
    with zipfile.ZipFile(rebuilt, "w") as out:
        for name in inner.namelist():
            out.writestr(name, b"\x02\x01garbage" * 20 if name == victim else inner.read(name))
    outer["data_Volume.zip"] = rebuilt.getvalue()
    path = _rezip(tmp_path, "bad_chunk.zip", outer)
    box = BoundingBox(*L4_PAINTED)
    with Annotation.open(path) as annotation, pytest.raises(DatasetFormatError, match="cannot read zarr data"):
        annotation.volume().layer.finest_mag.read(box)
    with Annotation.open(path, tolerant=True) as annotation, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = annotation.volume().layer.finest_mag.read(box)
    assert any("showing zeros" in str(w.message) for w in caught)
    with Annotation.open(L4_SAMPLE) as good:
        expected = good.volume().layer.finest_mag.read(box)
    local = (
        slice(1056 - 1024 - 32, 32),
        slice(110 * 32 - 3392, 111 * 32 - 3392),
        slice(110 * 32 - 3296, 111 * 32 - 3296),
    )
    expected[local] = 0
    np.testing.assert_array_equal(data, expected)  # one chunk lost, all others intact
