"""WEBKNOSSOS annotations: an NML file alone, or a ZIP of the NML and one data ZIP per volume.

A proofreader downloads an annotation from WEBKNOSSOS as a ZIP: one ``.nml`` (dataset
name, voxel size, skeleton trees, and per volume layer its name, id, largest segment id,
segments and the ``location`` of its data) and, per volume layer, a data ZIP
(:mod:`.annotation_volume`). A skeleton-only annotation is the ``.nml`` alone. A bare data
ZIP (``data_Volume.zip`` taken out of its annotation) opens too, as one volume.

Opening reads the NML and the ZIPs' directories, never voxels.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .annotation_volume import AnnotationVolume, detect_format
from .errors import DatasetFormatError, NotWKWError, WKWWarning
from .nml import Nml, Parameters, Volume, read_nml
from .properties import PROPERTIES_FILE, parse_properties
from .safe_zip import SafeZip, is_zip_file

NML_SUFFIX = ".nml"


@dataclass
class Annotation:
    """An opened annotation: its NML and one :class:`AnnotationVolume` per volume layer."""

    path: Path
    nml: Nml
    volumes: list[AnnotationVolume]
    archive: SafeZip | None = None

    @classmethod
    def open(cls, path: str | os.PathLike, *, tolerant: bool = False) -> Annotation:
        """Open ``path`` (``.nml`` or ``.zip``); ``tolerant`` volumes show corrupt buckets as zeros."""
        path = Path(path).expanduser()
        if not path.exists():
            raise NotWKWError(f"{path}: no such file")
        if path.suffix.lower() == NML_SUFFIX:
            nml = read_nml(path)
            for volume in nml.volumes:
                _warn(
                    f"{path}: the data of volume {volume.name or volume.id!r} ({volume.location}) is in the "
                    "annotation's ZIP, not in the NML alone; open the ZIP to see it"
                )
            return cls(path, nml, [_volume(path, nml.parameters, volume, None, tolerant) for volume in nml.volumes])
        if not is_zip_file(path):
            raise NotWKWError(f"{path}: neither an NML file nor a ZIP")
        archive = SafeZip.open(path)
        try:
            return cls._from_zip(path, archive, tolerant)
        except BaseException:
            archive.close()
            raise

    @classmethod
    def _from_zip(cls, path: Path, archive: SafeZip, tolerant: bool) -> Annotation:
        nml_names = [name for name in archive.names() if name.lower().endswith(NML_SUFFIX) and "/" not in name]
        if len(nml_names) > 1:
            raise DatasetFormatError(
                f"{path}: holds {len(nml_names)} NML files ({', '.join(nml_names)}); unpack it and open them one by one"
            )
        if not nml_names:
            return cls._bare_volume(path, archive, tolerant)
        nml = read_nml(archive.read(nml_names[0]), name=f"{path}!{nml_names[0]}")
        volumes = []
        for volume in nml.volumes:
            location = _entry_name(volume.location)
            data = None
            if location and location in archive:
                data = archive.open_nested(location)
            elif location:
                _warn(
                    f"{path}: volume {volume.name or volume.id!r} names its data {location!r}, which the ZIP "
                    "does not hold; it opens empty"
                )
            volumes.append(_volume(path, nml.parameters, volume, data, tolerant))
        return cls(path, nml, volumes, archive)

    @classmethod
    def _bare_volume(cls, path: Path, archive: SafeZip, tolerant: bool) -> Annotation:
        """A data ZIP on its own: one volume; voxel size from its properties when it has them."""
        data_format = detect_format(archive)
        if data_format is None:
            raise NotWKWError(
                f"{path}: a ZIP without an NML file or volume data (no .nml, {PROPERTIES_FILE} or header.wkw)"
            )
        parameters = Parameters(dataset_name=path.stem)
        if PROPERTIES_FILE in archive:
            properties = parse_properties(archive.read(PROPERTIES_FILE, 16 << 20), Path(f"{path}!{PROPERTIES_FILE}"))
            parameters.voxel_size, parameters.unit = properties.voxel_size, properties.unit
        else:
            _warn(f"{path}: a bare WKW volume ZIP does not state its voxel size; using 1, 1, 1")
        volume = Volume(id=0, name=path.stem, format=data_format)
        nml = Nml(parameters=parameters, volumes=[volume])
        return cls(path, nml, [_volume(path, parameters, volume, archive, tolerant)], archive)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.nml.parameters.voxel_size)  # type: ignore[return-value]

    @property
    def unit(self) -> str:
        return self.nml.parameters.unit

    @property
    def dataset_name(self) -> str:
        return self.nml.parameters.dataset_name

    def volume(self, name: str | None = None) -> AnnotationVolume:
        """The volume named ``name`` (its NML name); without a name, the only one."""
        names = [volume.volume_name for volume in self.volumes]
        if name is None:
            if len(self.volumes) != 1:
                listed = ", ".join(repr(n) for n in names) or "none"
                raise DatasetFormatError(f"{self.path}: holds {len(self.volumes)} volume layers ({listed}); name one")
            return self.volumes[0]
        for volume in self.volumes:
            if volume.volume_name == name:
                return volume
        raise DatasetFormatError(f"{self.path}: no volume layer {name!r} (volume layers: {', '.join(names) or 'none'})")

    def close(self) -> None:
        for volume in self.volumes:
            if volume.data is not None and volume.data is not self.archive:
                volume.data.close()
        if self.archive is not None:
            self.archive.close()

    def __enter__(self) -> Annotation:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _volume(path: Path, parameters: Parameters, volume: Volume, data: SafeZip | None, tolerant: bool):
    name = volume.name or f"Volume {volume.id}"
    return AnnotationVolume(
        str(path),
        name,
        data,
        tuple(parameters.voxel_size),  # type: ignore[arg-type]
        parameters.unit,
        data_format=volume.format if data is not None else None,
        largest_segment_id=volume.largest_segment_id,
        tolerant=tolerant,
    )


def _entry_name(location: str | None) -> str | None:
    """An NML ``location`` as a ZIP entry name (``./data_Volume.zip`` -> ``data_Volume.zip``)."""
    if not location:
        return None
    return str(PurePosixPath(location.replace("\\", "/")))


def looks_like_annotation(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an NML or a ZIP holding an NML or volume data; never raises.

    Reads only a ZIP's central directory, so napari may ask it of every ``.zip`` dropped.
    """
    try:
        path = Path(path)
        if path.suffix.lower() == NML_SUFFIX:
            return path.is_file()
        if path.suffix.lower() != ".zip" or not is_zip_file(path):
            return False
        import zipfile

        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                lowered = name.lower()
                if lowered.endswith(NML_SUFFIX) or lowered in (PROPERTIES_FILE, "1/header.wkw"):
                    return True
                if lowered.endswith("/header.wkw") and lowered.count("/") == 1:
                    return True
        return False
    except Exception:
        return False


def _warn(message: str) -> None:
    warnings.warn(message, WKWWarning, stacklevel=3)
