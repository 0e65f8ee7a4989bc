"""Run inside the webknossos library's own virtual environment (never imported by the tests).

``python wk_side.py COMMAND ARGS...`` where COMMAND is
- ``read-annotation ZIP OUT_DIR``: load an annotation with webknossos, export each volume
  layer to a dataset and save its mags as .npy plus a JSON of what it found;
- ``read-nml NML OUT_JSON``: the trees, nodes, edges and comments webknossos reads;
- ``write-annotation OUT_ZIP``: write an annotation with a skeleton and a volume layer
  (values from ``volume.npy`` beside OUT_ZIP), as a user of the library would.
"""

import json
import sys
from pathlib import Path

import numpy as np


def read_annotation(path, out):
    import webknossos as wk

    out = Path(out)
    annotation = wk.Annotation.load(path)
    found = {
        "dataset_name": annotation.dataset_name,
        "voxel_size": list(annotation.voxel_size),
        "volumes": [],
        "trees": _trees(annotation.skeleton),
    }
    for index, name in enumerate(annotation.get_volume_layer_names()):
        dataset = wk.Dataset(out / f"volume{index}", voxel_size=annotation.voxel_size)
        layer = annotation.export_volume_layer_to_dataset(dataset, layer_name="exported", volume_layer_name=name)
        box = layer.bounding_box
        mags = {}
        for mag, view in layer.mags.items():
            data = view.read(absolute_bounding_box=box.align_with_mag(mag, ceil=True))[0]
            np.save(out / f"volume{index}_{mag.to_layer_name()}.npy", data.transpose(2, 1, 0))
            mags[mag.to_layer_name()] = list(box.align_with_mag(mag, ceil=True).topleft.to_tuple())
        found["volumes"].append(
            {
                "name": name,
                "largest_segment_id": layer.largest_segment_id,
                "topleft": list(box.topleft.to_tuple()),
                "size": list(box.size.to_tuple()),
                "mags": mags,
            }
        )
    (out / "found.json").write_text(json.dumps(found))


def _trees(skeleton):
    trees = []
    for tree in sorted(skeleton.flattened_trees(), key=lambda t: t.id):
        nodes = sorted(tree.nodes, key=lambda n: n.id)
        trees.append(
            {
                "id": tree.id,
                "name": tree.name,
                "nodes": [[n.id, *[float(v) for v in n.position], n.comment or ""] for n in nodes],
                "edges": sorted(sorted([int(a.id), int(b.id)]) for a, b in tree.edges),
            }
        )
    return trees


def read_nml(path, out):
    import webknossos as wk

    skeleton = wk.Skeleton.load(path)
    Path(out).write_text(json.dumps({"trees": _trees(skeleton), "voxel_size": list(skeleton.voxel_size)}))


def write_annotation(out):
    import webknossos as wk

    volume = np.load(Path(out).with_name("volume.npy"))  # (z, y, x)
    annotation = wk.Annotation(name="from_webknossos", dataset_name="interop_ds", voxel_size=(11.24, 11.24, 28.0))
    group = annotation.skeleton.add_group("cells")
    tree = group.add_tree("axon 1")
    a = tree.add_node(position=(100, 120, 20), comment="start")
    b = tree.add_node(position=(140, 125, 21))
    c = tree.add_node(position=(150, 160, 22))
    tree.add_edge(a, b)
    tree.add_edge(b, c)
    layer = annotation.add_volume_layer(name="Cells", dtype=volume.dtype)
    with layer.edit() as segmentation:
        mag = segmentation.add_mag(1, chunk_shape=32, shard_shape=32)
        mag.write(volume.transpose(2, 1, 0), absolute_offset=(64, 32, 16), allow_resize=True)
        segmentation.downsample(coarsest_mag=wk.Mag("4-4-2"), interpolation_mode="mode", chunk_shape=32, shard_shape=32)
    annotation.save(out)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"read-annotation": read_annotation, "read-nml": read_nml, "write-annotation": write_annotation}[command](*args)
