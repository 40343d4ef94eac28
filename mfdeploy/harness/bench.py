"""Benchmark orchestration: artifact cache, one subprocess per backend run, result rows.

Backend names are what users know (torch, onnxruntime, tflite, coreml, executorch); each maps to an
export target and that target's runtime adapter. A backend is "installed" when its adapter
imports.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

from mfdeploy import __version__
from mfdeploy.artifact import Manifest, open_artifact
from mfdeploy.codehash import export_code_sha256
from mfdeploy.errors import MfdeployError
from mfdeploy.paths import cache_root

BACKEND_TARGETS: dict[str, str] = {
    "torch": "pytorch",
    "onnxruntime": "onnx",
    "tflite": "tflite",
    "coreml": "coreml",
    "executorch": "executorch",
}
# Packages whose versions change what an export produces (part of the cache key).
TOOL_PACKAGES = (
    "torch",
    "safetensors",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "onnxsim",
    "onnxslim",
    "litert-torch",
    "ai-edge-litert",
    "ai-edge-quantizer",
    "coremltools",
    "torchao",
    "executorch",
)
WORKER_TIMEOUT_S = 1800
#: executors that emulate a device on this machine (Core ML's MIL program run op by op in
#: numpy on Linux): their timings say nothing of a phone, and they are slow
EMULATED_EXECUTORS = ("mil-executor",)


def bench_cache() -> Path:
    """Exports reused across bench runs: $MFDEPLOY_BENCH_CACHE, else <cache root>/bench."""
    env = os.environ.get("MFDEPLOY_BENCH_CACHE")
    return Path(env) if env else cache_root() / "bench"


def backend_installed(backend: str) -> bool:
    """Registered as an export target and its runtime adapter imports."""
    from mfdeploy.export import TARGETS
    from mfdeploy.runtimes import runtime_class

    target = BACKEND_TARGETS.get(backend)
    if target not in TARGETS:
        return False
    try:
        runtime_class(target)
    except MfdeployError:
        return False
    return True


def resolve_backends(choice: str) -> list[str]:
    if choice == "all":
        return [b for b in BACKEND_TARGETS if backend_installed(b)]
    if choice not in BACKEND_TARGETS:
        raise MfdeployError(f"unknown backend {choice!r}; choose {', '.join(BACKEND_TARGETS)}")
    if not backend_installed(choice):
        raise MfdeployError(f"backend {choice} is not installed (no target or runtime adapter)")
    return [choice]


def target_precisions(target: str) -> tuple[str, ...]:
    from mfdeploy.export import target_module

    return tuple(target_module(target).PRECISIONS)


def _tool_versions() -> dict[str, str]:
    versions = {"mfdeploy": __version__, "mfdeploy-code": export_code_sha256()}
    for name in TOOL_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def weights_hash(model_name: str, weights: str | None) -> str:
    """The manifest's weights identity, without an export (mfdeploy.models.weights_sha256)."""
    from mfdeploy.models import resolve_model, weights_sha256

    entry, variant = resolve_model(model_name)
    weights = weights or entry.default_weights
    return weights_sha256(weights, lambda: entry.build(variant, weights, None), entry)


def cache_key(model: str, target: str, precision: str, form: str, whash: str) -> str:
    payload = json.dumps(
        {
            "model": model,
            "target": target,
            "precision": precision,
            "form": form,
            "weights": whash,
            "tools": _tool_versions(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cached_artifact(
    model: str,
    target: str,
    precision: str,
    *,
    weights: str | None = None,
    form: str = "deploy",
    whash: str | None = None,
    int8_float: str | None = None,
) -> tuple[Path, bool]:
    """The artifact for this key, exported on a miss. Returns (dir, was_cached).
    `int8_float` (--int8-float) names an entry of its own beside the default one."""
    from mfdeploy.harness.int8_check import export_checked

    whash = whash or weights_hash(model, weights)
    variant = "" if int8_float is None else f"float-{int8_float}-"
    key = cache_key(model, target, precision, form, whash)
    out = bench_cache() / f"{model}-{target}-{precision}-{variant}{key}"
    if (out / "manifest.json").is_file():
        with contextlib.suppress(MfdeployError):
            open_artifact(out)  # sealed and intact, else exported again
            return out, True
    # The cache is mfdeploy's own directory: a broken entry there is replaced (force).
    export_checked(
        target, model, precision=precision, weights=weights, out=out, form=form, force=True,
        int8_float=int8_float,
    )  # fmt: skip
    return out, False


def measure_here(
    artifact: Path, threads: int, runs: int, warmup: int, budget_s: float | None = None
) -> dict:
    """`run_worker`'s measurement in this process, for an emulated executor
    (`EMULATED_EXECUTORS`): its timing is no device latency, so a fresh process (15 s of
    coremltools import per row) buys nothing; its peak RSS would be this process's, so none
    is reported."""
    from mfdeploy.harness.bench_worker import measure

    return measure(str(artifact), threads, runs, warmup, budget_s) | {"peak_rss_mb": None}


def run_worker(
    artifact: Path, threads: int, runs: int, warmup: int, budget_s: float | None = None
) -> dict:
    """One measurement in a fresh interpreter; its JSON line back."""
    budget = ["--budget", str(budget_s)] if budget_s else []
    cmd = [
        sys.executable,
        "-m",
        "mfdeploy.harness.bench_worker",
        str(artifact),
        "--threads",
        str(threads),
        "--runs",
        str(runs),
        "--warmup",
        str(warmup),
        *budget,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise MfdeployError(f"benchmark of {artifact} timed out") from None
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or "no output").splitlines()
        raise MfdeployError(f"benchmark of {artifact} failed: {lines[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_row(backend: str, manifest: Manifest, measured: dict, threads: int) -> dict:
    return {
        "backend": backend,
        "precision": manifest.precision,
        "variant": manifest.variant or manifest.model,
        "model": manifest.model,
        "threads": threads,
        "init_ms": measured["init_ms"],
        "first_ms": measured["first_ms"],
        "latency_ms": measured["latency_ms"],
        "peak_rss_mb": measured["peak_rss_mb"],
        "model_bytes": measured["model_bytes"],
        "executor": measured["executor"],
    }


def backend_of(target: str) -> str:
    for backend, t in BACKEND_TARGETS.items():
        if t == target:
            return backend
    return target
