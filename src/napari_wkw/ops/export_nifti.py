"""Export a box of a WKW layer as one NIFTI file (``.nii`` or ``.nii.gz``), streamed.

The header is nibabel's (NIfTI-1; NIfTI-2 when an axis is longer than NIfTI-1's
32767): the voxel type (RGB layers as NIfTI's RGB24), the shape (x, y, z: the file's
axes are the dataset's), ``pixdim`` the voxel size times the mag, in millimetres or
micrometres (``xyzt_units``), and an affine (qform and sform, code "aligned") that puts
voxel (0, 0, 0) at the box's corner. ``convert-nifti`` reads all of it back: the file's
axes as x, y, z and the voxel size from pixdim and its unit, so a round trip keeps the
voxels exactly and the voxel size to float32's precision (pixdim is float32: 7 digits).

Streaming, not a memory bound: NIfTI stores voxels with x fastest, then y, then z,
which is the memory order of our (z, y, x) arrays, so a z-slab of the box is one
contiguous byte range of the file. Work units read slabs (one 32-voxel block deep,
thinner, down to rows of one slice, when a slab would exceed :data:`UNIT_BYTES`) and

- ``.nii``: write them at their offset into the output file, sized up front;
- ``.nii.gz``: compress each into a gzip member of its own, in parallel; the members
  are then concatenated behind the header's member (a gzip file may hold several
  members: gzip, zlib's ``gunzip`` mode, Python's ``gzip`` and nibabel read it whole).

Memory is one slab per worker whatever the box; any strategy of the job runner works
(units write files on the shared filesystem). Everything is written under a hidden
name beside the output and renamed into place at the end; a failed or cancelled export
leaves nothing behind (exports start over: there is no partial file to resume).
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.dataset import Layer, MagView
from ..core.errors import TargetExistsError, WKWError
from ..core.geometry import BoundingBox, Mag
from ..core.progress import CancelToken, ProgressCallback, check_cancelled
from ..core.staging import left_by_dead_process, owner_tag
from ..jobs.runner import JobSettings, Runner
from .common import open_dataset, select_layers, select_mags

#: bytes one unit reads at most (a slab of the box)
UNIT_BYTES = 64 * 2**20
#: gzip level of .nii.gz (nibabel's default: fast, most of the gain)
GZIP_LEVEL = 1
#: NIfTI length units -> nanometres per unit, and nibabel's names for them
UNITS = {"mm": (1e6, "mm"), "um": (1e3, "micron")}
NIFTI1_MAX = 32767
RGB24 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])


def is_nifti_output(path: str | os.PathLike) -> bool:
    return Path(path).name.lower().endswith((".nii", ".nii.gz"))


@dataclass(frozen=True)
class NiftiExport:
    """What was written: the file, its shape (x, y, z), voxel type and voxel size (nm)."""

    path: Path
    layer: str
    mag: Mag
    box: BoundingBox  # in the exported mag's voxels
    dtype: str
    voxel_size: tuple[float, float, float]


@dataclass(frozen=True)
class SlabUnit:
    """One slab of the export: read ``box`` of the mag, write its bytes."""

    source: str  # mag folder
    box: BoundingBox  # the mag's voxels
    output: str  # .nii: the file to write into; .nii.gz: the gzip member file to create
    offset: int  # .nii: byte offset in the output; -1 for a member file
    dtype: str  # little-endian voxel type written


def write_slab(unit: SlabUnit) -> int:
    """Read the slab and write its bytes; returns the bytes of voxels written."""
    data = MagView.at(Path(unit.source)).read(unit.box)
    check_cancelled()
    data = np.ascontiguousarray(data, dtype=np.dtype(unit.dtype))
    payload = memoryview(data).cast("B")
    if unit.offset >= 0:
        descriptor = os.open(unit.output, os.O_WRONLY)
        try:
            written = 0
            while written < len(payload):
                written += os.pwrite(descriptor, payload[written:], unit.offset + written)
        finally:
            os.close(descriptor)
    else:
        partial = f"{unit.output}.{owner_tag()}.partial"
        with (
            open(partial, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as out,
        ):
            out.write(payload)
        os.replace(partial, unit.output)
    return len(payload)


def nifti_header(shape, dtype: np.dtype, voxel_size, mag: Mag, box: BoundingBox, unit: str, segmentation: bool):
    """nibabel's header for the export (NIfTI-2 only when NIfTI-1 cannot hold the shape)."""
    import nibabel as nib

    per_unit, name = UNITS[unit]
    header = nib.Nifti2Header() if max(shape) > NIFTI1_MAX else nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(shape)
    zooms = [float(v) * m / per_unit for v, m in zip(voxel_size, mag.xyz)]
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = [corner * zoom for corner, zoom in zip(box.topleft, zooms)]
    header.set_qform(affine, code="aligned")
    header.set_sform(affine, code="aligned")
    header.set_zooms(zooms)
    header.set_xyzt_units(xyz=name)
    if segmentation:
        header.set_intent("label")
    header["descrip"] = b"napari-wkw export"
    return header


def export_nifti(
    path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    layer_name: str | None = None,
    mag: Mag | str | int | None = None,
    bbox: BoundingBox | None = None,
    unit: str = "mm",
    overwrite: bool = False,
    jobs: JobSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> NiftiExport:
    """Write ``bbox`` (mag-1 voxels; default: the layer's box) of a layer's ``mag``
    (default: its finest) as the NIFTI file ``output`` (``.nii`` or ``.nii.gz``)."""
    dataset = open_dataset(path)
    layer = _one_layer(dataset, layer_name)
    view = select_mags(layer, [Mag.parse(mag)] if mag is not None else None)[0]
    if unit not in UNITS:
        raise WKWError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}")
    box = bbox if bbox is not None else layer.bounding_box
    if box.is_empty:
        raise WKWError(f"{layer.path}: the box to export is empty; give --bbox")
    box = box.in_mag(view.mag)
    dtype = _nifti_dtype(layer)
    output = Path(output).expanduser().absolute()
    if not is_nifti_output(output):
        raise WKWError(f"{output}: the output must be a .nii or .nii.gz file")
    if output.is_dir():
        raise TargetExistsError(f"{output}: is a folder; the output must be a file")
    if output.exists() and not overwrite:
        raise TargetExistsError(f"{output}: exists already (pass --overwrite to replace it)")
    if not output.parent.is_dir():
        raise WKWError(f"{output.parent}: no such folder")

    header = nifti_header(box.size, dtype, dataset.voxel_size, view.mag, box, unit, layer.category == "segmentation")
    stream = io.BytesIO()
    header.write_to(stream)
    head = stream.getvalue()
    start = int(header["vox_offset"])
    head += b"\0" * (start - len(head))
    compressed = output.name.lower().endswith(".gz")
    partial = output.with_name(f".{output.name}.partial-{owner_tag()}")
    parts = output.with_name(f".{output.name}.parts.partial-{owner_tag()}")
    _remove_stale(output)
    slabs = _slabs(box, view, _voxel_bytes(dtype))
    written_dtype = "|u1" if dtype == RGB24 else dtype.newbyteorder("<").str
    try:
        if compressed:
            parts.mkdir()
            units = [
                SlabUnit(str(view.path), slab, str(parts / f"{i:08d}.gz"), -1, written_dtype)
                for i, slab in enumerate(slabs)
            ]
        else:
            with open(partial, "wb") as file:
                file.write(head)
                file.truncate(start + int(np.prod(box.size, dtype=np.int64)) * _voxel_bytes(dtype))
            units = [
                SlabUnit(str(view.path), slab, str(partial), start + _offset(box, slab, dtype), written_dtype)
                for slab in slabs
            ]
        with Runner(jobs, progress, cancel) as runner:
            runner.map(write_slab, units, f"exporting {layer.name} mag {view.mag.folder_name()} to NIFTI")
            if compressed:
                runner.cancel.raise_if_cancelled()
                _concatenate(partial, head, [Path(unit.output) for unit in units])
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    return NiftiExport(output, layer.name, view.mag, box, str(dtype), tuple(dataset.voxel_size))  # type: ignore[arg-type]


def _one_layer(dataset, layer_name: str | None) -> Layer:
    if layer_name is None and len(dataset.layers) > 1:
        raise WKWError(f"{dataset.path}: which layer? give --layer-name ({', '.join(dataset.layers)})")
    return select_layers(dataset, layer_name)[0]


def _nifti_dtype(layer: Layer) -> np.dtype:
    if layer.num_channels == 1:
        return np.dtype(layer.dtype)
    if layer.is_rgb:
        return RGB24
    raise WKWError(
        f"{layer.path}: layer {layer.name!r} has {layer.num_channels} channels of {layer.dtype}; NIFTI export "
        "writes one channel or RGB"
    )


def _voxel_bytes(dtype: np.dtype) -> int:
    return 3 if dtype == RGB24 else dtype.itemsize


def _offset(box: BoundingBox, slab: BoundingBox, dtype: np.dtype) -> int:
    """Byte offset of ``slab`` (whole rows of the box) in the voxel data (x fastest)."""
    width, height, _ = box.size
    dz = slab.topleft[2] - box.topleft[2]
    dy = slab.topleft[1] - box.topleft[1]
    return ((dz * height + dy) * width) * _voxel_bytes(dtype)


def _slabs(box: BoundingBox, view: MagView, voxel_bytes: int) -> list[BoundingBox]:
    """Contiguous pieces of the file: z-slabs on the block grid, or row bands of one slice."""
    width, height, depth = box.size
    plane = width * height * voxel_bytes
    block = view.header.block_len
    if plane <= UNIT_BYTES:
        step = max(1, min(block, UNIT_BYTES // plane))
        slabs, z = [], box.topleft[2]
        while z < box.bottomright[2]:
            end = min(box.bottomright[2], (z // step + 1) * step)  # on the block grid: reads whole blocks
            slabs.append(BoundingBox((box.topleft[0], box.topleft[1], z), (width, height, end - z)))
            z = end
        return slabs
    rows = max(1, UNIT_BYTES // (width * voxel_bytes))
    return [
        BoundingBox((box.topleft[0], y, z), (width, min(rows, box.bottomright[1] - y), 1))
        for z in range(box.topleft[2], box.bottomright[2])
        for y in range(box.topleft[1], box.bottomright[1], rows)
    ]


def _concatenate(partial: Path, head: bytes, members: list[Path]) -> None:
    """The header's gzip member followed by the slabs' members, into ``partial``."""
    with open(partial, "wb") as out:
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as first:
            first.write(head)
        for member in members:
            check_cancelled()
            with open(member, "rb") as part:
                shutil.copyfileobj(part, out, 16 * 2**20)
            member.unlink()


def _remove_stale(output: Path) -> None:
    """Partial files and part folders that killed exports to the same file left (on this host)."""
    for stale in output.parent.glob(f".{output.name}.*partial-*"):
        if left_by_dead_process(stale):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


__all__ = ["NiftiExport", "export_nifti", "is_nifti_output", "nifti_header"]
