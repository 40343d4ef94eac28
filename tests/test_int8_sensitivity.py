"""int8 float set measured per model (export/int8_sensitivity.py), not read from a table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mfdeploy.errors import MfdeployError
from mfdeploy.export.int8_sensitivity import (
    candidate_groups,
    candidates,
    float_plan,
    float_regex,
    held_out_indices,
    held_out_split,
    measure_float_plan,
    parse_float_modules,
)


class Block(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.ReLU()
        self.shuffle = nn.Identity()  # no parameters: never a candidate

    def forward(self, x):
        return self.act(self.conv(self.shuffle(x))) + x


class Toy(nn.Module):
    """stem, four residual blocks (each one candidate: its conv), head."""

    def __init__(self, channels: int = 8, blocks: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, channels, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList(Block(channels) for _ in range(blocks))
        self.head = nn.Linear(channels, 10)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean((2, 3)))


def photos(count: int = 16) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(count, 3, 16, 16)).astype(np.float32)


def test_candidates_come_from_the_module_tree():
    assert candidates(Toy()) == ["stem"] + [f"blocks.{i}" for i in range(4)] + ["head"]


def test_a_batch_norm_after_a_convolution_joins_its_candidate():
    model = nn.Sequential()
    model.add_module("stem", nn.Conv2d(3, 8, 3))
    model.add_module("stem_bn", nn.BatchNorm2d(8))
    model.add_module("other_bn", nn.BatchNorm2d(8))  # follows a norm, not a conv
    model.add_module("head", nn.Linear(8, 2))
    assert candidate_groups(model) == {
        "stem": ("stem", "stem_bn"),
        "other_bn": ("other_bn",),
        "head": ("head",),
    }


def make_fragile(model: Toy, index: int) -> Toy:
    """Same function, but blocks.<index>.conv's output has one channel 1000x the others, and
    the next layer divides it back: per-tensor int8 on that output loses the rest."""
    conv = model.blocks[index].conv
    with torch.no_grad():
        conv.weight[0] *= 1000.0
        conv.bias[0] *= 1000.0
    block = model.blocks[index]
    original = block.forward

    def forward(x):
        y = block.act(block.conv(x))
        y = y * torch.tensor([0.001] + [1.0] * (y.shape[1] - 1)).reshape(1, -1, 1, 1)
        return y + x

    block.forward = forward
    del original
    return model


def test_fragile_block_is_kept_float_and_the_target_is_reached():
    fragile = make_fragile(Toy(), 2)
    plan = measure_float_plan(fragile, photos(), target_sqnr=30.0)
    assert plan.all_int8_sqnr_db < 30.0  # quantising everything misses the target ...
    assert "blocks.2" in plan.float_modules  # ... because of the fragile block
    assert plan.reached_target and plan.planned_sqnr_db >= 30.0
    worst = min(plan.candidates, key=lambda c: c.sqnr_db_alone)
    assert worst.module == "blocks.2"
    assert plan.held_out_images == 4 and plan.calibration_images == 12


def test_healthy_model_keeps_nothing_float_when_int8_already_reaches_the_target():
    plan = measure_float_plan(Toy(), photos(), target_sqnr=10.0)
    assert plan.all_int8_sqnr_db >= 10.0
    assert plan.float_modules == ()
    record = plan.to_dict()
    assert record["chosen_by"] == "measured"
    assert [c["module"] for c in record["candidates"]] == candidates(Toy())
    assert not any(c["float"] for c in record["candidates"])


def test_held_out_photos_never_set_the_ranges():
    """Ranges come from 3/4 of the photos only: held-out photos 50x brighter than the rest
    clip in int8, which they would not if they had set the ranges."""
    base = photos()
    plan_a = measure_float_plan(Toy(), base, target_sqnr=10.0)
    bright = base.copy()
    bright[held_out_indices(len(base))] *= 50.0  # held-out photos only
    plan_b = measure_float_plan(Toy(), bright, target_sqnr=10.0)
    assert plan_a.calibration_images == plan_b.calibration_images == 12
    assert plan_b.all_int8_sqnr_db < plan_a.all_int8_sqnr_db - 10.0


def test_held_out_photos_span_every_source():
    """Photos come grouped by source (package): the held-out quarter takes from each group,
    not the last group only."""
    sources = np.repeat(np.arange(4), 8)  # 32 photos, 4 sources of 8 in a row
    held = held_out_indices(len(sources))
    assert len(held) == 8 and set(sources[held]) == {0, 1, 2, 3}
    stack = np.arange(32, dtype=np.float32).reshape(32, 1, 1, 1)
    fit, score = held_out_split(stack)
    assert sorted(np.concatenate([fit, score]).ravel().tolist()) == list(range(32))
    assert set(score.ravel().tolist()) == set(held.tolist())


def test_given_float_modules_override_the_measurement():
    plan = float_plan(Toy(), photos(), "stem, blocks.1.conv")
    assert plan.float_modules == ("stem", "blocks.1.conv") and plan.chosen_by == "given"
    assert float_plan(Toy(), photos(), "none").float_modules == ()
    assert parse_float_modules("auto", Toy()) is None


def test_unknown_float_module_is_refused_with_the_candidates():
    with pytest.raises(MfdeployError, match="no module 'blocks.9'.*candidates: stem"):
        parse_float_modules("blocks.9", Toy())


def test_too_few_calibration_photos_is_one_clear_error():
    with pytest.raises(MfdeployError, match="calibration photos"):
        measure_float_plan(Toy(), photos(2))


def test_float_regex_matches_the_module_and_inside_it_only():
    import re

    pattern = re.compile(float_regex(("blocks.1", "head")))
    assert pattern.search("blocks.1") and pattern.search("blocks.1.conv")
    assert not pattern.search("blocks.10.conv") and not pattern.search("xblocks.1")
    assert pattern.search("head.fc") and float_regex(()) == ""


@pytest.fixture
def fresh_process(tmp_path, monkeypatch):
    """An empty cache directory and no in-process measurements: as a new worker process."""
    from mfdeploy.export import int8_sensitivity

    monkeypatch.setenv("MFDEPLOY_CACHE", str(tmp_path))
    monkeypatch.setattr(int8_sensitivity, "_MEASURED", {})
    monkeypatch.setattr(int8_sensitivity, "_NOISES", {})
    evaluated: list[frozenset[str]] = []
    quantised = int8_sensitivity._Simulator.quantised

    def counting(self, active):
        evaluated.append(frozenset(active))
        return quantised(self, active)

    monkeypatch.setattr(int8_sensitivity._Simulator, "quantised", counting)

    def restart() -> list[frozenset[str]]:
        int8_sensitivity._MEASURED.clear()
        int8_sensitivity._NOISES.clear()
        evaluated.clear()
        return evaluated

    return tmp_path, evaluated, restart


def test_noises_measured_by_an_earlier_export_are_read_back_not_evaluated(fresh_process):
    cache, evaluated, restart = fresh_process
    first = float_plan(make_fragile(Toy(), 2), photos(), target_sqnr=30.0)
    assert len(evaluated) >= len(candidates(Toy())) + 1  # each alone, all int8, the steps
    assert len(list((cache / "int8-noises").glob("*.json"))) == 1
    evaluated = restart()
    again = float_plan(make_fragile(Toy(), 2), photos(), target_sqnr=30.0)
    assert evaluated == []
    assert again.to_dict() == first.to_dict()


def test_stored_noises_of_other_weights_or_photos_are_not_used(fresh_process):
    cache, evaluated, restart = fresh_process
    float_plan(Toy(), photos(), target_sqnr=10.0)
    evaluated = restart()
    other = Toy()
    with torch.no_grad():
        other.head.weight.mul_(2.0)
    float_plan(other, photos(), target_sqnr=10.0)
    assert evaluated  # other weights: measured
    evaluated = restart()
    float_plan(Toy(), photos() * 2.0, target_sqnr=10.0)
    assert evaluated  # other photos: measured
    assert len(list((cache / "int8-noises").glob("*.json"))) == 3


def test_an_unreadable_noise_file_is_measured_again(fresh_process):
    cache, evaluated, restart = fresh_process
    first = float_plan(Toy(), photos(), target_sqnr=10.0)
    (stored,) = (cache / "int8-noises").glob("*.json")
    stored.write_text("{not json")
    evaluated = restart()
    assert float_plan(Toy(), photos(), target_sqnr=10.0).to_dict() == first.to_dict()
    assert evaluated


def _additive_search(alone: dict[str, float], target: float, extra: dict | None = None):
    """search_float_set on made-up noises: a set's noise is the sum of its members' (plus
    `extra[frozenset]` when given); returns the plan and every set evaluated."""
    from mfdeploy.export.int8_sensitivity import search_float_set

    evaluated: list[frozenset[str]] = []

    def noise_of(active: set[str]) -> float:
        evaluated.append(frozenset(active))
        return sum(alone[m] for m in active) + (extra or {}).get(frozenset(active), 0.0)

    groups = {name: (name,) for name in alone}
    plan = search_float_set(groups, dict.fromkeys(alone, 1000), noise_of, 1.0, target)
    return plan, evaluated


def test_no_trim_is_measured_where_the_module_alone_would_sink_the_rest():
    # signal 1.0; 20 dB = noise 0.01: each block alone is 0.008, so keeping any one int8
    # next to another is 0.016 (18 dB), and un-floating one of the chosen cannot work
    alone = {f"blocks.{i}": 0.008 for i in range(4)}
    plan, evaluated = _additive_search(alone, target=20.0)
    assert len(plan.float_modules) == 3 and plan.reached_target
    trims = [s for s in evaluated if len(s) == 2]  # one int8 next to the one left
    assert trims == []


def test_a_trim_within_reach_is_still_measured_and_taken():
    # a set evaluated as quieter than the sum (noise does not always compound): the trim
    # of blocks.0 is predicted 0.4 dB short (within the slack), measured, and passes
    alone = {"blocks.0": 0.004, "blocks.1": 0.0001, "head": 0.009}
    quiet = {frozenset({"blocks.0", "blocks.1"}): -0.0015}
    plan, evaluated = _additive_search(alone, target=24.0, extra=quiet)
    assert frozenset({"blocks.0", "blocks.1"}) in evaluated
    assert plan.float_modules == ("head",) and plan.reached_target
