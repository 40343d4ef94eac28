"""Export a model of any registered family to an artifact directory (model + manifest.json).

The artifact is written to a temporary directory and moved into place only when complete,
so an interrupted export leaves nothing behind. Without --weights the seeded synthetic
weights are used (parity and latency are meaningful on them, ImageNet accuracy is not).

examples:
  mfdeploy export --target onnx --variant 294m --precision int8 --calib photos/
  mfdeploy export --target pytorch --variant 26m --weights mobile-former-26m.pth.tar
"""

from __future__ import annotations

import argparse

from mfdeploy.commands.common import MAX_BATCH, add_model_arguments, float_in, int_in
from mfdeploy.console import info
from mfdeploy.errors import MfdeployError
from mfdeploy.export import TARGETS, refused_options, target_module
from mfdeploy.harness.int8_check import export_checked

NAME = "export"
HELP = "export a model to ONNX / TFLite / Core ML / ExecuTorch (float or int8)"


def precision_help() -> str:
    """Which precisions each target exports, read from the targets themselves."""
    targets = {name: target_module(name).PRECISIONS for name in TARGETS}
    precisions = dict.fromkeys(p for ps in targets.values() for p in ps)
    where = [f"{p} ({', '.join(t for t, ps in targets.items() if p in ps)})" for p in precisions]
    return "default fp32; per target: " + "; ".join(where)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, choices=list(TARGETS), help="artifact type")
    add_model_arguments(parser, resolution=True)
    parser.add_argument("--precision", default="fp32", help=precision_help())
    parser.add_argument(
        "--out",
        help="artifact dir (default artifacts/<model>-<target>-<precision>); an existing "
        "artifact there is replaced once the new one is complete, anything else is refused",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out that is not an mfdeploy artifact (never the working "
        "directory or a path holding the weights or calibration photos)",
    )
    parser.add_argument(
        "--form",
        default="deploy",
        help="deploy (default): the export-friendly form, in the layout measured fastest on "
        "the target's runtime (MobileViTv2: features=nchw on ONNX, nhwc elsewhere); "
        "deploy:LAYOUT forces one (e.g. deploy:features=nhwc); reference: the authors' "
        "arithmetic (docs/mobilevitv2.md)",
    )
    parser.add_argument(
        "--batch",
        type=int_in(1, MAX_BATCH),
        default=1,
        help=f"static batch size, 1..{MAX_BATCH} (default 1)",
    )
    parser.add_argument(
        "--calib",
        help="directory of calibration images for int8, int8-weights and int8-dynamic (Core "
        "ML: its float16 modules; LiteRT: its wide qd8 GEMMs; ONNX int8-dynamic: its pointwise "
        "convolutions; default: the photo set)",
    )
    parser.add_argument(
        "--calib-count",
        type=int_in(1, 100_000),
        help="number of calibration images to use (>= 1; default 32)",
    )
    int8 = parser.add_argument_group(
        "int8 options (onnx, tflite, coreml, executorch; coreml and tflite int8-weights and "
        "onnx int8-dynamic too)"
    )
    int8.add_argument(
        "--int8-float",
        metavar="MODULES",
        help="modules kept float in int8: 'auto' (default) measures each module's int8 cost "
        "on held-out calibration photos and keeps float the fewest that reach "
        "--int8-target-sqnr; 'none' quantises every module; or comma-separated module "
        "paths (e.g. stem,blocks.3.former). Outside the float modules the convolutions and "
        "linears get their int8 weights and a bias corrected for their mean error on the "
        "calibration photos (Core ML: for its quantiser's own int8 weights; docs/int8.md). "
        "Core ML int8-weights measures its float16 modules the same way, on the weights' "
        "error alone",
    )
    int8.add_argument(
        "--int8-target-sqnr",
        type=float_in(1.0, 100.0),
        metavar="DB",
        help="int8 'auto': simulated logits SQNR against float32 to reach (default 22 dB; "
        "verify's int8 bound is 18 dB; Core ML int8-weights: 24 dB, its bound 20; LiteRT "
        "int8-weights: 22 dB for its wide qd8 GEMMs, ONNX int8-dynamic: 22 dB for its "
        "pointwise convolutions, both bound 18). An int8 "
        "artifact is then run on its own runtime on the held-out calibration photos; below "
        "verify's bound + 2.5 dB it is exported again with this target raised (at most 3 "
        "exports; the checks go into the manifest)",
    )
    for target in TARGETS:
        module = target_module(target)
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser.add_argument_group(f"{target} options"))


def _given(args: argparse.Namespace) -> set[str]:
    """Options set on the command line (a value other than the parser's default)."""
    defaults = build_defaults()
    return {k for k, v in vars(args).items() if k in defaults and v != defaults[k]}


def build_defaults() -> dict:
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    return {a.dest: a.default for a in parser._actions}


def run(args: argparse.Namespace) -> int:
    options = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    target, variant = options.pop("target"), options.pop("variant")
    refused = refused_options(target, _given(args))
    if refused:
        flags = ", ".join("--" + k.replace("_", "-") for k in refused)
        raise MfdeployError(f"the {target} target does not take {flags}")
    out_dir, manifest = export_checked(target, variant, **options)
    info(f"wrote {out_dir} ({manifest.target} {manifest.precision}, {manifest.form} form)")
    print(out_dir)
    return 0
