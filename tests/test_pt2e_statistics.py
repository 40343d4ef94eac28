"""A normalisation's statistics and a score-weighted sum stay float in PT2E
(export/pt2e_statistics.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mfdeploy.export import executorch, tflite_int8
from mfdeploy.metrics import sqnr_db
from mfdeploy.models.mobilevitv2_deploy import Standardise


class _NormAttention(nn.Module):
    """conv -> Standardise -> conv, and a softmax-weighted sum over the positions (as
    MobileViTv2's separable attention), the scores peaked over 64 positions."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Conv2d(3, 16, 3, padding=1)
        self.norm = Standardise(1e-5)
        self.query = nn.Conv2d(16, 1, 1)
        self.out = nn.Conv2d(16, 16, 1)
        with torch.no_grad():
            self.first.bias.add_(3.0)  # a mean far from 0, a variance far from the range
            self.query.weight.mul_(4)

    def forward(self, x):
        x = self.norm(self.first(x))
        scores = torch.softmax(self.query(x).flatten(2), dim=-1).reshape(-1, 1, 8, 8)
        pooled = (x * scores).sum(dim=(2, 3), keepdim=True)
        return self.out(x + pooled).mean((2, 3))


def _photos(count: int = 16) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((count, 3, 8, 8)).astype(np.float32)


def _graph_sqnr(kind: str) -> float:
    model, example = _NormAttention().eval(), torch.zeros(1, 3, 8, 8)
    if kind == "executorch":
        graph = executorch.quantize_int8(model, example, _photos(), "")
    else:
        graph = tflite_int8.quantize_pt2e(model, example, _photos(), "")[0]
    photos = torch.from_numpy(_photos(8) + 0.1)
    with torch.no_grad():
        out = torch.cat([graph(photos[i : i + 1]) for i in range(len(photos))])
        return sqnr_db(model(photos).numpy(), out.numpy())


@pytest.mark.parametrize("kind", ["executorch", "tflite"])
def test_statistics_in_float_keep_the_graph_close(kind, monkeypatch):
    after = _graph_sqnr(kind)
    monkeypatch.setattr(executorch, "float_statistics", lambda gm: 0)
    monkeypatch.setattr(tflite_int8, "float_statistics", lambda gm: 0)
    before = _graph_sqnr(kind)
    assert after > before + 3, (before, after)
