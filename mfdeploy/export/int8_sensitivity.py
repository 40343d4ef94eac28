"""Which modules stay float in an int8 export: measured on the calibration photos, per model.

Rule: keep float the smallest set of candidate modules that brings the int8 logits to
`target_sqnr` dB against float32 on a held-out part of the calibration photos, taking first
the modules whose quantisation noise is largest for their compute (keeping a small module
float costs little latency; keeping a stage of convolutions float costs a lot).

Why measured: which parts of a network tolerate int8 depends on its weights (a user's
fine-tune is not the checkpoint a table was tuned on), so no family carries a float list.

How: int8 is simulated in PyTorch on the module being exported, target-independent:
per-output-channel symmetric int8 weights and per-tensor 8-bit activations (the input of
every convolution / linear and the output of every other leaf module, ranges from the
calibration photos). Each candidate is measured alone (its noise on the
held-out logits), then float modules are added in priority order until the simulated SQNR
reaches the target (`search_float_set`). ONNX, TFLite and ExecuTorch quantise everything
except the chosen modules; Core ML runs the same search on coremltools' own prepared program
instead (`pt2e_plan`), since that quantizer takes ops to int8 the simulation does not model.
`verify` judges the real artifact.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mfdeploy import derived_cache
from mfdeploy.console import info, progress
from mfdeploy.errors import MfdeployError
from mfdeploy.export.int8_bias import int8_weights_swapped, weight_errors, with_int8_weights
from mfdeploy.metrics import SQNR_CAP_DB
from mfdeploy.models.source import module_identity

DEFAULT_TARGET_SQNR = 22.0  # dB; verify's int8 bound is 18 dB, this leaves margin
HELD_OUT_FRACTION = 0.25  # of the calibration photos, never used to calibrate the ranges
MIN_HELD_OUT = 2
EVAL_BATCH = 8
QUANTISED_LEAVES = (nn.Conv2d, nn.Linear)
FUSED_INTO_CONSUMER = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)
# A module with no multiply-accumulates still costs something to keep float (its boundary
# QUANTIZE / DEQUANTIZE): this fraction of the model's MACs stands in for it.
MAC_FLOOR_FRACTION = 0.002
# Trimming the float set measures whether a module can go back to int8; skipped when the
# plan's noise plus that module's noise alone is this far below the target (noises compound:
# the all-int8 noise is usually more than the sum of the alone-noises). 294m's Core ML
# search spent 93 of its 165 s on 11 trim evaluations (py-spy); for the 11 modules it kept
# float this estimate is 2.3-11.4 dB below its 22 dB target.
TRIM_SLACK_DB = 1.0


@dataclass
class Candidate:
    """One module's measured cost: simulated SQNR with only it int8, and its compute."""

    module: str
    sqnr_db_alone: float
    macs: int
    noise: float = 0.0  # held-out mean squared logit error with only this module int8


@dataclass
class FloatPlan:
    """The float set and how it was chosen (written into the manifest)."""

    float_modules: tuple[str, ...]
    chosen_by: str  # "measured", "given", "none"
    target_sqnr_db: float | None = None
    all_int8_sqnr_db: float | None = None
    planned_sqnr_db: float | None = None
    reached_target: bool | None = None
    calibration_images: int | None = None
    held_out_images: int | None = None
    candidates: list[Candidate] = field(default_factory=list)
    measured_on: str = "int8 simulated in PyTorch"
    bias_corrected_layers: int | None = None  # set by `int8_module`
    # layer path -> mean int8-weight error per output channel (int8_bias; not serialised)
    weight_errors: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def int8_module(self, module: nn.Module) -> nn.Module:
        """`module` as the target's quantiser should see it: the layers outside the float
        modules with int8-grid weights and bias-corrected (int8_bias), the rest as it is."""
        out, count = with_int8_weights(module, self.weight_errors, float_regex(self.float_modules))
        self.record_corrected(count)
        return out

    def record_corrected(self, count: int) -> None:
        """How many layers got int8 weights and a corrected bias (manifest, export log)."""
        self.bias_corrected_layers = count
        if count:
            info(
                f"int8: {count} convolutions / linears get their int8 "
                "weights and a bias corrected for them (measured on the calibration photos)"
            )

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["weight_errors"]
        out["float_modules"] = list(self.float_modules)
        out["candidates"] = [
            {
                "module": c.module,
                "sqnr_db_alone": round(c.sqnr_db_alone, 2),
                "macs": c.macs,
                "float": c.module in self.float_modules,
            }
            for c in self.candidates
        ]
        for key in ("target_sqnr_db", "all_int8_sqnr_db", "planned_sqnr_db"):
            if out[key] is not None:
                out[key] = round(out[key], 2)
        return out

    def describe(self) -> str:
        if self.chosen_by == "none":
            return "every module int8"
        names = ", ".join(self.float_modules) or "none"
        if self.chosen_by == "given":
            return f"float modules (given): {names}"
        return (
            f"float modules (measured on {self.measured_on}, {self.held_out_images} held-out "
            f"photos): {names}; SQNR {self.all_int8_sqnr_db:.1f} dB all int8 -> "
            f"{self.planned_sqnr_db:.1f} dB (target {self.target_sqnr_db:.1f})"
        )


def candidate_groups(module: nn.Module) -> dict[str, tuple[str, ...]]:
    """Candidate name -> the module paths it covers, from the module tree alone (no
    per-family list).

    Each top-level child is a candidate, a container child (ModuleList / Sequential) is
    replaced by its items (one candidate per block: a block's int8 noise is measured as a
    whole, which keeps the search to one evaluation per block). Modules without parameters
    are skipped. A batch norm right after a convolution (registered next to it) belongs to
    that convolution's candidate: every target folds it into the convolution.
    """
    groups: dict[str, tuple[str, ...]] = {}
    previous: tuple[str, nn.Module] | None = None

    def has_params(m: nn.Module) -> bool:
        return any(True for _ in m.parameters())

    for name, child in module.named_children():
        items = (
            [(f"{name}.{i}", item) for i, item in child.named_children()]
            if isinstance(child, nn.ModuleList | nn.Sequential)
            else [(name, child)]
        )
        for path, item in items:
            if not has_params(item):
                continue
            if (
                isinstance(item, nn.BatchNorm2d)
                and previous is not None
                and isinstance(previous[1], nn.Conv2d)
                and previous[1].out_channels == item.num_features
            ):
                groups[previous[0]] = (*groups[previous[0]], path)
            else:
                groups[path] = (path,)
            previous = (path, item)
    return groups


def candidates(module: nn.Module) -> list[str]:
    """The candidate names (see `candidate_groups`)."""
    return list(candidate_groups(module))


def modules_inside(
    module: nn.Module, groups: dict[str, tuple[str, ...]]
) -> dict[str, list[tuple[str, nn.Module]]]:
    """Candidate name -> (path, module) of every module its roots hold, the roots included."""
    mods = dict(module.named_modules())
    return {
        name: [
            (f"{root}.{path}" if path else root, inner)
            for root in roots
            for path, inner in mods[root].named_modules()
        ]
        for name, roots in groups.items()
    }


def measured(spec: str | None) -> bool:
    """Whether --int8-float `spec` asks for the float set to be measured ("auto", the default)."""
    return spec is None or spec.strip().lower() == "auto"


def parse_float_modules(spec: str | None, module: nn.Module) -> tuple[str, ...] | None:
    """--int8-float: None / "auto" = measure; "none" = every module int8; else a comma list
    of module paths (each must exist in the model)."""
    if measured(spec):
        return None
    if spec.strip().lower() == "none":
        return ()
    names = tuple(s.strip() for s in spec.split(",") if s.strip())
    known = dict(module.named_modules())
    unknown = [n for n in names if n not in known]
    if unknown:
        examples = ", ".join(candidates(module)[:6])
        raise MfdeployError(
            f"--int8-float: no module {unknown[0]!r} in this model (candidates: {examples}, ...)"
        )
    return names


def _fake_quant(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Per-tensor affine 8-bit on [low, high] (widened to hold 0, as int8 zero points do)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max(high - low, 1e-8) / 255.0
    zero = round(-low / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [v for v in value if isinstance(v, torch.Tensor)]
    return []


class _Simulator:
    """Forward hooks that observe ranges, then apply int8 to the active candidates only
    (their layers' weights on the int8 grid, biases corrected by `errors`: int8_bias)."""

    def __init__(
        self,
        model: nn.Module,
        groups: dict[str, tuple[str, ...]],
        errors: dict[str, torch.Tensor] | None = None,
    ):
        self.model = model
        self.errors = errors or {}
        names = list(groups)
        mods = dict(model.named_modules())
        inside = modules_inside(model, groups)
        self.leaves = {n: [(p, m) for p, m in inside[n] if isinstance(m, QUANTISED_LEAVES)]
                       for n in names}  # fmt: skip
        self.ranges: dict[str, list[float]] = {}
        self.active: set[str] = set()
        self.observing = False
        self._handles: list = []
        for name in names:
            # Outputs quantised: each group member's and every leaf's inside, except those of
            # convolutions, linears and batch norms: targets fuse what follows them (batch
            # norm, ReLU / ReLU6 clip) and quantise after it, so their raw output never is;
            # the next layer's input quantisation stands for it.
            members = [(p, mods[p]) for p in groups[name]]
            leaves = [(p, m) for p, m in inside[name] if not any(m.children())]
            outputs = dict.fromkeys(
                p for p, m in members + leaves if not isinstance(m, FUSED_INTO_CONSUMER)
            )
            for path in outputs:
                hook = self._output_hook(name, path)
                self._handles.append(mods[path].register_forward_hook(hook))
            for leaf_name, leaf in self.leaves[name]:
                hook = self._input_hook(name, leaf_name, leaf)
                self._handles.append(leaf.register_forward_pre_hook(hook))

    def _observe(self, key: str, tensors: list[torch.Tensor]) -> None:
        for i, t in enumerate(tensors):
            k = f"{key}#{i}"
            low, high = float(t.min()), float(t.max())
            old = self.ranges.get(k)
            self.ranges[k] = [min(low, old[0]), max(high, old[1])] if old else [low, high]

    def _apply(self, key: str, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, t in enumerate(tensors):
            low, high = self.ranges.get(f"{key}#{i}", (float(t.min()), float(t.max())))
            out.append(_fake_quant(t, low, high))
        return out

    def _input_hook(self, owner: str, leaf_name: str, leaf: nn.Module):
        def hook(_module, args):
            inputs = _tensors(args[:1])
            if not inputs:
                return None
            if self.observing:
                self._observe(leaf_name, inputs)
                return None
            if owner not in self.active:
                return None
            return (self._apply(leaf_name, inputs)[0], *args[1:])

        return hook

    def _output_hook(self, owner: str, path: str):
        key = f"{path}:out"

        def hook(_module, _args, output):
            if self.observing:
                self._observe(key, _tensors(output))
                return None
            if owner not in self.active:
                return None
            if isinstance(output, torch.Tensor):
                return self._apply(key, [output])[0]
            if isinstance(output, tuple) and all(isinstance(o, torch.Tensor) for o in output):
                return tuple(self._apply(key, list(output)))
            return None

        return hook

    @contextlib.contextmanager
    def quantised(self, active: set[str]) -> Iterator[None]:
        """Run with `active` candidates int8 (weights swapped in, restored after)."""
        self.active = set(active)
        layers = [layer for name in active for layer in self.leaves[name]]
        try:
            with int8_weights_swapped(layers, self.errors):
                yield
        finally:
            self.active = set()

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def _leaf_macs(leaf: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one conv / linear per image."""
    weight = leaf.weight
    if isinstance(leaf, nn.Conv2d):
        kh, kw = leaf.kernel_size
        h, w = x.shape[-2:] if not _channels_last(leaf, x) else x.shape[1:3]
        sh, sw = leaf.stride
        return int((h // sh) * (w // sw) * weight.shape[0] * (weight.shape[1]) * kh * kw)
    tokens = int(np.prod(x.shape[1:-1])) if x.dim() > 2 else 1
    return int(tokens * weight.shape[0] * weight.shape[1])


def _channels_last(leaf: nn.Conv2d, x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.shape[1] != leaf.in_channels and x.shape[-1] == leaf.in_channels


def logits_of(model: nn.Module, images: torch.Tensor, batch: int = EVAL_BATCH) -> np.ndarray:
    """`model`'s logits for `images`, in batches (a tuple output's first element)."""
    with torch.no_grad():
        parts = [model(images[i : i + batch]) for i in range(0, len(images), batch)]
    return torch.cat([p if isinstance(p, torch.Tensor) else p[0] for p in parts]).numpy()


def _sqnr_from_noise(signal: float, noise: float) -> float:
    """SQNR from mean signal and noise powers, capped as `metrics.sqnr_db` caps it."""
    if noise <= signal * 10 ** (-SQNR_CAP_DB / 10):
        return SQNR_CAP_DB
    return float(10 * np.log10(signal / noise))


def _predicted_float_set(
    order: list[Candidate], all_noise: float, signal: float, target_sqnr: float
) -> list[str]:
    """The first modules in `order` that bring the SQNR to the target if each module's share
    of the all-int8 noise is its share of the summed alone-noises (noises compound, so the
    all-int8 noise is usually more than their sum): one measured evaluation instead of one
    per module; the caller tops up with measured steps where this was optimistic."""
    total = sum(c.noise for c in order)
    chosen: list[str] = []
    remaining = all_noise
    for cand in order:
        if _sqnr_from_noise(signal, remaining) >= target_sqnr or total <= 0:
            break
        chosen.append(cand.module)
        remaining = max(remaining - all_noise * cand.noise / total, 0.0)
    return chosen


def held_out_indices(count: int) -> np.ndarray:
    """Which of `count` calibration photos are held out: evenly spread, the last of every
    1/HELD_OUT_FRACTION, so the held-out part spans every source the photos come from (the
    project's photos are grouped by package: a tail slice held out only one package's
    cut-outs on white, which scored 2.5 dB above the evaluation photos)."""
    held = max(MIN_HELD_OUT, int(round(count * HELD_OUT_FRACTION)))
    if count < held + 1:
        raise MfdeployError(
            f"int8: {count} calibration photos; measuring which modules stay float needs at "
            f"least {held + 1} (use --calib-count, or --int8-float MODULES / none)"
        )
    return np.array([(k + 1) * count // held - 1 for k in range(held)], dtype=np.int64)


def held_out_split(calibration: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(photos that set the ranges, held-out photos that score): a range is never fitted on
    a photo it is judged on (held_out_indices says which are held out, and why)."""
    photos = np.ascontiguousarray(calibration, np.float32)
    held = np.zeros(len(photos), dtype=bool)
    held[held_out_indices(len(photos))] = True
    return photos[~held], photos[held]


def candidate_macs(
    module: nn.Module, groups: dict[str, tuple[str, ...]], example: torch.Tensor
) -> dict[str, int]:
    """Multiply-accumulates per image of each candidate's convolutions and linears, counted
    on one forward of `module`."""
    mods = dict(module.named_modules())
    per_leaf: dict[nn.Module, tuple[str, int]] = {}  # a leaf called twice counts once
    handles = []

    def count(owner: str):
        def hook(leaf, args):
            if args and isinstance(args[0], torch.Tensor):
                per_leaf[leaf] = (owner, _leaf_macs(leaf, args[0]))

        return hook

    for name, roots in groups.items():
        for root in roots:
            for leaf in mods[root].modules():
                if isinstance(leaf, QUANTISED_LEAVES):
                    handles.append(leaf.register_forward_pre_hook(count(name)))
    try:
        with torch.no_grad():
            module.eval()(example[:1])
    finally:
        for handle in handles:
            handle.remove()
    macs = dict.fromkeys(groups, 0)
    for owner, count_ in per_leaf.values():
        macs[owner] += count_
    return macs


def search_float_set(
    groups: dict[str, tuple[str, ...]],
    macs: dict[str, int],
    noise_of: Callable[[set[str]], float],
    signal: float,
    target_sqnr: float,
) -> FloatPlan:
    """Score each candidate alone (`noise_of({name})`: held-out logit noise with only it
    int8), then keep float, in the order noise / compute, the fewest that bring the rest to
    `target_sqnr`: first as many as the noise shares predict, then measured steps."""
    names = list(groups)
    all_noise = noise_of(set(names))
    table = []
    for name in progress(names, "int8 sensitivity"):
        noise = noise_of({name})
        table.append(Candidate(name, _sqnr_from_noise(signal, noise), macs[name], noise))
    floor = MAC_FLOOR_FRACTION * max(sum(macs.values()), 1)
    order = sorted(table, key=lambda c: c.noise / (c.macs + floor), reverse=True)
    chosen = _predicted_float_set(order, all_noise, signal, target_sqnr)
    planned = noise_of(set(names) - set(chosen)) if chosen else all_noise
    for cand in order[len(chosen) :]:  # noise is not exactly additive: top up, measured
        if _sqnr_from_noise(signal, planned) >= target_sqnr:
            break
        chosen.append(cand.module)
        planned = noise_of(set(names) - set(chosen))
    alone = {c.module: c.noise for c in table}
    for name in reversed(list(chosen)):  # the estimate may overshoot: trim, measured
        if _sqnr_from_noise(signal, planned) < target_sqnr:
            break
        if _sqnr_from_noise(signal, planned + alone[name]) < target_sqnr - TRIM_SLACK_DB:
            continue  # its noise alone already sinks the rest: not worth an evaluation
        trial = noise_of(set(names) - (set(chosen) - {name}))
        if _sqnr_from_noise(signal, trial) >= target_sqnr:
            chosen.remove(name)
            planned = trial
    planned_db = _sqnr_from_noise(signal, planned)
    return FloatPlan(
        float_modules=tuple(p for n in names if n in chosen for p in groups[n]),
        chosen_by="measured",
        target_sqnr_db=target_sqnr,
        all_int8_sqnr_db=_sqnr_from_noise(signal, all_noise),
        planned_sqnr_db=planned_db,
        reached_target=planned_db >= target_sqnr,
        candidates=table,
    )


def search_with(
    module: nn.Module,
    groups: dict[str, tuple[str, ...]],
    photos: tuple[np.ndarray, np.ndarray],
    logits_with: Callable[[set[str]], np.ndarray],
    target_sqnr: float,
    measured_on: str,
) -> FloatPlan:
    """`search_float_set` with each int8 set's noise measured by `logits_with(active)`: the
    held-out logits with the `active` candidates int8, against `module`'s float32 ones.
    `photos` is (fit, score): `held_out_split`'s, `score` what `logits_with` runs."""
    fit, score = photos
    reference = logits_of(module.eval(), torch.from_numpy(score)).astype(np.float64)
    signal = float(np.mean(reference**2))

    def noise_of(active: set[str]) -> float:
        return float(np.mean((logits_with(active).astype(np.float64) - reference) ** 2))

    macs = candidate_macs(module, groups, torch.from_numpy(fit[:1]))
    plan = search_float_set(groups, macs, noise_of, signal, target_sqnr)
    plan.calibration_images, plan.held_out_images = len(fit), len(score)
    plan.measured_on = measured_on
    return plan


def measure_float_plan(
    module: nn.Module,
    calibration: np.ndarray,
    *,
    target_sqnr: float = DEFAULT_TARGET_SQNR,
    memo: dict[frozenset[str], float] | None = None,
) -> FloatPlan:
    """Measure each candidate's simulated int8 cost and choose the float set (module doc).

    `calibration`: (N, 3, R, R) float32 photos in the module's input layout. `memo` keeps
    each measured noise by int8 set for these weights and photos: a search for a higher
    target (a runtime check asking for more float modules) re-evaluates only new sets.
    """
    memo = {} if memo is None else memo
    groups = candidate_groups(module)
    fit_array, score_array = held_out_split(calibration)
    fit, score = torch.from_numpy(fit_array), torch.from_numpy(score_array)
    module = module.eval()
    macs = candidate_macs(module, groups, fit)
    errors = weight_errors(module, fit)
    sim = _Simulator(module, groups, errors)
    try:
        sim.observing = True
        logits_of(module, fit)
        sim.observing = False
        reference = logits_of(module, score)
        signal = float(np.mean(reference.astype(np.float64) ** 2))

        def noise_of(active: set[str]) -> float:
            key = frozenset(active)
            if key not in memo:
                with sim.quantised(active):
                    out = logits_of(module, score)
                memo[key] = float(np.mean((out.astype(np.float64) - reference) ** 2))
            return memo[key]

        plan = search_float_set(groups, macs, noise_of, signal, target_sqnr)
    finally:
        sim.close()
    plan.calibration_images, plan.held_out_images = len(fit), len(score)
    plan.weight_errors = errors
    info(f"int8: {plan.describe()}")
    return plan


# One process exporting many targets: plans by (module identity, photos, target), measured
# noises by (module identity, photos); the noises also on disk (`stored_noises`), for the
# other processes.
_MEASURED: dict[tuple[str, str, float], FloatPlan] = {}
_NOISES: dict[tuple[str, str], dict[frozenset[str], float]] = {}
NOISE_STORE = "int8-noises"
NOISE_FILES_KEPT = 64
# part of the noise store's key: its noises were measured with bias-corrected int8 weights
BIAS_CORRECTION = "int8 weights bias-corrected"


def stored_noises(path: Path) -> dict[frozenset[str], float]:
    """Noises an earlier export measured (empty when none or unreadable: they are only a
    shortcut, measured again when missing)."""
    try:
        rows = json.loads(path.read_text())
        return {frozenset(names): float(noise) for names, noise in rows}
    except (OSError, ValueError, TypeError):
        return {}


def store_noises(path: Path, memo: dict[frozenset[str], float]) -> None:
    rows = sorted([sorted(names), noise] for names, noise in memo.items())
    derived_cache.write(path, json.dumps(rows).encode(), NOISE_FILES_KEPT)


def float_plan(
    module: nn.Module,
    calibration: np.ndarray,
    spec: str | None = None,
    target_sqnr: float | None = None,
) -> FloatPlan:
    """The int8 float set for an export: `spec` (--int8-float) when given, else measured.

    A measurement is reused in the same process for the same weights, photos and target,
    and its measured noises by later exports of the same weights and photos in any process
    (the main job exports int8 for three targets from one model, in parallel workers; a
    runtime check exports again): only the int8 sets not measured before are evaluated.
    """
    given = parse_float_modules(spec, module)
    if given is not None:
        return FloatPlan(
            float_modules=given,
            chosen_by="given" if given else "none",
            weight_errors=weight_errors(module.eval(), torch.from_numpy(fit_photos(calibration))),
        )
    target = target_sqnr or DEFAULT_TARGET_SQNR
    photos = hashlib.sha256(np.ascontiguousarray(calibration, np.float32).tobytes()).hexdigest()
    key = (module_identity(module), photos, target)
    if key not in _MEASURED:
        # keyed by what the noises depend on: the module (tree, settings, weights), photos,
        # torch (the `module_cache_entry` name, from the identity already in `key`)
        store = derived_cache.entry(
            NOISE_STORE, ".json", *key[:2], torch.__version__, BIAS_CORRECTION
        )
        memo = _NOISES.setdefault(key[:2], {})
        with derived_cache.claimed(store):  # a search of the same weights elsewhere: wait
            stored = {k: v for k, v in stored_noises(store).items() if k not in memo}
            if stored:
                info(f"int8: {len(stored)} noise(s) measured by an earlier export of these weights")
                memo.update(stored)
            known = len(memo)
            plan = measure_float_plan(module, calibration, target_sqnr=target, memo=memo)
            if len(memo) > known:
                store_noises(store, memo)
        _MEASURED[key] = plan
    else:
        info(f"int8: {_MEASURED[key].describe()} (measured earlier in this run)")
    return copy.deepcopy(_MEASURED[key])


def fit_photos(calibration: np.ndarray) -> np.ndarray:
    """The photos a measured plan corrects the biases on (those that set the ranges), so a
    float set given with --int8-float exports what the search that chose it exported; all of
    them when too few to hold any out."""
    try:
        return held_out_split(calibration)[0]
    except MfdeployError:
        return np.ascontiguousarray(calibration, np.float32)


def float_regex(float_modules: tuple[str, ...]) -> str:
    """A regex matching the float modules' paths and everything inside them."""
    if not float_modules:
        return ""
    escaped = "|".join(name.replace(".", r"\.") for name in float_modules)
    return rf"^(?:{escaped})(?:\.|$)"
