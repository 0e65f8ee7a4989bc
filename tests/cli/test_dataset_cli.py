"""``napari-wkw downsample / compress / recube`` and what every command shares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wkw
from click.testing import CliRunner

from napari_wkw.cli import main
from napari_wkw.cli.app import COMMAND_MODULES, load_all_commands
from napari_wkw.core.save import ArrayLayer, save_dataset

CLI = str(Path(sys.executable).parent / "napari-wkw")


@pytest.fixture
def raw(tmp_path):
    data = np.random.default_rng(5).integers(0, 255, (40, 130, 170), dtype=np.uint8)
    layer = ArrayLayer("color", "color", [data], (11.24, 11.24, 25.0), offset=(3, 4, 5))
    path = save_dataset(tmp_path / "raw", [layer], compress=False, pyramid=False)
    return path, data


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_each_command_lives_in_the_module_the_lazy_group_imports():
    """The group imports a command's module on demand: the table must name every command's
    own module, and a command must not need another's module to register."""
    for name, module in COMMAND_MODULES.items():
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import napari_wkw.cli.{module} as m; from napari_wkw.cli import main; "
                f"assert {name!r} in main.commands",
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, (name, module, done.stderr[-500:])
    load_all_commands()
    assert set(main.commands) == set(COMMAND_MODULES)


def test_convert_starts_without_libwkw_or_the_annotation_code():
    code = (
        "import sys; from napari_wkw.cli import main\n"
        "try: main(['convert', '--help'])\n"
        "except SystemExit: pass\n"
        "print(sorted(m for m in ('wkw', 'napari_wkw.core.annotation', 'zarr', 'tensorstore', 'importlib.metadata') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES))
def test_every_command_has_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Usage: main " + command in result.output.replace("napari-wkw", "main")


def test_downsample_says_what_it_builds(raw):
    path, _ = raw
    result = invoke("downsample", path, "--jobs", "2", "-q")
    assert result.exit_code == 0, result.output
    assert "color: from mag 1 up to 4 with median: building 2-2-1, 4-4-2" in result.stderr
    mags = json.loads((path / "datasource-properties.json").read_text())["dataLayers"][0]["mags"]
    assert [m["mag"] for m in mags] == [[1, 1, 1], [2, 2, 1], [4, 4, 2]]
    again = invoke("downsample", path, "-q")
    assert "building none (all present)" in again.stderr


def test_compress_copy_then_recube_round_trip(raw, tmp_path):
    path, data = raw
    assert invoke("compress", path, tmp_path / "lz4", "-q").exit_code == 0
    assert invoke("recube", tmp_path / "lz4", tmp_path / "small", "--file-len", "1", "-q").exit_code == 0
    with wkw.Dataset.open(str(tmp_path / "small" / "color" / "1")) as handle:
        assert handle.header.file_len == 1
        np.testing.assert_array_equal(handle.read((3, 4, 5), (170, 130, 40))[0].transpose(2, 1, 0), data)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["downsample", "{tmp}/missing"], "no such dataset"),
        (["downsample", "{raw}", "--layer-name", "nope"], "no layer 'nope' (layers: color)"),
        (["downsample", "{raw}", "--from-mag", "2"], "has no mag 2"),
        (["compress", "{raw}", "--mag", "8"], "has no mag 8"),
        (["compress", "{raw}", "{raw}"], "exists and is not empty"),
        (["recube", "{raw}", "{tmp}/r", "--dtype", "complex64"], "WKW cannot store complex64"),
        (["downsample", "{raw}", "--max-mag", "2-x"], "mag must be like 2 or 2-2-1"),
        (["compress", "{raw}", "--jobs", "0"], "0 is not in the range"),
        (
            ["compress", "{raw}", "--distribution-strategy", "slurm", "--job-resources", '{{"gpus": 1}}'],
            "unknown key 'gpus'",
        ),
        (["compress", "{raw}", "--scheduler", "tcp://127.0.0.1:9"], "use it with --distribution-strategy dask"),
    ],
)
def test_bad_input_exits_2_with_one_line(raw, tmp_path, args, message):
    path, _ = raw
    args = [a.format(tmp=tmp_path, raw=path) for a in args]
    result = invoke(*args, "-q")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert message in result.stderr and "Traceback" not in result.output
    assert len([line for line in lines if "rror" in line]) == 1


def test_corrupt_file_through_the_real_command(raw):
    path, _ = raw
    victim = next((path / "color" / "1").glob("z*/y*/x*.wkw"))
    victim.write_bytes(b"WKW\x01garbage")
    result = subprocess.run([CLI, "compress", str(path), "-q"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(victim) in result.stderr and "Traceback" not in result.stderr


def test_unwritable_target(raw, tmp_path):
    """A target under a regular file cannot be created (root ignores permission bits, so
    this is the unwritable place every test machine has)."""
    path, _ = raw
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke("recube", path, blocker / "out", "-q")
    assert result.exit_code == 2, result.output
    assert str(blocker) in result.stderr and "Not a directory" in result.stderr
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize(
    "command",
    [
        ["downsample", "{raw}"],
        ["recube", "{raw}", "{tmp}/out"],
        ["compress", "{raw}", "{tmp}/out"],
        ["check-equality", "{raw}", "{raw}"],
        ["export-tiff", "{raw}", "{tmp}/tiffs"],
    ],
)
@pytest.mark.parametrize("damage", ["truncated", "bad header"])
def test_a_corrupt_data_file_stops_every_operation(raw, tmp_path, command, damage):
    """libwkw reads a broken file as zeros; operations must refuse it instead of copying zeros."""
    path, _ = raw
    victim = next((path / "color" / "1").glob("z*/y*/x*.wkw"))
    content = victim.read_bytes()
    victim.write_bytes(content[: len(content) // 2] if damage == "truncated" else b"WKW\x01\xff" + content[5:])
    result = invoke(*[a.format(raw=path, tmp=tmp_path) for a in command], "-q")
    assert result.exit_code == 2, result.output
    assert str(victim) in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and not (path / "color" / "2-2-1").exists()


def test_warnings_are_one_line_each(raw):
    """A mag listed in the properties but missing on disk: every command says so in one line."""
    path, _ = raw
    properties = json.loads((path / "datasource-properties.json").read_text())
    properties["dataLayers"][0]["mags"].append({"mag": [2, 2, 1], "path": "./color/2-2-1"})
    (path / "datasource-properties.json").write_text(json.dumps(properties))
    result = invoke("downsample", path, "--max-mag", "2-2-1", "-q")
    assert result.exit_code == 0, result.output
    warning_lines = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("napari-wkw: warning: ")
    assert "2-2-1" in warning_lines[0] and "WKWWarning" not in result.stderr
    mags = json.loads((path / "datasource-properties.json").read_text())["dataLayers"][0]["mags"]
    assert [m["mag"] for m in mags] == [[1, 1, 1], [2, 2, 1]]  # built, and listed once
