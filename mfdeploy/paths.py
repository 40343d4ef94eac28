"""Where mfdeploy keeps downloaded and derived data on a user's machine."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$MFDEPLOY_CACHE, else ~/.cache/mfdeploy: photos and bench exports live below it."""
    env = os.environ.get("MFDEPLOY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mfdeploy"
