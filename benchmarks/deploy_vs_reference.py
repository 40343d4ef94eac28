"""Reference form vs deploy form (and the rejected deploy layouts), exported to ONNX and
TFLite float32, timed on ONNX Runtime and LiteRT at 1 and 2 threads.

    .venv/bin/python benchmarks/deploy_vs_reference.py [--variants 26m 294m] [--runs 50]
    .venv/bin/python benchmarks/deploy_vs_reference.py --layouts   # + every layout alternative
    .venv/bin/python benchmarks/deploy_vs_reference.py --forms deploy:tokens=conv  # + these
    .venv/bin/python benchmarks/deploy_vs_reference.py --ablations  # + token path parts removed

The layout alternatives (`deploy:KEY=VALUE,...`) are not in the product: they are built by
benchmarks/deploy_layouts.py (DeployLayout), which also checks that each is the same function.

The forms of one variant, runtime and thread count are timed in interleaved rounds (each
round opens every form in turn, 10 warm-up runs, then its share of the `--runs` timed runs),
so that load from elsewhere on the machine falls on all forms alike; the table shows the
median. Prints the table and writes benchmarks/results/deploy_vs_reference.json.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from deploy_layouts import layout_source
from torch import nn

from mfdeploy.console import print_table, progress
from mfdeploy.export import export_artifact
from mfdeploy.harness.inspect import audit
from mfdeploy.models import load_source
from mfdeploy.models.deploy import to_deploy
from mfdeploy.runtimes import open_runtime

TARGETS = {"onnx": "onnxruntime", "tflite": "litert"}
FORMS = ["reference", "deploy"]
LAYOUT_FORMS = [
    "deploy:pixel_sum=flat",
    "deploy:pixel_sum=head_rows",
    "deploy:dyrelu=relu",
    "deploy:features=nhwc",
    "deploy:bridge=pixels",
    "deploy:features=nhwc,bridge=pixels",
    "deploy:tokens=conv",
]
# Not forms of the model: the deploy form with parts of its token path removed. "convolutions
# only" (no bridges, no Former, dynamic ReLU as ReLU) is a floor no rewrite of the same function
# beats; the ablations say what each part of the token path costs.
CONVS_ONLY = "convolutions only"
RESULTS = Path(__file__).parent / "results" / "deploy_vs_reference.json"


class _ReLUIgnoringTokens(nn.Module):
    def forward(self, x: torch.Tensor, token0: torch.Tensor | None) -> torch.Tensor:
        return F.relu(x)


class _FeaturesOnly(nn.Module):
    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None) -> torch.Tensor:
        return x


class _ZeroTokens(nn.Module):
    """Constant tokens, one set per image of x (an int8 export calibrates on batches)."""

    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("tokens", torch.zeros(1, num_tokens, dim))

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None) -> torch.Tensor:
        return self.tokens.expand(x.shape[0], -1, -1)


class _TokensThrough(nn.Module):
    """A Mobile->Former bridge that passes the tokens on (the token table in the first block)."""

    def __init__(self, bridge: nn.Module) -> None:
        super().__init__()
        self.table = getattr(bridge, "tokens_in", None)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None) -> torch.Tensor:
        return self.table if tokens is None else tokens


def convolutions_only(model: nn.Module) -> nn.Module:
    """The Mobile path and head of the deploy form, without any token work."""
    floor = copy.deepcopy(to_deploy(model))
    spec = model.variant
    for block in floor.blocks:
        block.tokens = lambda x, tokens: (None, None)
        block.act1, block.act2 = _ReLUIgnoringTokens(), _ReLUIgnoringTokens()
        block.bridge_out = _FeaturesOnly()
    floor.bridge_final = _ZeroTokens(spec.num_tokens, spec.token_dim)
    return floor


def without(part: str):
    """The deploy form with one part of every block's token path removed."""

    def build(model: nn.Module) -> nn.Module:
        ablated = copy.deepcopy(to_deploy(model))
        for block in ablated.blocks:
            if part == "dynamic ReLU":
                block.act1, block.act2 = _ReLUIgnoringTokens(), _ReLUIgnoringTokens()
            elif part == "Former->Mobile":
                block.bridge_out = _FeaturesOnly()
            elif part == "Former":
                block.former = nn.Identity()
            else:
                block.bridge_in = _TokensThrough(block.bridge_in)
        return ablated

    return build


NOT_THE_MODEL = {CONVS_ONLY: convolutions_only} | {
    f"without {part}": without(part)
    for part in ("dynamic ReLU", "Mobile->Former", "Former", "Former->Mobile")
}


def export_forms(
    variant: str, target: str, forms: list[str], workdir: Path, precision: str = "fp32"
) -> dict[str, Path]:
    paths = {}
    source = load_source(variant)
    for form in forms:
        name = f"{variant}-{target}-{precision}-{re.sub(r'[^A-Za-z0-9=]+', '-', form)}"
        out = workdir / name
        options = {"ort_format": False} if target == "onnx" else {}
        if form in NOT_THE_MODEL:
            stripped = dataclasses.replace(source, model=NOT_THE_MODEL[form](source.model))
            options.update(source=stripped, form="reference")
        else:  # reference, deploy or a deploy layout of benchmarks/deploy_layouts.py
            options.update(source=layout_source(source), form=form)
        paths[form], _ = export_artifact(target, variant, precision=precision, out=out, **options)
    return paths


def interleaved_medians(paths: dict, threads: int, x: np.ndarray, runs: int, rounds: int) -> dict:
    """Per form: median / p90 / min latency (ms) of `runs` runs taken in `rounds` rounds.

    One runtime is open at a time: idle ONNX Runtime sessions keep their threads spinning,
    which would slow whichever form is being timed.
    """
    samples: dict[str, list[float]] = {form: [] for form in paths}
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for form, path in paths.items():
            runtime = open_runtime(path, threads=threads)
            for _ in range(10):
                runtime.run(x)
            for _ in range(per_round):
                start = time.perf_counter()
                runtime.run(x)
                samples[form].append((time.perf_counter() - start) * 1000.0)
            del runtime
    return {
        form: {
            "median": float(np.median(v)),
            "p90": float(np.percentile(v, 90)),
            "min": float(np.min(v)),
            "runs": len(v),
        }
        for form, v in samples.items()
    }


def measure(args: argparse.Namespace, variant: str, forms: list[str], workdir: Path) -> list[dict]:
    rows = []
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    for target, runtime_name in TARGETS.items():
        paths = export_forms(variant, target, forms, workdir)
        audits = {form: audit(path) for form, path in paths.items()}
        for n in args.threads:
            latency = interleaved_medians(paths, n, x, args.runs, args.rounds)
            for form, report in audits.items():
                rows.append(
                    {
                        "variant": variant,
                        "runtime": runtime_name,
                        "form": form,
                        "threads": n,
                        "ops": sum(report.ops.values()),
                        "transposes": report.ops.get("Transpose", report.ops.get("TRANSPOSE", 0)),
                        "max_rank": report.max_rank,
                        "xnnpack_partitions": report.xnnpack_partitions,
                        "latency_ms": latency[form],
                    }
                )
    return rows


def table_rows(rows: list[dict]) -> list[list]:
    table = []
    for row in rows:
        ref = next(
            r
            for r in rows
            if r["form"] == "reference"
            and all(r[k] == row[k] for k in ("variant", "runtime", "threads"))
        )
        speedup = ref["latency_ms"]["median"] / row["latency_ms"]["median"]
        table.append(
            [
                row["variant"],
                row["runtime"],
                row["threads"],
                row["form"],
                f"{row['latency_ms']['median']:.2f}",
                f"{speedup:.2f}x",
                row["ops"],
                row["transposes"],
                row["max_rank"],
                "-" if row.get("xnnpack_partitions") is None else row["xnnpack_partitions"],
            ]
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["26m", "294m"])
    parser.add_argument("--runs", type=int, default=50, help="timed runs per form (>= 50)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--layouts", action="store_true", help="also time every deploy layout alternative"
    )
    parser.add_argument(
        "--forms", nargs="+", default=[], help="also time these forms (e.g. deploy:tokens=conv)"
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file ({RESULTS})")
    parser.add_argument(
        "--ablations",
        action="store_true",
        help="also time the deploy form without each part of its token path (not the model)",
    )
    args = parser.parse_args()
    extra = LAYOUT_FORMS if args.layouts else []
    forms = FORMS + extra + [f for f in args.forms if f not in FORMS + extra]
    forms += [form for form in NOT_THE_MODEL if args.ablations or form == CONVS_ONLY]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in progress(args.variants, description="variants"):
            rows += measure(args, variant, forms, Path(tmp))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print_table(
        f"float32, batch 1, median of {args.runs} runs in {args.rounds} interleaved rounds (ms)",
        [
            "variant",
            "runtime",
            "threads",
            "form",
            "ms",
            "vs ref",
            "ops",
            "transposes",
            "rank",
            "XNNPACK parts",
        ],
        table_rows(rows),
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
