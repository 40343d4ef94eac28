"""Checkpoint formats users hold, and the messages they get when one does not fit."""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import save_file

from mfdeploy.errors import CheckpointError
from mfdeploy.models import create_model
from mfdeploy.models.checkpoint import read_state_dict
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def official_26m():
    return read_state_dict(FIXTURES / "mobile_former_26m.safetensors")


def _same_weights(model, state):
    return all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_float16_file_is_read_as_float32(official_26m):
    assert official_26m["stem.0.weight"].dtype == torch.float32


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {"state_dict": s, "epoch": 3},
        lambda s: {"model": s},
        lambda s: {"state_dict_ema": s, "optimizer": {}},
        lambda s: {"model_ema": s},
        lambda s: OrderedDict((f"module.{k}", v) for k, v in s.items()),
        lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}},
    ],
    ids=["bare", "state_dict", "model", "state_dict_ema", "model_ema", "module", "wrapped-module"],
)
@pytest.mark.parametrize("suffix", [".pth", ".pth.tar", ".pt"])
def test_torch_checkpoint_layouts_load_strict(tmp_path, official_26m, wrap, suffix):
    path = tmp_path / f"mobile-former-26m{suffix}"
    torch.save(wrap(official_26m), path)
    model = create_model("26m", weights=path)
    assert _same_weights(model, official_26m)


def test_safetensors_checkpoint(tmp_path, official_26m):
    path = tmp_path / "w.safetensors"
    save_file(official_26m, str(path))
    assert _same_weights(create_model("26m", weights=path), official_26m)


def test_fine_tuned_head_size_read_from_checkpoint(tmp_path, official_26m):
    state = dict(official_26m)
    state["classifier.classifier.1.weight"] = torch.randn(10, 1024)
    state["classifier.classifier.1.bias"] = torch.randn(10)
    path = tmp_path / "ft.pth"
    torch.save(state, path)
    model = create_model("26m", weights=path)
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 10)
    assert model.num_classes == 10
    with pytest.raises(
        CheckpointError, match=r"shape mismatch at classifier\.classifier\.1\.weight"
    ):
        create_model("26m", weights=path, num_classes=20)


def test_wrong_variant_names_counts_and_keys(tmp_path):
    with pytest.raises(CheckpointError) as err:
        create_model("294m", weights=FIXTURES / "mobile_former_26m.safetensors")
    message = str(err.value)
    assert "missing keys" in message and "unexpected keys" in message or "shape mismatch" in message


def test_missing_and_unexpected_keys_are_counted(tmp_path, official_26m):
    state = dict(official_26m)
    del state["stem.0.weight"], state["tokens.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        create_model("26m", weights=path)
    message = str(err.value)
    assert "2 missing keys (tokens.weight, stem.0.weight)" in message
    assert "1 unexpected keys (extra.weight)" in message


def test_shape_mismatch_names_key_and_both_shapes(tmp_path, official_26m):
    state = dict(official_26m)
    state["stem.0.weight"] = torch.zeros(8, 3, 5, 5)
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"stem\.0\.weight.*\(8, 3, 5, 5\).*\(8, 3, 3, 3\)"):
        create_model("26m", weights=path)


class NotAllowed:
    """An object that only unpickles by running code: weights_only must refuse it."""


def test_pickle_that_needs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": NotAllowed()}, path)
    with pytest.raises(CheckpointError, match="needs arbitrary code"):
        read_state_dict(path)


@pytest.mark.parametrize(
    "name,content", [("junk.pth", b"hello world"), ("junk.safetensors", b"\x00" * 64)]
)
def test_non_checkpoint_files(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a"):
        read_state_dict(path)


def test_checkpoint_without_tensors(tmp_path):
    path = tmp_path / "empty.pth"
    torch.save({"epoch": 1}, path)
    with pytest.raises(CheckpointError, match="no state_dict found"):
        read_state_dict(path)


def test_missing_file():
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_state_dict("/nonexistent/w.pth")


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "--variant", "26m", "--weights", "{junk}", "{img}"],
        ["predict", "--variant", "294m", "--weights", "{fixture}", "{img}"],
        ["predict", "--variant", "26m", "--weights", "{evil}", "{img}"],
        ["predict", "--variant", "9000m", "{img}"],
    ],
    ids=["not-a-checkpoint", "wrong-variant", "needs-code", "unknown-variant"],
)
def test_cli_bad_checkpoint_is_one_line_exit_2(tmp_path, args):
    from PIL import Image

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": NotAllowed()}, evil)
    img = tmp_path / "img.png"
    Image.new("RGB", (64, 48), (120, 30, 200)).save(img)
    names = {
        "junk": junk,
        "evil": evil,
        "img": img,
        "fixture": FIXTURES / "mobile_former_26m.safetensors",
    }
    argv = [a.format(**names) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "mfdeploy", *argv], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mfdeploy: error:")
    assert "Traceback" not in proc.stderr
