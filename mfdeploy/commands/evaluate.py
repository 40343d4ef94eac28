"""Top-1 / top-5 accuracy on labelled images, for the PyTorch model or an exported artifact.

By default the labelled subset of the photo set (run `mfdeploy data fetch` first); with
--images DIR, sub-folders named by class index ("207/") or ImageNet synset hold the images.
An artifact runs on its own runtime with the preprocessing recorded in its manifest.

examples:
  mfdeploy evaluate --model efficientnet_lite0
  mfdeploy evaluate artifacts/efficientnet_lite0-onnx-int8 --json
  mfdeploy evaluate --model mobile_former --variant 26m --weights mf26m.pth --images val/
"""

from __future__ import annotations

import argparse
import json

from mfdeploy.commands.common import add_model_arguments, source_from_args, threads_argument
from mfdeploy.errors import MfdeployError
from mfdeploy.harness.accuracy import accuracy, labelled_images
from mfdeploy.models import families

NAME = "evaluate"
HELP = "top-1 / top-5 accuracy on labelled photos (model or artifact)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", nargs="?", help="artifact directory (or use --model)")
    add_model_arguments(parser, resolution=True)
    parser.add_argument(
        "--images", help="labelled image dir: <class index or synset>/<image> sub-folders"
    )
    threads_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")


def _runner(args: argparse.Namespace):
    """(run function, preprocessing, runtime name) for an artifact or a model."""
    from mfdeploy.preprocessing import Preprocessing

    if args.artifact:
        from mfdeploy.runtimes import open_runtime

        runtime = open_runtime(args.artifact, args.threads)
        prep = Preprocessing.from_dict(runtime.manifest.preprocessing)
        return runtime.run, prep, runtime.info().runtime
    from mfdeploy.runtimes.torch_runtime import TorchRuntime

    source = source_from_args(args)
    if source.synthetic:
        trained = [e.name for e in families().values() if e.default_weights != "synthetic"]
        raise MfdeployError(
            "accuracy needs trained weights: pass --weights, or a --model with trained "
            f"weights ({', '.join(trained)})"
        )
    runtime = TorchRuntime.from_model(source.model, args.threads)
    return runtime.run, source.preprocessing, "pytorch"


def run(args: argparse.Namespace) -> int:
    pairs = labelled_images(args.images)
    run_batch, prep, runtime = _runner(args)
    result = accuracy(run_batch, pairs, prep)
    data = {
        "top1": result.top1,
        "top5": result.top5,
        "num_images": result.num_images,
        "runtime": runtime,
    }
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(
            f"top-1 {result.top1:.1%}  top-5 {result.top5:.1%}  "
            f"on {result.num_images} images ({runtime})"
        )
    return 0
