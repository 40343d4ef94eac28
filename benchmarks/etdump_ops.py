"""XNNPACK time per operator kind inside a `.pte`'s delegate, from ETDump (ExecuTorch's
profiling of one process: the XNNPACK delegate reports each of its operators with the kernel
it chose, e.g. "Convolution (NHWC, F32) DWConv").

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/etdump_ops.py ART_DIR [--runs 20]

Prints, per operator kind, the sum over its operators of each one's median time over the last
half of the runs, and its share of that total. The ms are under whatever else the machine runs;
compare two artifacts in one sitting.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from mfdeploy.artifact import Manifest


def operator_ms(pte: Path, shape: list[int], runs: int) -> tuple[Counter, Counter]:
    """(ms per operator kind, operator count per kind) of `runs` runs on a random input."""
    from executorch.devtools import Inspector
    from executorch.runtime import Runtime

    from mfdeploy.runtimes.executorch import set_threads

    set_threads(1)
    program = Runtime.get().load_program(pte, enable_etdump=True)
    method = program.load_method("forward")
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    for _ in range(runs):
        method.execute([x])
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dump = Path(tmp) / "run.etdp"
        program.write_etdump_result_to_file(str(dump), str(Path(tmp) / "debug.bin"))
        frame = Inspector(etdump_path=str(dump)).to_dataframe()
    ms, count = Counter(), Counter()
    for name, times in zip(frame["event_name"], frame["raw"], strict=True):
        if name.startswith(("Method::", "Program::", "DELEGATE_CALL", "OPERATOR_CALL")):
            continue
        kind = re.sub(r" #\d+$", "", name)
        ms[kind] += statistics.median(times[len(times) // 2 :])
        count[kind] += 1
    return ms, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    manifest = Manifest.load(args.artifact)
    ms, count = operator_ms(args.artifact / manifest.model_file, manifest.input.shape, args.runs)
    total = sum(ms.values())
    print(f"total {total:.2f} ms (operators of the XNNPACK delegate, 1 thread)")
    for kind, value in ms.most_common():
        print(f"{value:7.2f} ms {100 * value / total:5.1f} %  {count[kind]:4d}  {kind}")


if __name__ == "__main__":
    main()
