"""Conversions into WKW: image stacks, tiled stacks, KNOSSOS cubes, NIFTI, auto-detection.

Each input format is a :class:`~napari_wkw.convert.source.VolumeSource` (size, voxel
type, ``read(box)``); one engine (:mod:`napari_wkw.convert.engine`) cubes any source
into a layer, resumably, and builds its pyramid.
"""
