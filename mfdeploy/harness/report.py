"""The main job: export every target x precision, verify and bench each, write a report.

Failures of one cell (an exporter that is not installed, an int8 path that breaks) are
recorded in that row and the report goes on: the report is where they should be seen.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from mfdeploy import __version__
from mfdeploy.console import info
from mfdeploy.errors import MfdeployError
from mfdeploy.harness import bench
from mfdeploy.harness.verify import verify_artifact


def yardsticks() -> list[tuple[str, str]]:
    """(model, weights) of the registry's yardstick models whose trained weights load here."""
    from mfdeploy.models import families

    found = []
    for entry in families().values():
        if not entry.yardstick:
            continue
        try:
            entry.build(entry.default_variant, entry.default_weights, None)
        except (MfdeployError, ImportError, OSError):
            info(f"{entry.title}: trained weights not installed, left out of the report")
            continue
        found.append((entry.model_name(entry.default_variant), entry.default_weights))
    return found


def plan_cells(targets: list[str] | None, precisions: list[str] | None) -> list[tuple[str, str]]:
    """(target, precision) for every registered target whose runtime adapter imports."""
    from mfdeploy.export import TARGETS

    cells = []
    for target in TARGETS:
        if targets and target not in targets:
            continue
        if not bench.backend_installed(bench.backend_of(target)):
            info(f"skipping target {target}: its runtime adapter is not installed")
            continue
        for precision in bench.target_precisions(target):
            if not precisions or precision in precisions:
                cells.append((target, precision))
    return cells


def _cell(
    model: str,
    weights: str | None,
    target: str,
    precision: str,
    *,
    form: str,
    threads: int,
    runs: int,
    warmup: int,
    whash: str,
) -> dict:
    row: dict = {
        "model": model,
        "target": target,
        "precision": precision,
        "backend": bench.backend_of(target),
        "error": None,
    }
    try:
        artifact, _ = bench.cached_artifact(
            model, target, precision, weights=weights, form=form, whash=whash
        )
        row["artifact"] = str(artifact)
        result = verify_artifact(
            artifact, weights=weights if weights and Path(weights).is_file() else None
        )
        row["verify"] = result.to_json()
        row["verify"]["failed"] = result.failed
        row["top1_accuracy"] = _accuracy(artifact, synthetic=result.synthetic_weights)
        measured = bench.run_worker(artifact, threads, runs, warmup)
        row["bench"] = {
            k: measured[k]
            for k in ("init_ms", "first_ms", "latency_ms", "peak_rss_mb", "model_bytes", "executor")
        }
        row["bench"]["threads"] = threads
    except MfdeployError as exc:
        row["error"] = str(exc)
        info(f"{model} {target} {precision}: {exc}")
    return row


def _accuracy(artifact: Path, *, synthetic: bool) -> float | None:
    """Top-1 on the labelled photos; None for synthetic weights (it would mean nothing) or
    when the labelled photos are not fetched."""
    if synthetic:
        return None
    from mfdeploy.harness.accuracy import accuracy, labelled_images
    from mfdeploy.preprocessing import Preprocessing
    from mfdeploy.runtimes import open_runtime

    try:
        pairs = labelled_images(None)
    except MfdeployError:
        return None
    runtime = open_runtime(artifact)
    prep = Preprocessing.from_dict(runtime.manifest.preprocessing)
    return accuracy(runtime.run, pairs, prep).top1


def build_report(
    variant: str,
    out: Path,
    *,
    targets: list[str] | None = None,
    precisions: list[str] | None = None,
    weights: str | None = None,
    form: str = "deploy",
    threads: int = 1,
    runs: int = 10,
    warmup: int = 2,
    include_yardsticks: bool = True,
) -> dict:
    from mfdeploy.console import progress

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MfdeployError(f"cannot write to {out}: {exc.strerror or exc}") from None
    cells = plan_cells(targets, precisions)
    if not cells:
        raise MfdeployError("no target / precision to report on (check --targets / --precisions)")
    from mfdeploy.models import resolve_model

    entry, name = resolve_model(variant)
    models = [(variant, weights)]
    notes: list[str] = []
    if include_yardsticks:
        models += [m for m in yardsticks() if resolve_model(m[0])[1] != name]
    jobs = [(m, w, t, p) for m, w in models for t, p in cells]
    rows = []
    started = time.time()
    whashes = {m: bench.weights_hash(m, w) for m, w in models}
    for m, w, t, p in progress(jobs, "export + verify + bench"):
        info(f"{m}: {t} {p}")
        rows.append(
            _cell(
                m, w, t, p, form=form, threads=threads, runs=runs, warmup=warmup, whash=whashes[m]
            )
        )
    synthetic = (weights or entry.default_weights) == "synthetic"
    if synthetic:
        notes.insert(
            0,
            f"{entry.title} {name} uses the seeded SYNTHETIC weights: parity and "
            "latency are meaningful, ImageNet accuracy is not.",
        )
    report = {
        "mfdeploy": __version__,
        "variant": variant,
        "weights": weights or "synthetic",
        "synthetic_weights": synthetic,
        "form": form,
        "threads": threads,
        "runs": runs,
        "warmup": warmup,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        },
        "seconds": round(time.time() - started, 1),
        "notes": notes,
        "rows": rows,
        "plots": {"latency": "latency.png", "parity_vs_latency": "parity_vs_latency.png"},
    }
    from mfdeploy.harness.plots import latency_bars, parity_scatter  # the [report] extra

    latency_bars(rows, out / "latency.png")
    parity_scatter(rows, out / "parity_vs_latency.png")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_markdown(report: dict) -> str:
    lines = [
        f"# mfdeploy report: {report['variant']}",
        "",
        f"mfdeploy {report['mfdeploy']}, {report['form']} form, weights: {report['weights']}, "
        f"{report['threads']} thread(s), {report['runs']} timed runs after "
        f"{report['warmup']} warm-up, batch 1. Machine: {report['machine']['platform']}.",
        "",
    ]
    lines += [f"> {note}" for note in report["notes"]]
    lines += [
        "",
        "| model | target | precision | runtime / executor | max abs | cosine | SQNR dB | "
        "top-1 agr | verify | top-1 acc | init ms | median ms | p90 ms | peak RSS MB | size MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        v, b = r.get("verify"), r.get("bench")
        m = v["metrics"] if v else {}
        verdict = "-" if not v else ("pass" if v["passed"] else "FAIL")
        lines.append(
            f"| {r['model']} | {r['target']} | {r['precision']} | "
            f"{v['runtime'] + ' / ' + v['executor'] if v else '-'} | "
            f"{_fmt(m.get('max_abs'), '.2e')} | {_fmt(m.get('cosine'), '.6f')} | "
            f"{_fmt(m.get('sqnr_db'), '.1f')} | {_fmt(m.get('top1_agreement'), '.2f')} | "
            f"{verdict} | {_fmt(r.get('top1_accuracy'), '.3f')} | "
            f"{_fmt(b and b['init_ms'], '.1f')} | "
            f"{_fmt(b and b['latency_ms']['median'], '.2f')} | "
            f"{_fmt(b and b['latency_ms']['p90'], '.2f')} | "
            f"{_fmt(b and b['peak_rss_mb'], '.0f')} | "
            f"{_fmt(b and b['model_bytes'] / 1e6, '.2f')} |"
        )
    errors = [r for r in report["rows"] if r["error"]]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- {r['model']} {r['target']} {r['precision']}: {r['error']}" for r in errors]
    fails = [r for r in report["rows"] if r.get("verify") and not r["verify"]["passed"]]
    if fails:
        lines += ["", "## Failed thresholds", ""]
        lines += [
            f"- {r['model']} {r['target']} {r['precision']}: {'; '.join(r['verify']['failed'])}"
            for r in fails
        ]
    lines += [
        "",
        "## Plots",
        "",
        "![latency](latency.png)",
        "",
        "![parity vs latency](parity_vs_latency.png)",
        "",
        f"Generated in {report['seconds']} s by `mfdeploy report --variant {report['variant']}`.",
        "",
    ]
    return "\n".join(lines)
