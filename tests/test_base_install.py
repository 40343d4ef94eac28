"""A base install (no extras): every command's --help works, and a command that needs an
extra says which one in one line, exit 2 (extras hidden by an import blocker)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mfdeploy.cli import COMMANDS
from mfdeploy.extras import EXTRA_OF_MODULE

EXTRAS = sorted(EXTRA_OF_MODULE)  # every optional module the package knows

BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys
    BLOCK = set({EXTRAS!r})
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCK:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
    sys.meta_path.insert(0, Blocker())
    from mfdeploy.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def run_without_extras(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER, *argv], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_without_extras(command):
    proc = run_without_extras(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout


@pytest.mark.parametrize(
    ("target", "precision", "argv", "extra"),
    [
        ("onnx", "fp32", ("verify",), "onnx"),
        ("tflite", "fp32", ("inspect",), "tflite"),
    ],
)
def test_commands_name_the_missing_extra(exported, target, precision, argv, extra):
    artifact = exported(target, precision)
    proc = run_without_extras(*argv, str(artifact))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"mfdeploy[{extra}]" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_export_names_the_missing_extra(tmp_path):
    out = tmp_path / "o"
    proc = run_without_extras("export", "--target", "onnx", "--variant", "26m", "--out", str(out))
    assert proc.returncode == 2
    assert "mfdeploy[onnx]" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
