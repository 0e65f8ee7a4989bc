"""KnossosSource against KNOSSOS trees written byte by byte here.

Every voxel value is a formula of its global (x, y, z) position, and each cube file is
built from its byte offsets as the format defines them (offset i holds x = i % 128,
y = i // 128 % 128, z = i // 128**2, little endian), so the expected volume never goes
through the code under test or a numpy axis convention.
"""

from __future__ import annotations

import functools
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_wkw.convert.knossos import KnossosSource, build_knossos_specs, looks_like_knossos, read_knossos_conf
from napari_wkw.core.errors import WKWError
from napari_wkw.core.geometry import BoundingBox, Mag

EDGE = 128
CONF = """experiment name "{name}";
boundary x {bx};
boundary y {by};
boundary z {bz};
scale x {sx};
scale y {sy};
scale z {sz};
magnification {mag};
"""


def voxel_value(x, y, z, dtype, mag=1):
    """The value at global voxel (x, y, z) of ``mag``: different steps per axis catch swapped axes."""
    x, y, z = (np.asarray(v, dtype=np.int64) for v in (x, y, z))
    if np.dtype(dtype) == np.uint8:
        return ((x + 3 * y + 7 * z + 50 * mag) % 251 + 1).astype(dtype)  # never 0: zeros mean "missing"
    return ((x + 300 * y + 7919 * z + 1000 * mag) % 65000 + 1).astype(dtype)


@functools.cache
def cube_bytes(cube, dtype, mag=1) -> bytes:
    """One cube file, from byte offsets: x fastest, then y, then z, little endian."""
    index = np.arange(EDGE**3, dtype=np.int64)
    cx, cy, cz = cube
    values = voxel_value(
        cx * EDGE + index % EDGE, cy * EDGE + index // EDGE % EDGE, cz * EDGE + index // EDGE**2, dtype, mag
    )
    return values.astype(np.dtype(dtype).newbyteorder("<")).tobytes()


def write_knossos_tree(mag_path: Path, cubes, dtype="uint8", mag=1, name="exp") -> None:
    """Cube files at x????/y????/z????/<name>_mag<M>_x????_y????_z????.raw, as KNOSSOS names them."""
    for cube in cubes:
        x, y, z = cube
        folder = mag_path / f"x{x:04d}" / f"y{y:04d}" / f"z{z:04d}"
        folder.mkdir(parents=True)
        (folder / f"{name}_mag{mag}_x{x:04d}_y{y:04d}_z{z:04d}.raw").write_bytes(
            cube_bytes(tuple(cube), str(dtype), mag)
        )


def expected_volume(size, cubes, dtype, mag=1) -> np.ndarray:
    """(z, y, x) truth for a tree holding ``cubes``: the formula inside them, zeros elsewhere."""
    sx, sy, sz = size
    z, y, x = np.meshgrid(np.arange(sz), np.arange(sy), np.arange(sx), indexing="ij", sparse=True)
    volume = voxel_value(x, y, z, dtype, mag)
    present = np.zeros((sz, sy, sx), bool)
    for cx, cy, cz in cubes:
        present[cz * EDGE : (cz + 1) * EDGE, cy * EDGE : (cy + 1) * EDGE, cx * EDGE : (cx + 1) * EDGE] = True
    return np.where(present, volume, 0).astype(dtype)


#: mag 1: 3 x 2 x 2 cubes, two missing; the boundary (300, 200, 140) cuts into the last cubes
MAG1_CUBES = [
    (x, y, z) for x in range(3) for y in range(2) for z in range(2) if (x, y, z) not in {(1, 0, 1), (2, 1, 1)}
]
MAG1_SIZE = (300, 200, 140)
#: mag 2: boundary / 2 = (150, 100, 70), 2 x 1 x 1 cubes
MAG2_CUBES = [(0, 0, 0), (1, 0, 0)]
MAG2_SIZE = (150, 100, 70)


@pytest.fixture
def knossos_root(tmp_path):
    """A dataset root with knossos.conf (mag-1 boundary and scale), mag1/ and mag2/."""
    root = tmp_path / "knossos"
    root.mkdir()
    (root / "knossos.conf").write_text(
        CONF.format(name="exp", bx=300, by=200, bz=140, sx=11.24, sy=11.24, sz=25, mag=1)
    )
    write_knossos_tree(root / "mag1", MAG1_CUBES)
    write_knossos_tree(root / "mag2", MAG2_CUBES, mag=2)
    return root


def test_whole_volume_matches_the_bytes(knossos_root):
    source = KnossosSource(knossos_root)
    assert source.mag == 1 and source.output_mag == Mag.parse(1)
    assert source.size == MAG1_SIZE
    assert source.dtype == np.uint8 and source.num_channels == 1
    assert source.voxel_size == pytest.approx((11.24, 11.24, 25.0))
    data = source.read(BoundingBox((0, 0, 0), MAG1_SIZE))
    assert data.shape == (140, 200, 300)
    expected = expected_volume(MAG1_SIZE, MAG1_CUBES, "uint8")
    np.testing.assert_array_equal(data, expected)
    # spot checks straight from the formula, at cube borders and the far corner
    for x, y, z in [(0, 0, 0), (127, 127, 127), (128, 0, 0), (0, 128, 0), (255, 199, 127), (299, 199, 127)]:
        assert data[z, y, x] == voxel_value(x, y, z, "uint8"), (x, y, z)
    assert data[139, 199, 299] == 0  # in the missing cube (2, 1, 1)
    # a missing cube reads as zeros, up to its borders
    assert not data[128:140, 0:128, 128:256].any()
    assert data[127, 0, 128] == voxel_value(128, 0, 127, "uint8")


@pytest.mark.parametrize(
    "topleft, size",
    [
        ((120, 120, 120), (20, 20, 15)),  # the corner where 8 cubes meet (one missing)
        ((299, 199, 139), (1, 1, 1)),  # the last voxel
        ((0, 0, 0), (1, 1, 1)),
        ((5, 130, 3), (290, 1, 1)),  # one row across three cubes
        ((130, 10, 128), (100, 100, 12)),  # inside the missing cube (1, 0, 1)
        ((250, 0, 64), (50, 200, 1)),  # one slice, three cubes in y... and the border in x
    ],
)
def test_boxes_across_cube_borders(knossos_root, topleft, size):
    source = KnossosSource(knossos_root)
    expected = expected_volume(MAG1_SIZE, MAG1_CUBES, "uint8")
    box = BoundingBox(topleft, size)
    np.testing.assert_array_equal(source.read(box), expected[box.zyx_slices()])


def test_missing_cube_box_is_zeros(knossos_root):
    source = KnossosSource(knossos_root)
    data = source.read(BoundingBox((130, 10, 128), (100, 100, 12)))
    assert data.shape == (12, 100, 100) and not data.any()


def test_coarser_mag_size_from_the_root_conf(knossos_root):
    source = KnossosSource(knossos_root, mag=2)
    assert source.mag == 2 and source.output_mag == Mag.parse(2)
    assert source.size == MAG2_SIZE
    assert source.voxel_size == pytest.approx((11.24, 11.24, 25.0))  # mag-1 voxel size
    expected = expected_volume(MAG2_SIZE, MAG2_CUBES, "uint8", mag=2)
    np.testing.assert_array_equal(source.read(BoundingBox((0, 0, 0), MAG2_SIZE)), expected)
    assert source.read(BoundingBox((149, 99, 69), (1, 1, 1)))[0, 0, 0] == voxel_value(149, 99, 69, "uint8", 2)


def test_per_mag_conf_as_knossos_cuber_writes_it(knossos_root):
    """knossos_cuber's mag-M conf: boundary already divided, scale multiplied, magnification M."""
    (knossos_root / "knossos.conf").unlink()
    (knossos_root / "mag2" / "knossos.conf").write_text(
        CONF.format(name="exp_mag1_mag2", bx=150, by=100, bz=70, sx=22.48, sy=22.48, sz=50.0, mag=2)
    )
    source = KnossosSource(knossos_root / "mag2")
    assert source.mag == 2
    assert source.size == MAG2_SIZE
    assert source.voxel_size == pytest.approx((11.24, 11.24, 25.0))


def test_mag_folder_alone_uses_the_root_conf(knossos_root):
    source = KnossosSource(knossos_root / "mag2")
    assert (source.mag, source.size) == (2, MAG2_SIZE)
    # --mag given for a mag folder names its output mag
    assert KnossosSource(knossos_root / "mag1", mag=4).output_mag == Mag.parse(4)


def test_without_conf_the_size_comes_from_the_last_cubes(knossos_root):
    (knossos_root / "knossos.conf").unlink()
    source = KnossosSource(knossos_root)
    assert source.size == (3 * EDGE, 2 * EDGE, 2 * EDGE)
    assert source.voxel_size is None
    expected = expected_volume(source.size, MAG1_CUBES, "uint8")
    np.testing.assert_array_equal(source.read(BoundingBox((0, 0, 0), source.size)), expected)
    assert source.origin == (0, 0, 0)
    # a mag folder given directly, no conf anywhere: mag 1
    loose = knossos_root.parent / "loose"
    shutil.copytree(knossos_root / "mag2", loose)
    assert KnossosSource(loose).mag == 1


def test_without_conf_the_layer_starts_at_the_first_cube(tmp_path):
    """As the reference converter places it: no empty space before the first cube."""
    cubes = [(2, 1, 3), (3, 1, 3), (3, 2, 4)]
    write_knossos_tree(tmp_path / "mag1", cubes)
    source = KnossosSource(tmp_path / "mag1")
    assert source.origin == (256, 128, 384)
    assert source.size == (256, 256, 256)
    full = expected_volume((512, 384, 640), cubes, "uint8")
    data = source.read(BoundingBox((0, 0, 0), source.size))
    np.testing.assert_array_equal(data, full[384:640, 128:384, 256:512])
    assert data[0, 0, 0] == voxel_value(256, 128, 384, "uint8")
    assert data[255, 255, 255] == voxel_value(511, 383, 639, "uint8")
    assert not data[128:, :128].any()  # the missing cubes of the second z-row
    [spec] = build_knossos_specs(tmp_path / "mag1", layer_name="em")
    assert (spec.name, spec.category, spec.offset, spec.mag) == ("em", "color", (256, 128, 384), Mag.parse(1))
    assert spec.source.description == f"KNOSSOS cubes in {tmp_path / 'mag1'} (mag 1)"


def test_default_mag_is_the_finest_present(knossos_root):
    shutil.rmtree(knossos_root / "mag1")
    assert KnossosSource(knossos_root).mag == 2


def test_missing_mag_lists_the_mags(knossos_root):
    with pytest.raises(WKWError, match=r"knossos: no KNOSSOS mag 4 \(mags found: 1, 2\)"):
        KnossosSource(knossos_root, mag=4)


@pytest.mark.parametrize("folder", ["exp_mag1", "1"])
def test_other_mag_folder_names(tmp_path, folder):
    write_knossos_tree(tmp_path / "root" / folder, [(0, 0, 0)])
    source = KnossosSource(tmp_path / "root")
    assert source.mag == 1 and source.path == str(tmp_path / "root" / folder)
    assert source.read(BoundingBox((5, 6, 7), (1, 1, 1)))[0, 0, 0] == voxel_value(5, 6, 7, "uint8")


def test_two_folders_for_one_mag(tmp_path):
    write_knossos_tree(tmp_path / "root" / "mag1", [(0, 0, 0)])
    write_knossos_tree(tmp_path / "root" / "exp_mag1", [(0, 0, 0)])
    with pytest.raises(WKWError, match=r"root: two folders for KNOSSOS mag 1: (mag1 and exp_mag1|exp_mag1 and mag1)"):
        KnossosSource(tmp_path / "root")


def test_uint16_cubes_are_little_endian(tmp_path):
    cubes = [(0, 0, 0), (1, 1, 0)]
    write_knossos_tree(tmp_path / "mag1", cubes, dtype="uint16")
    source = KnossosSource(tmp_path / "mag1", dtype="uint16")
    assert source.dtype == np.uint16 and source.size == (256, 256, 128)
    data = source.read(BoundingBox((0, 0, 0), source.size))
    np.testing.assert_array_equal(data, expected_volume(source.size, cubes, "uint16"))
    assert data[127, 255, 255] == voxel_value(255, 255, 127, "uint16")
    assert data.max() > 255  # the high bytes were read too


def test_cube_of_the_wrong_length_names_the_file(knossos_root):
    cube = next((knossos_root / "mag1" / "x0002" / "y0001" / "z0000").glob("*.raw"))
    cube.write_bytes(cube.read_bytes()[:-1])
    source = KnossosSource(knossos_root)
    with pytest.raises(WKWError, match=rf"{cube.name}: 2097151 bytes, but a 128\^3 cube of uint8 has 2097152"):
        source.read(BoundingBox((256, 128, 0), (1, 1, 1)))
    # a cube the box does not touch is not opened
    assert source.read(BoundingBox((0, 0, 0), (4, 4, 4))).any()


def test_wrong_dtype_names_the_file(knossos_root):
    source = KnossosSource(knossos_root, dtype="uint16")
    with pytest.raises(WKWError, match=r"exp_mag1_x0000_y0000_z0000\.raw: 2097152 bytes, .* of uint16 has 4194304"):
        source.read(BoundingBox((0, 0, 0), (1, 1, 1)))


def test_two_cubes_in_one_folder_name_the_folder(knossos_root):
    folder = knossos_root / "mag1" / "x0000" / "y0000" / "z0000"
    shutil.copy(next(folder.glob("*.raw")), folder / "other.raw")
    with pytest.raises(WKWError, match=r"x0000/y0000/z0000: 2 \.raw cubes"):
        KnossosSource(knossos_root).read(BoundingBox((0, 0, 0), (1, 1, 1)))


def test_compressed_cubes_are_refused(tmp_path):
    folder = tmp_path / "mag1" / "x0000" / "y0000" / "z0000"
    folder.mkdir(parents=True)
    (folder / "exp_mag1_x0000_y0000_z0000.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(WKWError, match=r"z0000: holds exp_mag1_x0000_y0000_z0000\.jpg but no \.raw cube"):
        KnossosSource(tmp_path / "mag1").read(BoundingBox((0, 0, 0), (1, 1, 1)))


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WKWError, match=r"empty: no KNOSSOS cubes"):
        KnossosSource(tmp_path / "empty")
    with pytest.raises(WKWError, match=r"nothing: no such folder"):
        KnossosSource(tmp_path / "nothing")


def test_unknown_dtype(knossos_root):
    with pytest.raises(WKWError, match=r"KNOSSOS voxel type 'uint12' is not one of uint8"):
        KnossosSource(knossos_root, dtype="uint12")


def test_conf_syntax_variants(tmp_path):
    conf = tmp_path / "knossos.conf"
    conf.write_text(
        'experiment name "e2006_mag1";\nboundary x: 1024;\nboundary y 512 ;\nboundary z:256;\n'
        "scale x: 22.0;\nscale y 22;\nscale z 33.5;\nftp_mode server path user pass 30;\ncompression_ratio 1000;\n"
    )
    parsed = read_knossos_conf(conf)
    assert parsed.experiment == "e2006_mag1"
    assert parsed.boundary == (1024, 512, 256)
    assert parsed.scale == (22.0, 22.0, 33.5)
    assert parsed.magnification == 1
    conf.write_text("boundary x 10;\nboundary y 10;\n")
    with pytest.raises(WKWError, match=r"knossos.conf: states boundary x, boundary y but not boundary z"):
        read_knossos_conf(conf)
    conf.write_text("boundary x 10;\nboundary y ten;\nboundary z 10;\n")
    with pytest.raises(WKWError, match=r"knossos.conf: boundary y 'ten' is not a number"):
        read_knossos_conf(conf)


def test_conf_file_as_the_path(knossos_root):
    source = KnossosSource(knossos_root / "knossos.conf", mag=2)
    assert (source.mag, source.size) == (2, MAG2_SIZE)


def test_pickled_source_reads_the_same(knossos_root):
    source = KnossosSource(knossos_root)
    source.read(BoundingBox((0, 0, 0), (300, 200, 1)))  # remembers where its cubes are ...
    copy = pickle.loads(pickle.dumps(source))
    assert len(pickle.dumps(source)) < 2000  # ... but does not carry that to other processes
    box = BoundingBox((100, 100, 100), (60, 60, 30))
    np.testing.assert_array_equal(copy.read(box), source.read(box))
    fingerprint = source.fingerprint()
    assert fingerprint["mag"] == 1 and fingerprint["conf"]["path"].endswith("knossos.conf")
    assert fingerprint == copy.fingerprint()


def test_looks_like_knossos(knossos_root, tmp_path, wkw_copy):
    assert looks_like_knossos(knossos_root)
    assert looks_like_knossos(knossos_root / "mag1")
    assert looks_like_knossos(knossos_root / "knossos.conf")
    (knossos_root / "knossos.conf").unlink()
    assert looks_like_knossos(knossos_root)
    (tmp_path / "empty").mkdir()
    (tmp_path / "tiffs").mkdir()
    (tmp_path / "tiffs" / "a.tif").write_bytes(b"II*\x00")
    dataset = wkw_copy("simple_wkw_dataset")
    for path in [tmp_path / "empty", tmp_path / "tiffs", tmp_path / "tiffs" / "a.tif", dataset, dataset / "color"]:
        assert not looks_like_knossos(path), path
    assert not looks_like_knossos(dataset / "color" / "1")
    assert not looks_like_knossos(tmp_path / "missing")
