"""Keep converters' output out of the console: each step's native and Python output to a log.

Converters and runtimes print from C++ (TensorFlow / absl banners, XNNPACK notes), from
Python `print`, `warnings` and `logging`. A long job shows only its own lines: during a step
file descriptors 1 and 2 point at the step's log file, and the job's own lines go to a
console opened on a copy of the terminal's stderr taken before any step ran. Sources that
have a supported switch are silenced there first (`quiet_third_parties`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

#: environment switches honoured by the libraries themselves (read at their import)
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow / LiteRT C++ logs, oneDNN banner
    "GLOG_minloglevel": "3",
    "GRPC_VERBOSITY": "ERROR",
    "ABSL_MIN_LOG_LEVEL": "3",
}
QUIET_LOGGERS = ("absl", "tensorflow", "torchao", "coremltools", "onnxruntime", "root")


def quiet_third_parties() -> None:
    """Set the libraries' own verbosity switches (before they are imported)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name if name != "root" else None).setLevel(logging.ERROR)


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stream (tests' capture)
        return None


def job_console() -> Console:
    """A console on a copy of the current stderr: still the terminal while steps are captured.

    Soft-wrapped: in a log file an 80-column wrap would split one row's line in two.
    """
    fd = _fileno(sys.stderr)
    if fd is None:
        return Console(file=sys.stderr, soft_wrap=True)
    stream = os.fdopen(os.dup(fd), "w", buffering=1)
    return Console(file=stream, force_terminal=sys.stderr.isatty() or None, soft_wrap=True)


@contextlib.contextmanager
def captured(log: Path, enabled: bool = True) -> Iterator[Path]:
    """Route fds 1 and 2, `warnings` and `logging` into `log` for the duration."""
    if not enabled:
        yield log
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    if _fileno(sys.stdout) is None or _fileno(sys.stderr) is None:
        with (
            open(log, "a", encoding="utf-8") as sink,
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            yield log
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a", encoding="utf-8") as sink:
        handler = logging.StreamHandler(sink)
        root = logging.getLogger()
        root.addHandler(handler)
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                yield log
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            root.removeHandler(handler)


def tail(log: Path, lines: int = 15) -> str:
    """The last lines of a step log (shown when the step failed)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


__all__ = ["captured", "job_console", "quiet_third_parties", "tail"]
