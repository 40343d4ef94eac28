"""int8 weights with corrected biases (export/int8_bias.py)."""

from __future__ import annotations

import torch
from torch import nn

from mfdeploy.export.int8_bias import int8_grid, weight_errors, with_int8_weights
from mfdeploy.export.int8_sensitivity import float_regex


class _TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Conv2d(4, 8, 3, padding=1, bias=False)
        self.second = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return self.second(self.first(x))


def _photos(seed: int) -> torch.Tensor:
    # a large mean, as after a ReLU6: rounding the weights then shifts every output
    return torch.rand(16, 4, 12, 12, generator=torch.Generator().manual_seed(seed)) * 2 + 4


def test_int8_grid_is_reproduced_by_a_per_channel_quantiser():
    """What a target's per-channel symmetric quantiser makes of grid weights is the grid
    weights themselves: the corrected bias is for the weights the artifact holds."""
    weight = torch.randn(8, 4, 3, 3, generator=torch.Generator().manual_seed(1))
    grid = int8_grid(weight)
    scale = grid.reshape(8, -1).abs().amax(1) / 127
    steps = grid / scale.reshape(-1, 1, 1, 1)
    assert torch.allclose(steps, steps.round(), atol=1e-4)
    assert torch.equal(int8_grid(grid), grid)
    assert not torch.equal(grid, weight)


def test_corrected_bias_removes_the_mean_shift_of_int8_weights():
    """Measured on some photos, the correction holds on others from the same source."""
    model = _TwoConvs().eval()
    fit, check = _photos(0), _photos(1)
    errors = weight_errors(model, fit)
    plain = _TwoConvs().eval()
    for conv in (plain.first, plain.second):
        conv.weight.data = int8_grid(conv.weight.data)
    corrected, count = with_int8_weights(model, errors)
    assert count == 2
    with torch.no_grad():
        want = model(check)
        shift_plain = (plain(check) - want).mean(dim=(0, 2, 3)).abs().max()
        shift_corrected = (corrected(check) - want).mean(dim=(0, 2, 3)).abs().max()
    assert shift_corrected < shift_plain / 5


def test_float_modules_keep_their_float_weights_and_the_model_is_not_touched():
    model = _TwoConvs().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    errors = weight_errors(model, _photos(0))
    corrected, count = with_int8_weights(model, errors, float_regex(("second",)))
    assert count == 1
    assert corrected.first.bias is not None  # it had none: a bias now carries the correction
    assert torch.equal(corrected.first.weight, int8_grid(model.first.weight))
    assert torch.equal(corrected.second.weight, model.second.weight)
    assert torch.equal(corrected.second.bias, model.second.bias)
    assert model.first.bias is None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class _ConvNHWC(nn.Conv2d):
    """A convolution on channels-last maps, as MobileViTv2's NHWC deploy form has."""

    def forward(self, x):
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def test_a_channels_last_convolution_is_corrected_per_output_channel():
    """The error is measured through the layer's own forward, whatever its layout, and
    averaged over the output channels' dimension even where the input has as many rows as
    channels (the first version called the NCHW convolution directly, then told the layout
    from the shapes: MobileViTv2's NHWC form failed both)."""
    torch.manual_seed(0)
    nchw = nn.Conv2d(12, 8, 3, padding=1, bias=False).eval()
    nhwc = _ConvNHWC(12, 8, 3, padding=1, bias=False).eval()
    nhwc.load_state_dict(nchw.state_dict())
    # 12 x 12 maps of 12 channels: the shapes alone do not tell the layout
    maps = torch.rand(4, 12, 12, 12, generator=torch.Generator().manual_seed(0)) + 4
    want = weight_errors(nchw, maps)[""]
    got = weight_errors(nhwc, maps.permute(0, 2, 3, 1))[""]
    assert got.shape == (8,) and torch.allclose(got, want, atol=1e-5)
