"""How long coremltools' quantizer takes to annotate a model for W8A8, with its activation
lists narrowed to the model's own activations (what `mfdeploy export --precision int8`
does) and with all 15, and whether the two prepared programs are the same.

    PYTHONPATH=. .venv/bin/python benchmarks/coreml_w8a8_prepare.py [--model NAME]

Run in a fresh process: the narrowed preparation goes first and traces its patterns from
nothing; the full one then traces only the patterns the narrowed one did not (the memo keeps
the rest), so its time is a lower bound of a first full preparation. Prints both times and
the comparison; writes benchmarks/results/coreml_w8a8_prepare.json (one entry per model).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mfdeploy.export import coreml_w8a8
from mfdeploy.models import load_source
from mfdeploy.models.source import export_module

OUT = Path(__file__).parent / "results" / "coreml_w8a8_prepare.json"


def prepared(module: torch.nn.Module, example: torch.Tensor, narrow: bool) -> tuple:
    """(prepared program, seconds of `prepare_pt2e`)."""
    prepare_pt2e, _ = coreml_w8a8._pt2e()
    program = torch.export.export(module, (example,)).module()
    quantizer = coreml_w8a8.quantizer_config()
    start = time.perf_counter()
    if narrow:
        with coreml_w8a8._only_activations_in(program):
            result = prepare_pt2e(program, quantizer)
    else:
        result = prepare_pt2e(program, quantizer)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="26m", help="a variant or model name (default 26m)")
    args = parser.parse_args()
    source = load_source(args.model)
    module = export_module(source, "deploy").eval()
    res = source.preprocessing.resolution
    example = torch.zeros(1, 3, res, res)
    narrowed, narrowed_s = prepared(module, example, narrow=True)
    full, full_s = prepared(module, example, narrow=False)
    result = {
        "model": source.name,
        "narrowed_s": round(narrowed_s, 1),
        "full_s_lower_bound": round(full_s, 1),
        "same_program": narrowed.code == full.code,
        "observers": sum(node.op == "call_module" for node in narrowed.graph.nodes),
    }
    print(json.dumps(result))
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    results[source.name] = result
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
