"""Results derived from a model that later processes reuse (a converter's output, measured
int8 noises), in the user's cache directory.

Rule: an entry's name is a hash of everything its content depends on: the caller's parts
(module tree, weights, photos, tool versions) and the exporting code's content hash, so an
edit or an upgrade never reads a stale entry; it only misses. Entries are written atomically
(parallel workers may write the same one) and only the newest `keep` of a store are kept.
A store that cannot be written is no error: the work is done again next time. `claimed`
makes a process that wants an entry another is making wait for it instead of repeating it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from mfdeploy.codehash import export_code_sha256
from mfdeploy.paths import cache_root


def entry(store: str, suffix: str, *parts: str) -> Path:
    """The file for `parts` in `store` (which may not exist yet)."""
    payload = json.dumps([*parts, export_code_sha256()]).encode()
    return cache_root() / store / f"{hashlib.sha256(payload).hexdigest()[:32]}{suffix}"


def write(path: Path, data: bytes, keep: int) -> None:
    """Write `path` atomically, then drop all but the `keep` newest entries of its store."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        kept = sorted(path.parent.glob(f"*{path.suffix}"), key=lambda p: p.stat().st_mtime)
        for old in kept[:-keep]:
            old.unlink(missing_ok=True)
            old.with_name(old.name + ".lock").unlink(missing_ok=True)


@contextlib.contextmanager
def claimed(path: Path) -> Iterator[None]:
    """Hold `path`'s lock while reading it or making it: two workers exporting the same
    model at once (the main job's TFLite fp32 and fp16) convert it once; the second waits
    and then reads what the first wrote. Without a writable store, no lock."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_name(path.name + ".lock"), "w")  # noqa: SIM115 (held below)
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


__all__ = ["claimed", "entry", "write"]
