"""How far apart two float32 evaluations of the same Mobile-Former are, next to how far the
deploy form is from the reference: the scale against which issue 4's "max abs <= 1e-5 in
float32" has to be read.

    .venv/bin/python benchmarks/float32_noise.py [--variants 294m] [--weights FILE]

For each input set it prints the max abs logit difference of
  - the float32 reference and the float32 deploy form against float64 (exact arithmetic),
  - the deploy form against the reference (both float32),
  - the reference against *itself* evaluated another way: 2 threads instead of 1, channels-last
    memory format (PyTorch then picks other convolution kernels), one image at a time,
  - the float64 reference with only its convolutions in float32 against float64: the share of
    the float32 error that BatchNorm folding (new convolution weights) necessarily changes.
Weights: `--weights`, else the official-layout fixture of the variant when one is found
(tests/fixtures, ../shared/reference/official), else the synthetic weights.
Writes benchmarks/results/float32_noise.json.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mfdeploy.console import print_table, progress
from mfdeploy.models import create_model
from mfdeploy.models.deploy import to_deploy

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_DIRS = [ROOT / "tests" / "fixtures", ROOT.parent / "shared" / "reference" / "official"]
RESULTS = Path(__file__).parent / "results" / "float32_noise.json"
COLUMNS = [
    "ref - exact",
    "deploy - exact",
    "deploy - ref",
    "ref: 2 threads - 1",
    "ref: channels-last - default",
    "ref: one by one - batched",
    "ref: float32 convs only - exact",
]


def default_weights(variant: str) -> str:
    for folder in FIXTURE_DIRS:
        path = folder / f"mobile_former_{variant}.safetensors"
        if path.is_file():
            return str(path)
    return "synthetic"


def input_sets() -> list[tuple[str, torch.Tensor]]:
    sets = []
    for resolution in (224, 256):
        for batch in (1, 4):
            gen = torch.Generator().manual_seed(batch * 1000 + resolution)
            image = torch.randn(batch, 3, resolution, resolution, generator=gen)
            sets.append((f"random {batch}x{resolution}", image))
    for folder in FIXTURE_DIRS:
        if (folder / "inputs_2x3x224x224.npy").is_file():
            inputs = np.load(folder / "inputs_2x3x224x224.npy")
            sets.append(("fixture inputs 2x224", torch.from_numpy(inputs)))
            break
    return sets


def with_threads(threads: int, run: Callable[[], torch.Tensor]) -> torch.Tensor:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return run()
    finally:
        torch.set_num_threads(before)


def float32_convolutions(exact: nn.Module) -> nn.Module:
    """A copy of the float64 model whose convolutions compute in float32."""
    model = copy.deepcopy(exact)
    for conv in [m for m in model.modules() if isinstance(m, nn.Conv2d)]:
        conv.float()

        def forward(x: torch.Tensor, conv: nn.Conv2d = conv) -> torch.Tensor:
            return nn.Conv2d.forward(conv, x.float()).double()

        conv.forward = forward
    return model


@torch.no_grad()
def differences(reference: nn.Module, exact: nn.Module, x: torch.Tensor) -> list[float]:
    """The table row of one input set (all at 1 thread unless the column says otherwise)."""
    deploy = to_deploy(reference, x.shape[-1])
    channels_last = copy.deepcopy(reference).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    outputs = {
        "ref": with_threads(1, lambda: reference(x)),
        "deploy": with_threads(1, lambda: deploy(x)),
        "exact": exact(x.double()),
        "ref2": with_threads(2, lambda: reference(x)),
        "ref_cl": with_threads(1, lambda: channels_last(x_cl)),
        "ref_single": with_threads(1, lambda: torch.cat([reference(i[None]) for i in x])),
        "convs32": with_threads(1, lambda: float32_convolutions(exact)(x.double())),
    }
    pairs = [
        ("ref", "exact"),
        ("deploy", "exact"),
        ("deploy", "ref"),
        ("ref2", "ref"),
        ("ref_cl", "ref"),
        ("ref_single", "ref"),
        ("convs32", "exact"),
    ]
    return [float((outputs[a].double() - outputs[b].double()).abs().max()) for a, b in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["294m"])
    parser.add_argument("--weights", help="checkpoint for every variant (default: see above)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file ({RESULTS})")
    args = parser.parse_args()

    records = []
    for variant in args.variants:
        weights = args.weights or default_weights(variant)
        reference = create_model(variant, weights=weights).eval()
        exact = create_model(variant, weights=weights).double().eval()
        rows = []
        for name, x in progress(input_sets(), f"{variant}: float32 evaluations"):
            values = differences(reference, exact, x)
            rows.append([name, *(f"{v:.2e}" for v in values)])
            records.append(
                {"variant": variant, "weights": Path(weights).name, "inputs": name}
                | dict(zip(COLUMNS, values))
            )
        print_table(
            f"{variant} ({Path(weights).name}): max abs logit difference",
            ["inputs", *COLUMNS],
            rows,
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(records, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
