"""The report plots' log axes: labelled where a reader needs a number."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from mfdeploy.harness import plots


def _labels(xs: list[float]) -> set[str]:
    """The x tick labels drawn for points at `xs` on a log axis, inside the view."""
    fig, ax = plt.subplots()
    ax.scatter(xs, [1.0] * len(xs))
    ax.set_xscale("log")
    plots._plain_log_ticks(ax.xaxis)
    fig.canvas.draw()
    low, high = ax.get_xlim()
    labels = {
        t.get_text()
        for t in ax.get_xticklabels(which="both")
        if t.get_text() and low <= t.get_position()[0] <= high
    }
    plt.close(fig)
    return labels


@pytest.mark.parametrize(
    ("xs", "wanted", "unwanted"),
    [
        # sizes of 294m's artifacts: under a decade, so both ends get a number near them
        ([12.1, 13.2, 23.0, 46.4], {"15", "20", "30", "40"}, set()),
        # latencies over two decades: decades and their 2x / 3x / 5x, nothing crowded
        ([4.6, 7.4, 22.0, 243.0], {"5", "10", "20", "50", "100", "200"}, {"15", "40", "7"}),
    ],
)
def test_a_log_axis_labels_numbers_near_its_data(xs, wanted, unwanted):
    labels = _labels(xs)
    assert wanted <= labels and not unwanted & labels, labels
