"""Work kept between processes in the cache directory (mfdeploy/derived_cache.py)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mfdeploy import derived_cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MFDEPLOY_CACHE", str(tmp_path))
    return tmp_path


def test_an_entry_is_named_by_every_part_and_the_exporting_code(cache, monkeypatch):
    first = derived_cache.entry("store", ".bin", "module", "weights")
    assert first.parent == cache / "store" and first.suffix == ".bin"
    assert derived_cache.entry("store", ".bin", "module", "weights") == first
    assert derived_cache.entry("store", ".bin", "module", "other weights") != first
    monkeypatch.setattr(derived_cache, "export_code_sha256", lambda: "edited code")
    assert derived_cache.entry("store", ".bin", "module", "weights") != first


def test_a_module_entry_is_named_by_its_tree_and_its_weights(cache):
    import torch
    from torch import nn

    from mfdeploy.export.common import module_cache_entry

    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    first = module_cache_entry("store", ".bin", model, "photos")
    assert first.parent == cache / "store"
    assert module_cache_entry("store", ".bin", model, "photos") == first
    assert module_cache_entry("store", ".bin", model, "other photos") != first
    with torch.no_grad():
        model.weight[0, 0] += 1.0  # same tree, other weights
    assert module_cache_entry("store", ".bin", model, "photos") != first
    other_tree = nn.Linear(3, 2, bias=False)
    assert module_cache_entry("store", ".bin", other_tree, "photos") != first


def test_a_module_entry_is_named_by_its_settings_too(cache):
    """Two modules with one repr and one state dict whose forward reads a plain attribute
    (a layout flag) compute different functions: their conversions must not be shared."""
    import torch
    from torch import nn

    from mfdeploy.export.common import module_cache_entry

    class Activation(nn.Module):
        def __init__(self, form: str) -> None:
            super().__init__()
            self.form = form

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x) if self.form == "relu" else torch.sigmoid(x)

    relu, sigmoid = Activation("relu"), Activation("sigmoid")
    assert repr(relu) == repr(sigmoid) and relu.state_dict() == sigmoid.state_dict()
    entry = module_cache_entry("store", ".bin", relu, "shape")
    assert module_cache_entry("store", ".bin", Activation("relu"), "shape") == entry
    assert module_cache_entry("store", ".bin", sigmoid, "shape") != entry


def test_a_module_entry_is_named_by_the_code_of_classes_outside_the_package(cache, tmp_path):
    """A class defined outside mfdeploy (a test's, a benchmark's) edited between two exports
    computes another function with the same name, tree and weights: its old conversion must
    not be reused."""
    import importlib
    import sys

    from mfdeploy.export.common import module_cache_entry

    source = tmp_path / "edited_model.py"
    code = (
        "import torch\n\nclass Edited(torch.nn.Module):\n"
        "    def forward(self, x):\n        return torch.{}(x)\n"
    )
    source.write_text(code.format("relu"))
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("edited_model")
        entry = module_cache_entry("store", ".bin", module.Edited(), "shape")
        assert module_cache_entry("store", ".bin", module.Edited(), "shape") == entry
        source.write_text(code.format("sigmoid"))
        module = importlib.reload(module)
        assert module_cache_entry("store", ".bin", module.Edited(), "shape") != entry
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("edited_model", None)


def test_only_the_newest_entries_are_kept(cache):
    paths = [derived_cache.entry("store", ".bin", str(i)) for i in range(5)]
    for i, path in enumerate(paths):
        derived_cache.write(path, bytes([i]), keep=3)
        time.sleep(0.01)  # distinct modification times
    assert sorted(p.name for p in (cache / "store").iterdir()) == sorted(p.name for p in paths[2:])
    assert paths[4].read_bytes() == b"\x04"


def test_a_claimed_entry_is_made_once_by_concurrent_workers(cache):
    path = derived_cache.entry("store", ".bin", "model")
    made = []

    def worker(_: int) -> bytes:
        with derived_cache.claimed(path):
            if path.is_file():
                return path.read_bytes()
            time.sleep(0.2)  # a conversion
            made.append(1)
            derived_cache.write(path, b"converted", keep=4)
            return b"converted"

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(worker, range(4)))
    assert made == [1] and results == [b"converted"] * 4


def test_an_unwritable_store_is_no_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("MFDEPLOY_CACHE", str(tmp_path / "file" / "below"))
    path = derived_cache.entry("store", ".bin", "model")
    with derived_cache.claimed(path):
        derived_cache.write(path, b"x", keep=4)
    assert not path.exists()
