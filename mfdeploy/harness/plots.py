"""PNG plots for the report (matplotlib, Agg: no display needed), one panel per model.

Colour = precision, marker = target, the same in every plot. Backends that emulate a device
(the Core ML MIL executor on Linux) are drawn apart or hollow and labelled as such: their
timings say nothing of a phone.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

from mfdeploy.harness.bench import EMULATED_EXECUTORS  # noqa: E402

DPI = 100
WIDTH_IN = 12.0  # 1200 px: legible at 100 % in a browser
PRECISION_COLOURS = {
    "fp32": "#1f77b4",
    "fp16": "#2ca02c",
    "int8": "#d62728",
    "int8-weights": "#ff7f0e",
    "int8-dynamic": "#9467bd",
}
TARGET_MARKERS = {"pytorch": "o", "onnx": "s", "tflite": "^", "coreml": "D", "executorch": "v"}
BOUNDS_DB = {"int8 bound": 18.0, "fp16 bound": 30.0}


def _colour(precision: str) -> str:
    return PRECISION_COLOURS.get(precision, "#7f7f7f")


def _marker(target: str) -> str:
    return TARGET_MARKERS.get(target, "P")


def _measured(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("bench") and r.get("verify")]


def _models(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in rows))


def _emulated(row: dict) -> bool:
    return row["bench"]["executor"] in EMULATED_EXECUTORS


def _median(row: dict) -> float:
    return row["bench"]["latency_ms"]["median"]


def _bars(ax, rows: list[dict], title: str) -> None:
    """Horizontal bars, grouped by target (a gap between targets), p90 as the error bar."""
    labels, y, pos = [], [], 0.0
    previous = None
    for r in rows:
        if previous is not None and r["target"] != previous:
            pos += 0.6
        previous = r["target"]
        lat = r["bench"]["latency_ms"]
        ax.barh(
            pos,
            lat["median"],
            xerr=[[0], [max(lat["p90"] - lat["median"], 0.0)]],
            color=_colour(r["precision"]),
            capsize=2,
            height=0.8,
        )
        end = max(lat["p90"], lat["median"])  # the label starts past the error bar
        ax.text(end, pos, f"  {lat['median']:.1f}", va="center", fontsize=8)
        labels.append(f"{r['target']} {r['precision']}")
        y.append(pos)
        pos += 1.0
    ax.set_yticks(y, labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel("median ms, batch 1 (error bar: p90)", fontsize=9)
    ax.margins(x=0.15)
    ax.grid(axis="x", alpha=0.3)


def latency_bars(rows: list[dict], path: Path) -> Path:
    """Per model: real runtimes on the left, emulated ones (Core ML on Linux) on the right."""
    ok = [r for r in rows if r.get("bench")]
    models = _models(ok) or ["no benchmark results"]
    heights = [max(2.0, 0.32 * sum(r["model"] == m for r in ok) + 1.0) for m in models]
    fig, axes = plt.subplots(
        len(models),
        2,
        figsize=(WIDTH_IN, sum(heights) + 0.6),
        dpi=DPI,
        squeeze=False,
        gridspec_kw={"width_ratios": [3, 1.3], "height_ratios": heights},
    )
    for (real_ax, emu_ax), model in zip(axes, models):
        mine = [r for r in ok if r["model"] == model]
        real = [r for r in mine if not _emulated(r)]
        emulated = [r for r in mine if _emulated(r)]
        _bars(real_ax, real, f"{model}: device runtimes on this CPU")
        if emulated:
            _bars(emu_ax, emulated, "MIL executor on Linux,\nnot device latency")
        else:
            emu_ax.axis("off")
        if not mine:
            real_ax.text(0.5, 0.5, "no benchmark results", ha="center", transform=real_ax.transAxes)
    _precision_legend(fig, ok)
    return _save(fig, path)


def _precision_legend(fig, rows: list[dict], targets: bool = False) -> None:
    precisions = list(dict.fromkeys(r["precision"] for r in rows))
    handles = [
        Line2D([], [], color=_colour(p), marker="s", linestyle="", markersize=9, label=p)
        for p in precisions
    ]
    if targets:
        for t in dict.fromkeys(r["target"] for r in rows):
            handles.append(Line2D([], [], color="black", marker=_marker(t), linestyle="", label=t))
        handles.append(
            Line2D([], [], color="black", marker="o", fillstyle="none", linestyle="",
                   label="emulated (Core ML on Linux)")
        )  # fmt: skip
    if not handles:
        return
    if targets:  # under the figure title, two rows: the scatter plots' key is long
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.005, 0.95),
                   ncol=(len(handles) + 1) // 2, fontsize=8, frameon=False)  # fmt: skip
    else:
        fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=8,
                   frameon=False)  # fmt: skip


#: where a log axis spanning less than a decade is labelled, per decade: on 294m's sizes
#: (12-46 MB) the 2x / 3x / 5x ticks left the int8 artifacts' end of the axis unlabelled
NARROW_LOG_SUBS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0)


def _plain_log_ticks(axis) -> None:
    """Log axis labelled 10, 20, 50, 100 rather than 10^1, 2x10^1: decades and the minor
    ticks at 2x, 3x and 5x (more would overlap); on data spanning less than a decade, every
    `NARROW_LOG_SUBS` tick, so each end of the axis has a number near it. Call after the
    data are plotted."""

    def minor(value: float, _pos) -> str:
        lead = value / 10 ** math.floor(math.log10(value)) if value > 0 else 0
        return f"{value:g}" if round(lead) in (2, 3, 5) else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    low, high = axis.get_data_interval()
    if low > 0 and high < 10 * low:
        axis.set_major_locator(LogLocator(base=10, subs=NARROW_LOG_SUBS))
        axis.set_minor_formatter(FuncFormatter(lambda _value, _pos: ""))
    else:
        axis.set_minor_formatter(FuncFormatter(minor))


def _scatter_panels(rows: list[dict], path: Path, x_of, y_of, xlabel: str, ylabel: str,
                    title: str, bounds: bool) -> Path:  # fmt: skip
    ok = _measured(rows)
    models = _models(ok) or ["no results"]
    fig, axes = plt.subplots(1, len(models), figsize=(WIDTH_IN, 5.2), dpi=DPI, squeeze=False)
    for ax, model in zip(axes[0], models):
        for r in (r for r in ok if r["model"] == model):
            face = "none" if _emulated(r) else _colour(r["precision"])
            ax.scatter(
                [x_of(r)], [y_of(r)], s=70, marker=_marker(r["target"]),
                facecolors=face, edgecolors=_colour(r["precision"]), linewidths=1.5,
            )  # fmt: skip
        if bounds:
            for label, db in BOUNDS_DB.items():
                ax.axhline(db, color="grey", linestyle="--", linewidth=0.8)
                ax.text(1.0, db, f" {label}", transform=ax.get_yaxis_transform(),
                        fontsize=8, va="center", color="grey")  # fmt: skip
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        if not bounds:  # latency on y: the emulated runtime would squash the device ones
            ax.set_yscale("log")
            _plain_log_ticks(ax.yaxis)
        ax.tick_params(which="both", labelsize=8)
        ax.set_title(model, fontsize=10, loc="left")
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(alpha=0.3, which="both")
        if not ok:
            ax.text(0.5, 0.5, "no results", ha="center", transform=ax.transAxes)
    fig.suptitle(title, x=0.01, y=0.99, ha="left", fontsize=11)
    _precision_legend(fig, ok, targets=True)
    return _save(fig, path, top=0.88)


def parity_scatter(rows: list[dict], path: Path) -> Path:
    """Logit SQNR against PyTorch vs median latency: the precision trade-off."""
    return _scatter_panels(
        rows, path, _median, lambda r: r["verify"]["metrics"]["sqnr_db"],
        "median latency, ms (log)", "logit SQNR vs PyTorch, dB (identical: capped at 200)",
        "parity vs latency", bounds=True,
    )  # fmt: skip


def size_scatter(rows: list[dict], path: Path) -> Path:
    """Model size vs median latency."""
    return _scatter_panels(
        rows, path, lambda r: r["bench"]["model_bytes"] / 1e6, _median,
        "model size, MB (log)", "median latency, ms (log)", "size vs latency", bounds=False,
    )  # fmt: skip


def _save(fig, path: Path, top: float | None = None) -> Path:
    """Write the figure and free it."""
    fig.tight_layout(rect=(0, 0, 1, top or 0.95))
    fig.savefig(path)
    plt.close(fig)
    return path
