"""Shared set-up for the harness tests: fp32 artifacts of every registered target on 26m."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mfdeploy.errors import MfdeployError
from mfdeploy.export import TARGETS, export_artifact
from mfdeploy.runtimes import runtime_class

VARIANT = "26m"


def export_fp32(target: str, out: Path) -> Path:
    """Export `target` fp32 on 26m, skipping (with the reason) if its runtime cannot import."""
    try:
        runtime_class(target)
    except MfdeployError as exc:
        pytest.skip(f"{target}: {exc}")
    out_dir, _ = export_artifact(target, VARIANT, precision="fp32", out=out / target)
    return out_dir


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from mfdeploy.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


ALL_TARGETS = list(TARGETS)
