"""Core ML W8A8 (export/coreml_w8a8.py): the quantizer's pattern memo (one trace per distinct
pattern, a fresh copy per call) and the biases corrected for its own int8 weights."""

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


class _ConvRelu6LinearGelu(nn.Module):
    """Two of coremltools' 15 activations: relu6 after a conv, gelu after a linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.linear = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.conv(x)).mean(dim=(2, 3))
        return F.gelu(self.linear(y))


def _program() -> torch.fx.GraphModule:
    module = _ConvRelu6LinearGelu().eval()
    return torch.export.export(module, (torch.randn(1, 3, 8, 8),)).module()


def test_only_the_programs_activations_are_traced_and_the_lists_come_back():
    pytest.importorskip("coremltools")
    coreml_w8a8.quantizer_config()  # imports coremltools' quantizer with its aliases
    from coremltools.optimize.torch.quantization import _coreml_quantizer_utils as utils

    saved = utils._supported_activations, utils._supported_activations_no_inplace
    with coreml_w8a8._only_activations_in(_program()):
        assert utils._supported_activations == (F.relu6,)
        assert utils._supported_activations_no_inplace == (F.gelu,)
    assert (utils._supported_activations, utils._supported_activations_no_inplace) == saved
    assert F.silu in saved[0] and F.sigmoid in saved[1]  # what the narrowing left out


@pytest.mark.slow
def test_narrowed_activations_annotate_the_program_the_same():
    """The prepared program (observers where the quantizer annotated) is the same with the
    activation lists narrowed as with all 15 (the full set traces for about two minutes)."""
    pytest.importorskip("coremltools")
    prepare_pt2e, _ = coreml_w8a8._pt2e()
    program = _program()
    with coreml_w8a8._only_activations_in(program):
        narrowed = prepare_pt2e(program, coreml_w8a8.quantizer_config())
    full = prepare_pt2e(_program(), coreml_w8a8.quantizer_config())
    assert narrowed.code == full.code
    assert sum(n.op == "call_module" for n in narrowed.graph.nodes) > 0


class _TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Conv2d(4, 8, 3, padding=1)
        self.second = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return self.second(self.first(x))


def _large_mean_photos(seed: int, count: int = 8):
    # inputs with a large mean (as after a ReLU6): rounded weights shift every output
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(count, 4, 12, 12, generator=generator) * 2 + 4).numpy()


def _each(program, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([program(image[None]) for image in images])  # exported for batch 1


def test_w8a8_corrects_the_biases_for_coremltools_own_int8_weights():
    """coremltools rounds weights to -128..127 (not the other targets' -127..127 grid): the
    correction measured with its program's own int8 weights removes the mean shift they
    cause, on photos it was not measured on."""
    pytest.importorskip("coremltools")
    from mfdeploy.export.pt2e_plan import ProgramProbe

    model = _TwoConvs().eval()
    fit, check = _large_mean_photos(0), torch.from_numpy(_large_mean_photos(1))
    corrected, details, plan = coreml_w8a8.quantize_w8a8(model, fit, float_spec="none")
    assert plan.bias_corrected_layers == 2
    prepare_pt2e, convert_pt2e = coreml_w8a8._pt2e()
    graph = torch.export.export(model, (check[:1],)).module()
    probe = ProgramProbe(prepare_pt2e(graph, coreml_w8a8.quantizer_config()), batch=1)
    probe.calibrate(fit, "calibration")
    plain = convert_pt2e(probe.finish(())[0])
    with torch.no_grad():
        want = model(check)
        shift_plain = (_each(plain, check) - want).mean(dim=(0, 2, 3)).abs().max()
        shift_corrected = (_each(corrected, check) - want).mean(dim=(0, 2, 3)).abs().max()
    assert shift_corrected < shift_plain / 5
