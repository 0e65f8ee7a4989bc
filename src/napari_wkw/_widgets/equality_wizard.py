"""Check two datasets for equality: the verdict in the widget, the differing blocks in the viewer.

Where voxels differ, a labels layer marks each differing WKW block of the compared mag
(one uint8 per block, over the differing blocks' extent only), placed so that each
marker covers exactly its block's voxels in the layers the reader opens.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import Label, LineEdit, TextEdit

from ..core.dataset import Dataset
from .dataset_fields import DatasetChoice
from .fields import dataset_problem, parse_mag_text, path_edit, path_of
from .wizard import Wizard

_EQUAL_STYLE = "color: #98c379; font-weight: bold;"
_DIFFERENT_STYLE = "color: #e06c75; font-weight: bold;"
#: a marker with more blocks than this groups blocks (2 x 2 x 2, ...) so it stays small
MAX_MARKER_BLOCKS = 2**26


class CheckEqualityWizard(Wizard):
    """Compare two datasets voxel by voxel (`napari-wkw check-equality`)."""

    title = "equality check"
    intro = (
        "Compare two datasets: layers, element classes, bounding boxes, mags and every voxel. "
        "Compression and file sizes do not count. Differing blocks are marked in a labels layer."
    )
    run_text = "Compare"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # noqa: F821
        self.choice = DatasetChoice(viewer, label="dataset A")
        self.other = path_edit("dataset B", mode="d", tooltip="The WKW dataset to compare with")
        self.mag = LineEdit(label="mag", tooltip="Only this mag, e.g. 2-2-1; empty: all mags")
        self.mag.native.setPlaceholderText("all")
        super().__init__(viewer, [*self.choice.widgets, self.other, self.mag])
        self.verdict = Label(value="", label="", visible=False)
        self.report = TextEdit(value="", label="", visible=False)
        self.report.native.setReadOnly(True)
        self.report.native.setMaximumHeight(160)
        self.extend([self.verdict, self.report])
        self.validate()

    def problems(self) -> list[str]:
        b = path_of(self.other)
        found = [p for p in (self.choice.problem(), dataset_problem(b, "dataset B")) if p]
        if not found and self.choice.path.absolute() == b.absolute():
            found.append("dataset A and dataset B are the same folder; choose another one to compare with")
        try:
            parse_mag_text(self.mag.value)
        except ValueError as error:
            found.append(str(error))
        return found

    def task(self):
        from ..ops.equality import check_equality

        a, b, jobs = self.choice.path, path_of(self.other), self.jobs()
        options = {"layer_name": self.choice.layer_name, "mag": parse_mag_text(self.mag.value)}
        self.verdict.visible = self.report.visible = False

        def run(progress, cancel):
            report = check_equality(a, b, **options, jobs=jobs, progress=progress, cancel=cancel)
            return report, difference_markers(report)

        return run

    def succeeded(self, result) -> str:
        report, markers = result
        lines = report.format().splitlines()
        self.verdict.value = "equal" if report.equal else f"different: {len(report.differences)} difference(s)"
        self.verdict.native.setStyleSheet(_EQUAL_STYLE if report.equal else _DIFFERENT_STYLE)
        self.report.value = "\n".join(lines)
        self.verdict.visible = self.report.visible = True
        for data, kwargs in markers:
            if kwargs["name"] in self.viewer.layers:
                self.viewer.layers.remove(kwargs["name"])  # from an earlier run
            self.viewer.add_labels(data, colormap=_marker_colormap(), **kwargs)
        if markers and self.viewer.dims.ndim >= 3:  # show the slice of the first differing block
            self.viewer.dims.set_point(self.viewer.dims.ndim - 3, markers[0][1]["metadata"]["wkw_first_difference"][0])
        if report.equal:
            return f"{report.a.name} and {report.b.name} are equal"
        marked = f"; {len(markers)} labels layer(s) mark the differing blocks" if markers else ""
        return f"{report.a.name} and {report.b.name} differ: {len(report.differences)} difference(s){marked}"


def _marker_colormap():
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict={None: "transparent", 1: "magenta"})


def difference_markers(report) -> list[tuple[np.ndarray, dict]]:
    """(data, kwargs) of a labels layer per mag whose voxels differ: 1 in each differing block.

    World coordinates as the reader's layers of dataset A: mag-1 voxel ``v`` is centred at
    ``voxel_size * v``, so block ``j`` (mag ``m``, edge ``L`` voxels) spans from
    ``voxel_size * (m * L * j - 1/2)``; its marker pixel, ``voxel_size * m * L`` wide, is
    centred half a block minus half a voxel further on.
    """
    found = [d for d in report.differences if d.kind == "voxels" and d.blocks is not None and len(d.blocks)]
    if not found:
        return []
    dataset = Dataset.open(report.a)
    voxel = np.array(dataset.voxel_size, dtype=float)  # x, y, z
    markers = []
    for difference in found:
        blocks, group = difference.blocks.astype(np.int64), 1
        low = blocks.min(axis=0)
        while np.prod((blocks.max(axis=0) - low) // group + 1, dtype=np.float64) > MAX_MARKER_BLOCKS:
            group *= 2
        cells = blocks // group
        low = cells.min(axis=0)
        shape = cells.max(axis=0) - low + 1
        data = np.zeros(tuple(shape[::-1]), np.uint8)  # z, y, x
        local = cells - low
        data[local[:, 2], local[:, 1], local[:, 0]] = 1
        mag = np.array(difference.mag.xyz, dtype=float)
        edge = mag * difference.block_len * group  # mag-1 voxels per marker pixel, x, y, z
        scale = voxel * edge
        translate = voxel * (edge * low + edge / 2 - 0.5)
        first = translate + scale * local[0]  # world x, y, z of the first differing block (lowest z)
        where = f"{difference.layer} mag {difference.mag.folder_name()}"
        name = f"differences: {where} ({report.a.name} vs {report.b.name})"
        markers.append(
            (
                data,
                {
                    "name": name,
                    "scale": tuple(scale[::-1]),
                    "translate": tuple(translate[::-1]),
                    "axis_labels": ("z", "y", "x"),
                    "units": (dataset.properties.unit,) * 3,
                    "opacity": 0.6,
                    "metadata": {
                        "wkw_difference_blocks": int(len(blocks)),
                        "wkw_block_group": group,
                        "wkw_first_difference": tuple(float(v) for v in first[::-1]),  # world z, y, x
                    },
                },
            )
        )
    return markers
