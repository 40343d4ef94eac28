"""The session's shared exports, made ahead in worker processes while the tests run.

A converter spends an export on one core (Python graph passes, flatbuffer / protobuf
writing), and the verify matrix's artifacts are most of the suite's time. Two spawned
workers export them in the order the test files first ask for them (fp32 of every target
first: the early bad-input, install, bench and bundle tests take those), while the tests
that need none run beside them. The `exported` fixture takes a prefetched artifact from
here, or exports in-process when a worker has not started it yet (it would otherwise wait).

Only the verify matrix's collected cells are prefetched: each is certain to be asked for
(a single test run prefetches nothing it does not use). A worker's output goes to
/dev/null; an export error reaches the test that asks for that artifact, as in-process.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

#: the order the test files first ask for a target's artifacts (fp32 of all targets first)
TARGET_ORDER = ("pytorch", "onnx", "tflite", "coreml", "executorch")
WORKERS = 2

Key = tuple


def _init_worker() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    import torch

    torch.set_num_threads(1)  # two workers and the tests share the cores


def export_one(target: str, precision: str, out: str, options: dict) -> str:
    """One artifact (in a worker, or in the tests' process when none took it), as `mfdeploy
    export` makes it: `export_checked` (int8 with a measured float set checked on its runtime,
    exported again when short; anything else exported once) with the `exported` fixture's
    options (EXPORT_MODELS' and its own)."""
    from mfdeploy.harness.int8_check import export_checked

    options = dict(options)
    variant = options.pop("variant")
    return str(export_checked(target, variant, precision=precision, out=Path(out), **options)[0])


def _order(key: Key) -> tuple:
    _, target, precision = key
    rank = TARGET_ORDER.index(target) if target in TARGET_ORDER else len(TARGET_ORDER)
    return (precision != "fp32", rank, precision)


class Prefetch:
    """Submits `keys` ((model, target, precision), default options) at once, in `_order`."""

    def __init__(self, keys: list[Key], options_of: dict[str, dict]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mfdeploy-prefetch-"))
        self._executor = ProcessPoolExecutor(
            max_workers=WORKERS,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
        )
        self._futures: dict[Key, Future] = {}  # not taken yet
        self._submitted: list[Future] = []
        for key in sorted(dict.fromkeys(keys), key=_order):
            model, target, precision = key
            out = self.folder / "-".join(key) / "artifact"
            self._futures[key] = self._executor.submit(
                export_one, target, precision, str(out), options_of[model]
            )
            self._submitted.append(self._futures[key])

    def take(self, key: Key) -> Future | None:
        """The worker's future for `key`; None when it was never submitted or had not
        started (cancelled here: the caller exports it in-process instead of waiting)."""
        future = self._futures.pop(key, None)
        if future is None or future.cancel():
            return None
        return future

    def close(self) -> None:
        """Cancel what has not started, stop exports still running (a session ended early),
        delete what the workers wrote."""
        for future in self._submitted:
            future.cancel()
        if any(future.running() for future in self._submitted):
            for process in list((self._executor._processes or {}).values()):
                process.terminate()
        self._executor.shutdown(wait=True)
        shutil.rmtree(self.folder, ignore_errors=True)
