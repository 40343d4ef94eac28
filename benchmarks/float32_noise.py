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
from _common import FIXTURE_DIRS, fixture_weights
from torch import nn

from mfdeploy.console import print_table, progress
from mfdeploy.models import create_model
from mfdeploy.models.deploy import to_deploy

RESULTS = Path(__file__).parent / "results" / "float32_noise.json"
# Each column is max |a - b| over the logits of two evaluations (named as in `outputs`).
COLUMNS = {
    "ref - exact": ("ref", "exact"),
    "deploy - exact": ("deploy", "exact"),
    "deploy - ref": ("deploy", "ref"),
    "ref: 2 threads - 1": ("ref_2_threads", "ref"),
    "ref: channels-last - default": ("ref_channels_last", "ref"),
    "ref: one by one - batched": ("ref_one_by_one", "ref"),
    "ref: float32 convs only - exact": ("ref_float32_convs", "exact"),
}


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


class Evaluations:
    """Every model the table evaluates for one variant, built once."""

    def __init__(self, variant: str, weights: str) -> None:
        self.reference = create_model(variant, weights=weights).eval()
        self.exact = create_model(variant, weights=weights).double().eval()
        self.channels_last = copy.deepcopy(self.reference).to(memory_format=torch.channels_last)
        self.float32_convs = float32_convolutions(self.exact)
        self.deploys: dict[int, nn.Module] = {}

    def deploy(self, resolution: int) -> nn.Module:
        if resolution not in self.deploys:
            self.deploys[resolution] = to_deploy(self.reference, resolution)
        return self.deploys[resolution]

    @torch.no_grad()
    def outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The logits of every evaluation (1 thread unless the name says otherwise)."""
        reference, deploy = self.reference, self.deploy(x.shape[-1])
        x_cl = x.contiguous(memory_format=torch.channels_last)
        return {
            "ref": with_threads(1, lambda: reference(x)),
            "deploy": with_threads(1, lambda: deploy(x)),
            "exact": self.exact(x.double()),
            "ref_2_threads": with_threads(2, lambda: reference(x)),
            "ref_channels_last": with_threads(1, lambda: self.channels_last(x_cl)),
            "ref_one_by_one": with_threads(1, lambda: torch.cat([reference(i[None]) for i in x])),
            "ref_float32_convs": with_threads(1, lambda: self.float32_convs(x.double())),
        }

    def differences(self, x: torch.Tensor) -> list[float]:
        """The table row of one input set."""
        logits = {name: out.double() for name, out in self.outputs(x).items()}
        return [float((logits[a] - logits[b]).abs().max()) for a, b in COLUMNS.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["294m"])
    parser.add_argument("--weights", help="checkpoint for every variant (default: see above)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file ({RESULTS})")
    args = parser.parse_args()

    records = []
    for variant in args.variants:
        weights = args.weights or fixture_weights(variant)
        evaluations = Evaluations(variant, weights)
        rows = []
        for name, x in progress(input_sets(), f"{variant}: float32 evaluations"):
            values = evaluations.differences(x)
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
