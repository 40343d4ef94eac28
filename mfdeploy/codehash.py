"""A content hash of the code an export runs, for caches that outlive a process."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

#: what an export depends on: models, exporters, their data and the base modules
EXPORT_CODE = ("models", "export", "data", "photos")


@functools.cache
def export_code_sha256() -> str:
    """Content hash of the models, exporters and base modules: an edit there changes what an
    export computes even when no version number moves; an edit to the harness or the
    commands does not. Read once per process (the code does not change under it)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if len(rel.parts) > 1 and rel.parts[0] not in EXPORT_CODE:
            continue
        if path.suffix in (".py", ".json", ".txt", ".csv") and "__pycache__" not in path.parts:
            digest.update(rel.as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()
