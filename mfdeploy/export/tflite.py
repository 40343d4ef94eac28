"""TFLite / LiteRT target via litert-torch (no TensorFlow needed).

- fp32: `litert_torch.convert` of the export module.
- fp16: the fp32 model with float16 weights (AI Edge Quantizer's float-casting recipe):
  weights stored as float16 and DEQUANTIZE'd to float32, compute in float32 (XNNPACK
  may run float16 kernels where the device supports them).
- int8-weights: dynamic-range quantisation (int8 weights of FULLY_CONNECTED / CONV_2D /
  DEPTHWISE_CONV_2D, activations quantised at run time) with AI Edge Quantizer.
- int8 (full integer, PT2E): not shipped yet, see README "Open work".

Layout: `--layout nhwc` (default) gives the model an NHWC input, as Android camera / bitmap
buffers are; the input permute is absorbed by litert-torch's layout pass.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from mfdeploy.artifact import Manifest, TensorSpec
from mfdeploy.console import info
from mfdeploy.errors import MfdeployError
from mfdeploy.export.common import SourceModel, base_manifest, export_module

PRECISIONS = ("fp32", "fp16", "int8-weights")
MODEL_FILE = "model.tflite"
LAYOUTS = ("nhwc", "nchw")
PACKAGES = ("litert-torch", "ai-edge-litert", "ai-edge-quantizer")
DYNAMIC_RANGE_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--layout", choices=LAYOUTS, default="nhwc", help="TFLite input layout (default nhwc)"
    )


class NHWCInput(nn.Module):
    """Takes NHWC images and feeds the NCHW module (the converter folds the permute)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.permute(0, 3, 1, 2))


@contextlib.contextmanager
def quiet():
    """litert-torch and the quantizer print progress and absl logs; keep the CLI readable."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("absl").setLevel(logging.ERROR)
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        yield


def torch_to_tflite(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    import litert_torch

    with quiet():
        litert_torch.convert(module.eval(), (example,)).export(str(path))


def float16_weights(fp32_path: Path, out_path: Path) -> None:
    from ai_edge_quantizer import algorithm_manager, quantizer

    q = quantizer.Quantizer(str(fp32_path))
    q.add_weight_only_config(
        regex=".*",
        operation_name="*",
        num_bits=16,
        algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
    )
    with quiet():
        q.quantize().export_model(str(out_path), overwrite=True)


def dynamic_range_int8(fp32_path: Path, out_path: Path) -> None:
    from ai_edge_quantizer import quantizer

    q = quantizer.Quantizer(str(fp32_path))
    for op in DYNAMIC_RANGE_OPS:  # BATCH_MATMUL's constant operands must stay float
        q.add_dynamic_config(regex=".*", operation_name=op, num_bits=8)
    with quiet():
        q.quantize().export_model(str(out_path), overwrite=True)


def export(
    source: SourceModel,
    staging: Path,
    *,
    precision: str = "fp32",
    form: str = "deploy",
    batch: int = 1,
    layout: str = "nhwc",
) -> Manifest:
    import litert_torch  # noqa: F401  (fail early when the extra is missing)

    if layout not in LAYOUTS:
        raise MfdeployError(f"unknown layout {layout!r}; choose nhwc or nchw")
    res = source.preprocessing.resolution
    module = export_module(source, form)
    shape = [batch, 3, res, res]
    if layout == "nhwc":
        module, shape = NHWCInput(module), [batch, res, res, 3]
    info(f"converting {source.name} ({form} form, {layout.upper()} input) with litert-torch")
    fp32_path = staging / "model_fp32.tflite"
    torch_to_tflite(module, torch.zeros(shape), fp32_path)
    final = staging / MODEL_FILE
    extra: dict = {"layout": layout.upper()}
    if precision == "fp32":
        fp32_path.rename(final)
        extra["contents"] = "float32 weights and compute"
    elif precision == "fp16":
        float16_weights(fp32_path, final)
        fp32_path.unlink()
        extra["contents"] = "float16 weights, DEQUANTIZE to float32, float32 compute"
    else:  # int8-weights
        dynamic_range_int8(fp32_path, final)
        fp32_path.unlink()
        extra["contents"] = (
            "int8 per-channel weights for " + ", ".join(DYNAMIC_RANGE_OPS) + "; activations "
            "quantised dynamically at run time (dynamic range)"
        )
    manifest = base_manifest(
        source,
        target="tflite",
        precision=precision,
        form=form if source.family == "mobile_former" else "reference",
        model_file=MODEL_FILE,
        input_spec=TensorSpec("input", shape, "float32", layout.upper()),
        output_spec=TensorSpec("logits", [batch, source.num_classes], "float32"),
        packages=PACKAGES,
    )
    manifest.extra = extra
    return manifest
