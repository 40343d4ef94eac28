"""The main job: export every target x precision, verify and bench each, write a report.

Failures of one cell (an exporter that is not installed, an int8 path that breaks) are
recorded in that row and the report goes on: the report is where they should be seen.
Each step's converter output goes to `<out>/logs/<row>.log`; the console shows one
progress display and one line per finished row.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mfdeploy import __version__
from mfdeploy.console import counted
from mfdeploy.errors import MfdeployError
from mfdeploy.harness import bench, steplog
from mfdeploy.harness.export_pool import ExportDone, ExportJob, ExportPool
from mfdeploy.harness.timing import DEFAULT_RUNS, DEFAULT_WARMUP, MIN_RUNS
from mfdeploy.runtimes.cpu import CPUINFO, cpu_fields, cpu_flags

#: seconds of timed runs per row at most (a slow runtime times fewer runs, at least MIN_RUNS)
ROW_BUDGET_S = 8.0
#: an emulated executor's timings say nothing of a device (bench.EMULATED_EXECUTORS): a
#: short look is enough to draw it apart, and the main job's time goes to real runtimes
EMULATED_BUDGET_S = 2.0
EMULATED_WARMUP = 1


@dataclass
class ReportOptions:
    targets: list[str] | None = None
    precisions: list[str] | None = None
    weights: str | None = None
    form: str = "deploy"
    threads: int = 1
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    budget_s: float | None = ROW_BUDGET_S
    include_yardsticks: bool = True
    verbose: bool = False
    workers: int | None = None  # concurrent exports (default: one per core, export_pool)
    notes: list[str] = field(default_factory=list)


def yardsticks(console: Console) -> list[tuple[str, str]]:
    """(model, weights) of the registry's yardstick models whose trained weights load here."""
    from mfdeploy.models import families

    found = []
    for entry in families().values():
        if not entry.yardstick:
            continue
        try:
            entry.build(entry.default_variant, entry.default_weights, None)
        except (MfdeployError, ImportError, OSError):
            console.print(f"{entry.title}: trained weights not installed, left out")
            continue
        found.append((entry.model_name(entry.default_variant), entry.default_weights))
    return found


#: `--precisions` value for every precision, the comparison ones included
ALL_PRECISIONS = "all"


def plan_cells(
    targets: list[str] | None, precisions: list[str] | None, console: Console | None = None
) -> list[tuple[str, str]]:
    """(target, precision) for every registered target whose runtime adapter imports.

    Without `precisions`, every precision a target recommends: its comparison precisions
    (`COMPARISON_PRECISIONS`, never shipped) cost the main job minutes for a row the report
    says not to ship, so they run only when named or with ALL_PRECISIONS.
    """
    from mfdeploy.export import TARGETS

    cells = []
    for target in TARGETS:
        if targets and target not in targets:
            continue
        if not bench.backend_installed(bench.backend_of(target)):
            if console is not None:
                console.print(f"skipping target {target}: its runtime adapter is not installed")
            continue
        for precision in bench.target_precisions(target):
            if not precisions:
                wanted = precision not in comparison_precisions(target)
            else:
                wanted = ALL_PRECISIONS in precisions or precision in precisions
            if wanted:
                cells.append((target, precision))
    return cells


def comparison_precisions(target: str) -> tuple[str, ...]:
    """Precisions a target offers for comparison only (not recommended to ship)."""
    from mfdeploy.export import target_module

    return tuple(getattr(target_module(target), "COMPARISON_PRECISIONS", ()))


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


def _new_row(job: ExportJob) -> dict:
    return {
        "model": job.model,
        "target": job.target,
        "precision": job.precision,
        "backend": bench.backend_of(job.target),
        "comparison": job.precision in comparison_precisions(job.target),
        "log": str(job.log),
        "error": None,
        "seconds": {},
    }


def _take_export(row: dict, done: ExportDone, threads: int) -> None:
    """A pool result into the row (`threads`: what an emulated row's bench was asked for)."""
    row["seconds"].update(done.seconds)
    row["error"] = done.error
    if done.artifact is not None:
        row["artifact"] = str(done.artifact)
    if done.verify is not None:
        row["verify"] = done.verify
        row["top1_accuracy"] = done.top1_accuracy
    if done.bench is not None:
        _store_bench(row, done.bench, threads)


def emulated_bench_args(opts: ReportOptions) -> dict:
    """`bench.measure_here` arguments for an emulated executor: a short look, taken in the
    export pool (its timing is no device latency, so it needs no quiet machine)."""
    budget = min(opts.budget_s or EMULATED_BUDGET_S, EMULATED_BUDGET_S)
    return {
        "threads": opts.threads,
        "runs": opts.runs,
        "warmup": min(opts.warmup, EMULATED_WARMUP),
        "budget_s": budget,
    }


def _store_bench(row: dict, measured: dict, threads: int) -> None:
    keys = ("init_ms", "first_ms", "latency_ms", "peak_rss_mb", "model_bytes", "executor")
    row["bench"] = {k: measured[k] for k in keys}
    row["bench"].update(threads=threads, runs=measured["runs"], warmup=measured["warmup"])


def _bench_row(row: dict, opts: ReportOptions) -> None:
    """Latency, peak RSS and size from a fresh worker process (nothing else runs meanwhile)."""
    start = time.perf_counter()
    try:
        with steplog.captured(Path(row["log"]), enabled=not opts.verbose):
            measured = bench.run_worker(
                Path(row["artifact"]), opts.threads, opts.runs, opts.warmup, opts.budget_s
            )
    except MfdeployError as exc:
        row["error"] = str(exc)
        return
    _store_bench(row, measured, opts.threads)
    row["seconds"]["bench"] = round(time.perf_counter() - start, 1)


#: CPU features that decide how fast int8 runs against float32 (XNNPACK / MLAS pick kernels
#: by them): x86 VNNI / AMX dot products, ARM dot product (asimddp) and int8 matrix (i8mm).
INT8_CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def machine(cpuinfo: Path = CPUINFO) -> dict:
    """What the figures were measured on; `int8_features` because int8's gain over float32
    depends on them (docs/int8.md: XNNPACK int8 ties fp32 on an AVX2-only CPU, gains 1.6x on
    EfficientNet-Lite0 with AVX-512 VNNI)."""
    fields = cpu_fields(cpuinfo)  # the first CPU's entries (Linux)
    model = fields.get("model name") or platform.processor() or platform.machine()
    flags = cpu_flags(fields)
    return {
        "platform": platform.platform(),
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "int8_features": [f for f in INT8_CPU_FEATURES if f in flags],
        "python": platform.python_version(),
    }


def _row_line(row: dict) -> str:
    """One console line per finished row."""
    name = _label(row)
    if row["error"]:
        return f"[red]ERROR[/red] {name}: {row['error']} (log: {row['log']})"
    v, b = row["verify"], row["bench"]
    verdict = "[green]pass[/green]" if v["passed"] else "[red]FAIL[/red]"
    sqnr = v["metrics"]["sqnr_db"]
    spent = _spent(row)
    return (
        f"{verdict} {name}: {sqnr:.1f} dB, {b['latency_ms']['median']:.2f} ms, "
        f"{b['model_bytes'] / 1e6:.1f} MB ({spent})"
    )


def _spent(row: dict) -> str:
    """Seconds per step of a row, as the console lines show them."""
    return ", ".join(f"{k} {s:.0f} s" for k, s in row["seconds"].items())


def _verified_line(row: dict, done: int, total: int) -> str:
    """Phase 1's line for a row (where no live progress display shows)."""
    v = row["verify"]
    verdict = "pass" if v["passed"] else "FAIL"
    spent = _spent(row)
    return (
        f"[{done}/{total}] {_label(row)}: exported, verify {verdict} "
        f"{v['metrics']['sqnr_db']:.1f} dB ({spent})"
    )


def _progress(console: Console) -> Progress:
    # redirect_*=False: rich would otherwise print Python-level output above the bar, past the
    # step logs
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )


def _run_jobs(jobs: list[ExportJob], opts: ReportOptions, console: Console) -> list[dict]:
    """Two phases: export + verify, several rows at a time (export_pool), then every bench
    alone, one backend at a time, so that nothing competes with a timed run."""
    rows = [_new_row(job) for job in jobs]
    pool = ExportPool(jobs, opts.workers)
    console.print(
        f"1/2 export + verify {len(jobs)} artifacts, {pool.workers} at a time "
        f"(converter output: {jobs[0].log.parent}/)",
        highlight=False,
    )
    with _progress(console) as progress, pool:
        task = progress.add_task("export + verify", total=len(jobs))
        progress.update(task, description=f"{pool.workers} at a time: export + verify")
        started, finished = time.monotonic(), 0

        def still_working() -> None:  # no live bar in a log file: say it is not stuck
            minutes = (time.monotonic() - started) / 60
            progress.console.print(
                f"... {finished}/{len(jobs)} rows done, {pool.workers} exporting, "
                f"{minutes:.0f} min elapsed",
                highlight=False,
            )

        heartbeat = None if console.is_terminal else still_working
        for finished, (index, job, done) in enumerate(pool.results(heartbeat), start=1):
            row = rows[index]
            _take_export(row, done, opts.threads)
            if row["error"]:
                progress.console.print(_row_line(row), highlight=False)
                if job.capture:
                    progress.console.print(steplog.tail(job.log), markup=False, highlight=False)
            elif "bench" in row:  # emulated: benched in the pool, finished here
                progress.console.print(_row_line(row), highlight=False)
            elif not console.is_terminal:  # no live bar in a log file: one line per row
                progress.console.print(_verified_line(row, finished, len(jobs)), highlight=False)
            progress.advance(task)
            progress.update(task, description=f"last done: {_label(row)}")
    measured = [r for r in rows if not r["error"] and "bench" not in r]
    emulated = sum(1 for r in rows if "bench" in r)
    console.print(
        f"2/2 bench {len(measured)} artifacts, one at a time, {counted(opts.threads, 'thread')}"
        + (f" (and {emulated} emulated, timed beside the exports)" if emulated else ""),
        highlight=False,
    )
    with _progress(console) as progress:
        task = progress.add_task("bench", total=len(measured))
        for row in measured:
            progress.update(task, description=f"{_label(row)}: bench")
            _bench_row(row, opts)
            progress.console.print(_row_line(row), highlight=False)
            if row["error"] and not opts.verbose:
                progress.console.print(steplog.tail(Path(row["log"])), markup=False,
                                       highlight=False)  # fmt: skip
            progress.advance(task)
    return rows


def _label(row: dict) -> str:
    return f"{row['model']} {row['target']} {row['precision']}"


def build_report(variant: str, out: Path, opts: ReportOptions | None = None) -> dict:
    """Run the job for `variant` (and the yardsticks) and write report.md / .json / plots."""
    from mfdeploy.models import resolve_model

    opts = opts or ReportOptions()
    steplog.quiet_third_parties()
    console = steplog.job_console()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MfdeployError(f"cannot write to {out}: {exc.strerror or exc}") from None
    cells = plan_cells(opts.targets, opts.precisions, console)
    if not cells:
        raise MfdeployError("no target / precision to report on (check --targets / --precisions)")
    entry, name = resolve_model(variant)
    models = [(entry.model_name(name), opts.weights)]
    if opts.include_yardsticks:
        models += [m for m in yardsticks(console) if resolve_model(m[0])[1] != name]
    whashes = {m: bench.weights_hash(m, w) for m, w in models}
    jobs = [
        ExportJob(
            m, w, t, p, opts.form, whashes[m],
            out / "logs" / f"{_slug(m, t, p)}.log", capture=not opts.verbose,
            emulated_bench=emulated_bench_args(opts),
        )
        for m, w in models
        for t, p in cells
    ]  # fmt: skip
    for job in jobs:
        job.log.unlink(missing_ok=True)
    started = time.time()
    rows = _run_jobs(jobs, opts, console)
    synthetic = (opts.weights or entry.default_weights) == "synthetic"
    notes = list(opts.notes)
    if synthetic:
        notes.insert(
            0,
            f"{entry.title} {name} uses the seeded SYNTHETIC weights: parity and "
            "latency are meaningful, ImageNet accuracy is not.",
        )
    report = {
        "mfdeploy": __version__,
        "variant": entry.model_name(name),
        "weights": opts.weights or entry.default_weights,
        "synthetic_weights": synthetic,
        "form": opts.form,
        "threads": opts.threads,
        "runs": opts.runs,
        "warmup": opts.warmup,
        "machine": machine(),
        "seconds": round(time.time() - started, 1),
        "notes": notes,
        "summary": summary(rows),
        "rows": rows,
        "plots": {
            "latency": "latency.png",
            "parity_vs_latency": "parity_vs_latency.png",
            "size_vs_latency": "size_vs_latency.png",
        },
    }
    from mfdeploy.harness import plots  # the [report] extra

    plots.latency_bars(rows, out / "latency.png")
    plots.parity_scatter(rows, out / "parity_vs_latency.png")
    plots.size_scatter(rows, out / "size_vs_latency.png")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report


# ---------------------------------------------------------------------------- summary
PLATFORMS = (  # (platform, target), in the order a reader looks for them
    ("Android (LiteRT)", "tflite"),
    ("iOS / macOS (Core ML)", "coreml"),
    ("ONNX Runtime (Android, iOS, web, desktop)", "onnx"),
    ("Android / iOS (ExecuTorch)", "executorch"),
)


def _passed(row: dict) -> bool:
    return not row["error"] and row["verify"]["passed"]


def _median(row: dict) -> float:
    return row["bench"]["latency_ms"]["median"]


#: report rows are timed one at a time, not interleaved: medians within this fraction of the
#: fastest are a tie, and the smallest of the tied ships (294m's ONNX int8 timed 8.21 ms
#: against fp32's 8.15 in one main job and 1.10x faster interleaved, at a third of the size)
LATENCY_TIE = 0.05


def _against_fp32(pick: dict, rows: list[dict], emulated: bool) -> dict | None:
    """What a pick gains over the same target's fp32 row (what quantising buys): fp32's
    median and size, fp32 median / the pick's (None on an emulated runtime, whose latency
    says nothing of a device) and the pick's size / fp32's. None for an fp32 pick or when
    there is no timed fp32 row."""
    if pick["precision"] == "fp32":
        return None
    fp32 = next(
        (
            r for r in rows
            if r["model"] == pick["model"] and r["target"] == pick["target"]
            and r["precision"] == "fp32" and not r["error"] and r.get("bench")
        ),
        None,
    )  # fmt: skip
    if fp32 is None:
        return None
    fp32_bytes = fp32["bench"]["model_bytes"]
    return {
        "fp32_median_ms": _median(fp32),
        "fp32_mb": round(fp32_bytes / 1e6, 2),
        "speedup": None if emulated else _median(fp32) / _median(pick),
        "size_ratio": pick["bench"]["model_bytes"] / fp32_bytes,
    }


def summary(rows: list[dict]) -> dict:
    """Per model and platform: the artifact to ship (the fastest that passes, the smallest of
    those within LATENCY_TIE of it; on an emulated runtime the smallest, its latency says
    nothing of a device), and what failed."""
    picks: dict[str, dict[str, dict]] = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        for platform_name, target in PLATFORMS:
            ok = [
                r for r in rows
                if r["model"] == model and r["target"] == target and _passed(r)
                and not r["comparison"]
            ]  # fmt: skip
            if not ok:
                continue
            emulated = ok[0]["bench"]["executor"] in bench.EMULATED_EXECUTORS
            fastest = min(ok, key=_median)
            tied = [r for r in ok if _median(r) <= _median(fastest) * (1 + LATENCY_TIE)]
            best = min(ok if emulated else tied, key=lambda r: r["bench"]["model_bytes"])
            if emulated:
                by = "size (emulated runtime)"
            else:
                by = "latency" if best is fastest else "latency tie, then size"
            picks.setdefault(model, {})[platform_name] = {
                "precision": best["precision"],
                "by": by,
                "median_ms": _median(best),
                "mb": round(best["bench"]["model_bytes"] / 1e6, 2),
                "sqnr_db": best["verify"]["metrics"]["sqnr_db"],
                "vs_fp32": _against_fp32(best, rows, emulated),
            }
    failed = [
        {
            "row": f"{r['model']} {r['target']} {r['precision']}",
            "comparison": r["comparison"],
            "why": r["error"] or "; ".join(r["verify"]["failed"]),
        }
        for r in rows
        if not _passed(r)
    ]
    return {"ship": picks, "failed": failed}


def _pick_text(p: dict) -> str:
    """Why a pick ships and its numbers, with what it gains over the target's fp32."""
    by = {
        "latency": "fastest passing",
        "latency tie, then size": (
            f"smallest of the passing within {LATENCY_TIE:.0%} of the fastest"
        ),
        "size (emulated runtime)": "smallest passing, emulated runtime: its latency is no device's",
    }[p["by"]]
    ms, mb = f"{p['median_ms']:.2f} ms", f"{p['mb']:.1f} MB"
    gain = p.get("vs_fp32")
    if gain and gain["speedup"] is not None:
        ms += f", {gain['speedup']:.2f}x as fast as fp32's {gain['fp32_median_ms']:.2f}"
    if gain:
        mb += f", {gain['size_ratio']:.2f}x fp32's {gain['fp32_mb']:.1f}"
    return f"{by}; {ms}; {mb}; {p['sqnr_db']:.1f} dB vs PyTorch"


def ship_lines(report: dict) -> list[str]:
    """The summary's picks, a console line each: what a user of the main job looks for."""
    return [
        f"ship {model} on {platform_name}: {p['precision']} ({_pick_text(p)})"
        for model, per_platform in report["summary"]["ship"].items()
        for platform_name, p in per_platform.items()
    ]


def _summary_lines(report: dict) -> list[str]:
    s = report["summary"]
    lines = ["## Summary", ""]
    for model, per_platform in s["ship"].items():
        parts = [
            f"{platform_name}: **{p['precision']}** ({_pick_text(p)})"
            for platform_name, p in per_platform.items()
        ]
        lines.append(f"- **{model}**, ship: " + "; ".join(parts) + ".")
    shipped = [f for f in s["failed"] if not f["comparison"]]
    compared = [f for f in s["failed"] if f["comparison"]]
    if not shipped:
        lines.append("- Every recommended precision passed its parity bounds.")
    for f in shipped:
        lines.append(f"- FAILED {f['row']}: {f['why']}")
    for f in compared:
        lines.append(f"- Comparison precision {f['row']} fails its bounds: {f['why']}")
    lines.append(
        "- Latency is this machine's CPU; Core ML on Linux runs the MIL executor (numpy "
        "emulation), not a device; its rows have no top-1 accuracy (minutes per row there; "
        "their agreement with PyTorch is in the table)."
    )
    return [*lines, ""]


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


TABLE_HEADER = [
    "| model | target | precision | runtime / executor | max abs | cosine | SQNR dB | "
    "top-1 agr | verify | top-1 acc | init ms | median ms | p90 ms | runs | peak RSS MB | "
    "size MB |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
]


def _table_row(r: dict) -> str:
    v, b = r.get("verify"), r.get("bench")
    m = v["metrics"] if v else {}
    verdict = "ERROR" if r["error"] else ("pass" if v["passed"] else "FAIL")
    return (
        f"| {r['model']} | {r['target']} | {r['precision']} | "
        f"{v['runtime'] + ' / ' + v['executor'] if v else '-'} | "
        f"{_fmt(m.get('max_abs'), '.2e')} | {_fmt(m.get('cosine'), '.6f')} | "
        f"{_fmt(m.get('sqnr_db'), '.1f')} | {_fmt(m.get('top1_agreement'), '.2f')} | "
        f"{verdict} | {_fmt(r.get('top1_accuracy'), '.3f')} | "
        f"{_fmt(b and b['init_ms'], '.1f')} | "
        f"{_fmt(b and b['latency_ms']['median'], '.2f')} | "
        f"{_fmt(b and b['latency_ms']['p90'], '.2f')} | "
        f"{b['runs'] if b else '-'} | "
        f"{_fmt(b and b['peak_rss_mb'], '.0f')} | "
        f"{_fmt(b and b['model_bytes'] / 1e6, '.2f')} |"
    )


def render_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# mfdeploy report: {report['variant']}",
        "",
        f"mfdeploy {report['mfdeploy']}, {report['form']} form, weights: {report['weights']}, "
        f"batch 1, {counted(report['threads'], 'thread')}, up to {report['runs']} timed runs "
        f"(as many as fit {ROW_BUDGET_S:.0f} s, at least {MIN_RUNS}) after {report['warmup']} "
        "warm-up; "
        f"emulated backends: {EMULATED_BUDGET_S:.0f} s, timed in the export workers (no "
        f"peak RSS of their own). "
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs, {m['platform']}; int8-relevant CPU "
        f"features: {', '.join(m.get('int8_features') or []) or 'none found'}.",
        "",
    ]
    lines += [f"> {note}" for note in report["notes"]]
    lines += ["", *_summary_lines(report), "## Recommended precisions", "", *TABLE_HEADER]
    lines += [_table_row(r) for r in report["rows"] if not r["comparison"]]
    compared = [r for r in report["rows"] if r["comparison"]]
    if compared:
        lines += ["", "## Comparison precisions (not recommended to ship)", "", *TABLE_HEADER]
        lines += [_table_row(r) for r in compared]
    fails = [r for r in report["rows"] if r["error"] or not r["verify"]["passed"]]
    if fails:
        lines += ["", "## What failed", ""]
        for r in fails:
            why = r["error"] or "; ".join(r["verify"]["failed"])
            lines.append(f"- {r['model']} {r['target']} {r['precision']}: {why} (`{r['log']}`)")
    lines += [
        "",
        "## Plots",
        "",
        "![latency](latency.png)",
        "",
        "![parity vs latency](parity_vs_latency.png)",
        "",
        "![size vs latency](size_vs_latency.png)",
        "",
        f"Generated in {report['seconds']} s by `mfdeploy report --variant {report['variant']}`; "
        "each step's converter output is in `logs/`.",
        "",
    ]
    return "\n".join(lines)
