"""The W8A8 quantizer's pattern memo: one trace per distinct pattern, a fresh copy per call."""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mfdeploy.export import coreml_w8a8


def _pattern(op, act=None, in_place=False) -> nn.Module:
    """Built like coremltools' pattern builders: a local class closing over its ops."""

    class Pattern(nn.Module):
        def forward(self, x, y):
            out = op(x, y)
            if act is not None:
                out = act(out, inplace=True) if in_place else act(out)
            return out, {"out": out}

    return Pattern()


@pytest.fixture
def utils(monkeypatch):
    """A stand-in for coremltools' utils module whose tracer records what it traced."""
    monkeypatch.setattr(coreml_w8a8, "_PATTERN_GRAPHS", {})
    traced: list[nn.Module] = []

    def trace(pattern, example_inputs, is_cuda=False):
        traced.append(pattern)
        return torch.fx.symbolic_trace(pattern)

    module = types.SimpleNamespace(_get_aten_graph_module=trace, traced=traced)
    coreml_w8a8._memoise_pattern_graphs(module)
    coreml_w8a8._memoise_pattern_graphs(module)  # a second import wraps nothing twice
    return module


def test_same_pattern_is_traced_once_and_each_call_gets_its_own_graph(utils):
    inputs = (torch.zeros(1, 4), torch.zeros(1, 4))
    first = utils._get_aten_graph_module(_pattern(torch.add, F.relu), inputs)
    second = utils._get_aten_graph_module(_pattern(torch.add, F.relu), inputs)
    assert len(utils.traced) == 1
    assert first is not second and first.code == second.code
    first.graph.erase_node(next(n for n in first.graph.nodes if n.op == "output"))
    third = utils._get_aten_graph_module(_pattern(torch.add, F.relu), inputs)
    assert third.code == second.code  # editing one copy leaves the memo intact


def test_a_different_op_flag_or_shape_is_traced_again(utils):
    inputs = (torch.zeros(1, 4), torch.zeros(1, 4))
    trace = utils._get_aten_graph_module
    trace(_pattern(torch.add, F.relu), inputs)
    trace(_pattern(torch.mul, F.relu), inputs)
    trace(_pattern(torch.add, F.relu6), inputs)
    trace(_pattern(torch.add, F.relu, in_place=True), inputs)
    trace(_pattern(torch.add, F.relu), (torch.zeros(2, 4), torch.zeros(2, 4)))
    assert len(utils.traced) == 5


def test_an_unhashable_closure_is_traced_every_time(utils):
    inputs = (torch.zeros(1, 4), torch.zeros(1, 4))
    scales = [2.0]  # a list closed over cannot be part of a key: no memo

    class Pattern(nn.Module):
        def forward(self, x, y):
            return (x + y) * scales[0], {}

    utils._get_aten_graph_module(Pattern(), inputs)
    utils._get_aten_graph_module(Pattern(), inputs)
    assert len(utils.traced) == 2
