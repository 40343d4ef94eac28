"""Exporters, one module per target. `export_artifact` is the one entry point.

A target module defines PRECISIONS, `export(source, staging, **options) -> Manifest` (writes
the model file into `staging`), and optionally `add_arguments(parser)` for its own CLI flags
and OPTIONS, the names of the options it takes beyond the common ones. Heavy converters are
imported inside `export`, so listing targets stays cheap.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mfdeploy.artifact import Manifest, check_output, seal, staged_directory
from mfdeploy.errors import MfdeployError
from mfdeploy.photos import images_in

if TYPE_CHECKING:  # the package imports no torch: runtimes read `scopes` from it
    from mfdeploy.models import SourceModel

# target -> (module, pip extra)
TARGETS: dict[str, tuple[str, str]] = {
    "pytorch": ("mfdeploy.export.pytorch", ""),
    "onnx": ("mfdeploy.export.onnx", "onnx"),
    "tflite": ("mfdeploy.export.tflite", "tflite"),
    "coreml": ("mfdeploy.export.coreml", "coreml"),
    "executorch": ("mfdeploy.export.executorch", "executorch"),
}
# Options every export takes (the rest belong to one target's `export`).
COMMON_OPTIONS = ("precision", "form")

__all__ = ["TARGETS", "default_out_dir", "export_artifact", "source_model", "target_module"]


def target_module(target: str) -> ModuleType:
    if target not in TARGETS:
        raise MfdeployError(f"unknown target {target!r}; choose one of: {', '.join(TARGETS)}")
    return importlib.import_module(TARGETS[target][0])


def default_out_dir(source: SourceModel, target: str, precision: str) -> Path:
    return Path("artifacts") / f"{source.name}-{target}-{precision}"


def target_options(target: str) -> set[str]:
    """The keyword options a target's `export` takes."""
    params = inspect.signature(target_module(target).export).parameters
    return {name for name, p in params.items() if p.kind is p.KEYWORD_ONLY}


def refused_options(target: str, given: set[str]) -> list[str]:
    """Options in `given` that belong to other targets, not to `target`."""
    own = target_options(target)
    others = set().union(*(target_options(t) for t in TARGETS if t != target)) - own
    return sorted(given & others)


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C / SIGTERM an ImportError was raised while handling, if any: an interrupted
    import leaves a half-initialised package whose next import fails, and that is a
    cancelled export, not a missing extra."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ctrl-C / SIGTERM noted, not raised, for the duration; acted on right after.

    An exception raised while a native extension initialises (onnx's nanobind enums call
    back into Python) is not unwound: nanobind terminates the process (SIGABRT), so a signal
    must not be raised there. Elsewhere (the main thread only) nothing changes.
    """
    received: list[int] = []
    watched = (signal.SIGINT, signal.SIGTERM)
    try:
        previous = {s: signal.signal(s, lambda signum, _frame: received.append(signum))
                    for s in watched}  # fmt: skip
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        handler = previous[received[0]]
        if callable(handler):
            handler(received[0], None)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), received[0])


def _import_converters(module: ModuleType) -> None:
    """Import the target's converter packages (its CONVERTERS) before anything is staged,
    their load-time chatter discarded; a missing one is left for the export to report with
    its extra's name (its import is retried there, with its error)."""
    from mfdeploy.export.common import output_discarded

    with output_discarded():
        for name in getattr(module, "CONVERTERS", ()):
            with contextlib.suppress(ImportError):
                importlib.import_module(name)


def source_model(
    model: str | None,
    variant: str | None,
    weights: str | Path | None = None,
    resolution: int | None = None,
) -> SourceModel:
    """The registry model `model` / `variant` names (`resolve_model_args`) with `weights`."""
    from mfdeploy.models import load_source
    from mfdeploy.models.registry import resolve_model_args

    entry, name = resolve_model_args(model, variant)
    return load_source(name, weights, resolution, entry.name)


def export_artifact(
    target: str,
    variant: str | None = None,
    *,
    precision: str = "fp32",
    weights: str | Path | None = None,
    out: str | Path | None = None,
    resolution: int | None = None,
    source: SourceModel | None = None,
    model: str | None = None,
    force: bool = False,
    review: Callable[[Path, Manifest], None] | None = None,
    **options: Any,
) -> tuple[Path, Manifest]:
    """checkpoint -> model -> exporter -> artifact dir (written atomically).

    `model` / `variant` name the registry model (`resolve_model_args`). Options the target
    does not take are ignored here; the command line refuses them (`refused_options`).
    `out` is checked before any work (`check_output`): an existing path that is not an
    artifact is refused unless `force`, and never one that holds the weights or the
    calibration photos. `review(staging, manifest)` runs on the complete, sealed staging
    directory before it moves into place: it may add to `manifest.extra` (sealed again
    after it) or raise, which discards the staging directory and leaves `out` as it was.
    """
    from mfdeploy.export.common import finish_artifact

    module = target_module(target)
    if precision not in module.PRECISIONS:
        raise MfdeployError(
            f"target {target} has no precision {precision!r}; choose one of: "
            f"{', '.join(module.PRECISIONS)}"
        )
    accepted = target_options(target)
    inputs = (weights, options.get("calib"))
    if out:
        check_output(out, force=force, inputs=inputs)
    source = source or source_model(model, variant, weights, resolution)
    if options.get("calib") and "calib" in accepted:
        images_in(options["calib"])  # a bad photo directory is refused before any work
    if "form" in accepted:  # plain "deploy": the layout measured fastest on this target
        options["form"] = source.entry.form_for_target(options.get("form") or "deploy", target)
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    out_dir = Path(out) if out else default_out_dir(source, target, precision)
    with _signals_deferred():
        _import_converters(module)
    with staged_directory(out_dir, force=force, inputs=inputs) as staging:
        try:
            manifest = module.export(source, staging, precision=precision, **kwargs)
        except ImportError as exc:
            interrupt = _interrupt_behind(exc)
            if interrupt is not None:  # Ctrl-C / SIGTERM landed inside an import
                raise interrupt from None
            extra = TARGETS[target][1]
            raise MfdeployError(
                f"the {target} target needs {exc.name or 'a package'} "
                f"(pip install 'mfdeploy[{extra}]')"
            ) from None
        finish_artifact(staging, manifest)
        if review is not None:
            review(staging, manifest)
            seal(staging, manifest)
    return out_dir, manifest
