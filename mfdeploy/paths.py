"""Where mfdeploy keeps downloaded and derived data on a user's machine."""

from __future__ import annotations

import os
from pathlib import Path

from mfdeploy.errors import MfdeployError


def cache_root() -> Path:
    """$MFDEPLOY_CACHE, else ~/.cache/mfdeploy: photos and bench exports live below it."""
    env = os.environ.get("MFDEPLOY_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "mfdeploy"
    if root.exists() and not root.is_dir():
        raise MfdeployError(f"cache directory {root} is a file (check $MFDEPLOY_CACHE)")
    return root
