"""What native libraries print on file descriptor 2, captured instead of shown.

ExecuTorch's runtime logs from C++ straight to fd 2 (cpuinfo probing at first use, a
loader's or a delegate's reason for refusing a program). Python's `sys.stderr` redirection
does not reach it, so the descriptor itself is swapped for a temporary file while such code
runs; the lines come back to the caller, who decides what the user sees (one line of ours,
with the library's reason in it).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import sys
import tempfile
from collections.abc import Iterator


def _flush_c_stdio() -> None:
    """Flush C stdio buffers: the runtime's log lines may sit in a buffered `stderr` FILE
    (when fd 2 is not a terminal) and would otherwise reach fd 2 after it is restored."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Route fd 2, Python's `sys.stderr` (the bindings may print through it: under pytest it
    is not fd 2) and Python logging of torch / torchao / executorch away for the duration;
    the captured lines are in the yielded list afterwards."""
    lines: list[str] = []
    for name in ("torch", "torchao", "executorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    sys.stderr.flush()
    _flush_c_stdio()
    saved = os.dup(2)
    python = io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stderr(python):
                yield lines
        finally:
            _flush_c_stdio()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines += sink.read().decode(errors="replace").splitlines()
            lines += python.getvalue().splitlines()


def native_reason(lines: list[str], first: bool = False) -> str:
    """The library's own last (or `first`: the root cause, before what it caused) log line,
    without its `[file.cpp:NN]` prefix, if any; the cpuinfo probe's lines are not reasons."""
    for line in lines if first else reversed(lines):
        if line.startswith("[") and "]" in line and "cpuinfo" not in line:
            return line.split("]", 1)[1].strip()
    return ""
