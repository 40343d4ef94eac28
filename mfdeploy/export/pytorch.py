"""PyTorch "export": reference weights as safetensors, so the torch backend is an artifact too."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import save_file

from mfdeploy.artifact import Manifest, TensorSpec
from mfdeploy.errors import MfdeployError
from mfdeploy.export.common import SourceModel, base_manifest

MODEL_FILE = "model.safetensors"
PRECISIONS = ("fp32",)


def export(
    source: SourceModel, staging: Path, *, precision: str = "fp32", batch: int = 1
) -> Manifest:
    if precision not in PRECISIONS:
        raise MfdeployError(f"target pytorch supports precision {', '.join(PRECISIONS)}")
    state = {k: v.contiguous() for k, v in source.model.state_dict().items()}
    save_file(state, str(staging / MODEL_FILE))
    res = source.preprocessing.resolution
    return base_manifest(
        source,
        target="pytorch",
        precision=precision,
        form="reference",
        model_file=MODEL_FILE,
        input_spec=TensorSpec("input", [batch, 3, res, res], "float32", "NCHW"),
        output_spec=TensorSpec("logits", [batch, source.num_classes]),
        packages=("safetensors",),
    )
