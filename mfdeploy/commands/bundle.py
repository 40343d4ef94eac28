"""Bundle an exported artifact into a demo app (android_demo/, ios_demo/ or web_demo/).

Copies the model (model.tflite or model.pte for Android, model.mlpackage for iOS,
model.tflite or model.onnx for the web page; one slot per target in the apps that run two),
manifest.json and labels.txt into the
app's bundle directory, with the sample photo resized as the manifest
says and a golden file: the preprocessed input tensor's checksum and sample values and the
top-5 classes and scores the artifact's Python runtime computes on that photo (LiteRT for
.tflite, ExecuTorch for .pte, ONNX Runtime for .onnx, the Core ML adapter for .mlpackage),
which the app checks.

Where the files go is read from the app's contract file (BundleContract.kt /
BundleContract.swift / bundle_contract.json). The bundle is staged and moved into place
only when complete.
Refused with exit code 2, leaving the app's previous bundle untouched: an artifact whose
model does not match its manifest's sha256, a target the app cannot run (Core ML / ONNX /
PyTorch into Android, ONNX / PyTorch / ExecuTorch into iOS, Core ML into the web page), int8
tensors into the web page's LiteRT.js (export with --float-io), float16 I/O into Android's
ExecuTorch engine, a missing model or labels file, a
--project that is not the app.

examples:
  mfdeploy export --target tflite --variant 26m --out artifacts/26m-tflite
  mfdeploy bundle --app android artifacts/26m-tflite
  mfdeploy export --target executorch --variant 26m --out artifacts/26m-pte
  mfdeploy bundle --app android artifacts/26m-pte     # beside the tflite bundle
  mfdeploy export --target coreml --variant 26m --out artifacts/26m-coreml
  mfdeploy bundle --app ios artifacts/26m-coreml --project ~/src/mfdeploy/ios_demo
  mfdeploy bundle --app web artifacts/26m-tflite && python3 web_demo/serve.py
"""

from __future__ import annotations

import argparse

from mfdeploy.apps.bundle import APPS, bundle

NAME = "bundle"
HELP = "copy an artifact + golden vectors into the Android, iOS or web demo app"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--app",
        required=True,
        choices=list(APPS),
        help="android (tflite or executorch artifact), ios (coreml) or web (tflite or onnx)",
    )
    parser.add_argument("artifact", help="artifact directory (model + manifest.json + labels)")
    parser.add_argument(
        "--project",
        help="the app's project directory (default: ./android_demo, ./ios_demo or "
        "./web_demo, else the one in the mfdeploy repository)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace the app's bundle directory even if it does not hold a previous bundle",
    )


def run(args: argparse.Namespace) -> int:
    print(bundle(args.app, args.artifact, args.project, force=args.force))
    return 0
