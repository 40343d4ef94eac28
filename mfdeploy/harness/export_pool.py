"""The main job's exports and their verification, several at a time, each in its own
process, converter output in the row's log.

A converter spends most of an export on one core (tracing, graph passes, flatbuffer /
protobuf writing in Python), and so does a verify on most runtimes, so on a machine with N
cores N rows at once finish this phase close to N times sooner. Exports land in the bench
cache (`bench.cached_artifact`), where the report's bench step finds them: nothing is
exported twice. Latency is never measured while this pool runs (the report benches after it).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from mfdeploy.errors import MfdeployError

#: seconds without a finished row after which `ExportPool.results` calls its `idle` callback
IDLE_EVERY_S = 60.0
#: more concurrent exports than this gains little and multiplies peak memory (~3 GB each)
MAX_WORKERS = 4


@dataclass(frozen=True)
class ExportJob:
    """One artifact of the report: what to export and where its converter output goes."""

    model: str
    weights: str | None
    target: str
    precision: str
    form: str
    whash: str
    log: Path
    capture: bool = True
    #: `bench.measure_here`'s keyword arguments for a row verify finds on an emulated
    #: executor (bench.EMULATED_EXECUTORS): benched here, in the export worker beside the
    #: other exports, since its timing says nothing of a device; None leaves every bench to
    #: the report's quiet phase
    emulated_bench: dict | None = None


@dataclass(frozen=True)
class ExportDone:
    """A row's export and verify: the cached artifact, verify's JSON, top-1 on the labelled
    photos (trained weights only), seconds per step, or the error that row reports; the
    bench measurement when the row was emulated (`ExportJob.emulated_bench`)."""

    artifact: Path | None
    error: str | None
    seconds: dict[str, float]
    verify: dict | None = None
    top1_accuracy: float | None = None
    bench: dict | None = None


def default_workers() -> int:
    """One export per core, at most MAX_WORKERS."""
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


def _init_worker(threads: int) -> None:
    """Converters' own verbosity switches first; then share the cores between the workers."""
    from mfdeploy.harness import steplog

    steplog.quiet_third_parties()
    import torch

    torch.set_num_threads(threads)


def export_one(job: ExportJob) -> ExportDone:
    """Export `job` into the bench cache (a hit returns at once), then verify it against
    PyTorch; converter and runtime output go to the row's log."""
    from mfdeploy.harness import bench, steplog
    from mfdeploy.harness.verify import verify_artifact

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    artifact = None
    try:
        with steplog.captured(job.log, enabled=job.capture):
            artifact, _ = bench.cached_artifact(
                job.model, job.target, job.precision,
                weights=job.weights, form=job.form, whash=job.whash,
            )  # fmt: skip
            seconds["export"] = round(time.perf_counter() - start, 1)
            start = time.perf_counter()
            weights = job.weights if job.weights and Path(job.weights).is_file() else None
            result = verify_artifact(artifact, weights=weights)
            checked = result.to_json() | {"failed": result.failed}
            # top-1 needs 93 more inputs: minutes on an emulated executor, for a figure the
            # 64-photo agreement with PyTorch above already bounds
            emulated = result.executor in bench.EMULATED_EXECUTORS
            top1 = None if result.synthetic_weights or emulated else _accuracy(artifact)
            seconds["verify"] = round(time.perf_counter() - start, 1)
    except MfdeployError as exc:
        seconds.setdefault("export", round(time.perf_counter() - start, 1))
        return ExportDone(artifact, str(exc), seconds)
    if not emulated or job.emulated_bench is None:
        return ExportDone(artifact, None, seconds, checked, top1)
    start = time.perf_counter()
    try:  # a failed bench fails the row, as in the quiet phase, and keeps its verify
        with steplog.captured(job.log, enabled=job.capture):
            measured = bench.measure_here(artifact, **job.emulated_bench)
    except MfdeployError as exc:
        return ExportDone(artifact, str(exc), seconds, checked, top1)
    seconds["bench"] = round(time.perf_counter() - start, 1)
    return ExportDone(artifact, None, seconds, checked, top1, measured)


def _accuracy(artifact: Path) -> float | None:
    """Top-1 on the labelled photos (trained weights: on synthetic ones it would mean
    nothing); None when they are not fetched."""
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


def start_order(jobs: list[ExportJob]) -> list[int]:
    """The order to start `jobs` in (indices): static int8 first, then fp32, then the rest,
    each as given.

    A static int8 export is the long one of its model and target (sensitivity measurement,
    calibration, the runtime check, sometimes a second export); started last, it runs on
    alone while the other worker idles: longest-first is the usual cure for that tail. fp32
    next because other precisions start from its conversion (TFLite fp16 and int8-weights,
    ONNX fp16, in the cache directory: `derived_cache`): started beside fp32 they would
    wait for it; started after it, they take it at once.
    """
    rank = {"int8": 0, "fp32": 1}
    return sorted(range(len(jobs)), key=lambda i: rank.get(jobs[i].precision, 2))


class ExportPool:
    """Submit every row up front in `start_order`; `results()` yields
    (index in `jobs`, job, result) as each finishes.

    Spawned workers (not forked: the parent holds torch's thread pools), torch's intra-op
    threads divided between them. With one worker the exports run in this process, in order.
    """

    def __init__(self, jobs: list[ExportJob], workers: int | None = None) -> None:
        self.jobs = jobs
        self.workers = max(1, min(workers or default_workers(), len(jobs) or 1))
        self._executor: ProcessPoolExecutor | None = None
        self._futures: dict[Future, int] = {}

    def __enter__(self) -> ExportPool:
        if self.workers > 1:
            threads = max(1, (os.cpu_count() or 1) // self.workers)
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(threads,),
            )
            self._futures = {
                self._executor.submit(export_one, self.jobs[i]): i for i in start_order(self.jobs)
            }
        return self

    def results(
        self, idle: Callable[[], None] | None = None, every_s: float = IDLE_EVERY_S
    ) -> Iterator[tuple[int, ExportJob, ExportDone]]:
        """Each row's result as it finishes; `idle()` is called after every `every_s` seconds
        in which none did (a heartbeat for output with no live display)."""
        if self._executor is None:
            for index, job in enumerate(self.jobs):
                yield index, job, export_one(job)
            return
        pending = set(self._futures)
        while pending:
            done, pending = wait(pending, timeout=every_s, return_when=FIRST_COMPLETED)
            if not done and idle is not None:
                idle()
            for future in done:
                index = self._futures[future]
                yield index, self.jobs[index], self._result(future)

    @staticmethod
    def _result(future: Future) -> ExportDone:
        """A worker that died (a converter's native crash) fails its row, not the report."""
        try:
            return future.result()
        except Exception as exc:  # BrokenProcessPool, or an error the exporter did not wrap
            return ExportDone(None, f"export crashed: {type(exc).__name__}: {exc}", {})

    def __exit__(self, *exc_info) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)


__all__ = [
    "ExportDone", "ExportJob", "ExportPool", "default_workers", "export_one", "start_order",
]  # fmt: skip
