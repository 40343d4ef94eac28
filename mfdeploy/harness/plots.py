"""PNG plots for the report (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGSIZE = (8, 5)
DPI = 100  # -> 800 x 500 pixels


def latency_bars(rows: list[dict], path: Path) -> Path:
    """Median latency per model / target / precision (error bar: std)."""
    ok = [r for r in rows if r.get("bench")]
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    labels = [f"{r['model']}\n{r['target']} {r['precision']}" for r in ok]
    medians = [r["bench"]["latency_ms"]["median"] for r in ok]
    stds = [r["bench"]["latency_ms"]["std"] for r in ok]
    ax.bar(range(len(ok)), medians, yerr=stds, color="tab:blue", capsize=3)
    ax.set_xticks(range(len(ok)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("median latency (ms, batch 1)")
    ax.set_title("latency per target / precision")
    return _save(fig, ax, path, empty="no benchmark results" if not ok else None)


def parity_scatter(rows: list[dict], path: Path) -> Path:
    """Logit SQNR against the reference vs median latency: the precision trade-off."""
    ok = [r for r in rows if r.get("bench") and r.get("verify")]
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for r in ok:
        x = r["bench"]["latency_ms"]["median"]
        y = r["verify"]["metrics"]["sqnr_db"]
        color = "tab:green" if r["verify"]["passed"] else "tab:red"
        ax.scatter([x], [y], color=color, s=40)
        ax.annotate(
            f"{r['target']} {r['precision']}",
            (x, y),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xlabel("median latency (ms)")
    ax.set_ylabel("logit SQNR vs PyTorch (dB, capped at 200)")
    ax.set_title("parity vs latency (green: verify passed, red: failed)")
    return _save(fig, ax, path, empty="no results" if not ok else None)


def _save(fig, ax, path: Path, empty: str | None) -> Path:
    """Write the figure (with a note in place of an empty plot) and free it."""
    if empty:
        ax.text(0.5, 0.5, empty, ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
