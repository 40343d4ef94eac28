"""Where LiteRT's time goes, per XNNPACK kernel kind: `perf` samples of a timed loop.

    PYTHONPATH=. .venv/bin/python benchmarks/litert_perf.py --artifacts fp32=DIR int8=DIR
        [--seconds 20]

The pip wheel of LiteRT has no op profiler (its Python interpreter exposes none, and the
`benchmark_model` binary that has one is not on PyPI), so this samples the process instead:
each artifact runs in a child process at 1 thread, `perf record` samples it for
`--seconds` once it is warm, and the samples are grouped by the XNNPACK microkernel they
fell in (GEMM / IGEMM / depthwise / elementwise ... and their datatype). A kind's share times
the child's median latency gives its milliseconds. Needs Linux `perf` (perf_event_paranoid
<= 2 lets a process sample its own children). Prints the table and writes
benchmarks/results/litert_perf.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mfdeploy.console import print_table

OUT = Path(__file__).parent / "results" / "litert_perf.json"

#: (kind, pattern on the symbol), first match wins; XNNPACK's kernel names carry the datatype
#: (f32, qs8 = static int8, qd8 = int8 with activations quantised at run time)
KINDS = (
    ("GEMM f32 (1x1 conv, linear, matmul)", r"xnn_f32_gemm"),
    ("IGEMM f32 (3x3 conv, grouped conv)", r"xnn_f32_igemm"),
    ("GEMM int8 static", r"xnn_qs8_qc8w_gemm"),
    ("IGEMM int8 static", r"xnn_qs8_qc8w_igemm"),
    ("GEMM int8 dynamic (qd8)", r"xnn_qd8_"),
    ("depthwise f32", r"xnn_f32_dwconv"),
    ("depthwise int8", r"xnn_qs8_qc8w_dwconv"),
    ("multiply f32", r"xnn_f32_vmul"),
    ("multiply int8", r"xnn_qs8_vmul"),
    ("add / sub f32", r"xnn_f32_v(add|sub)"),
    ("add / sub int8", r"xnn_qs8_v(add|sub)"),
    ("maximum / clamp f32", r"xnn_f32_v(max|min|clamp)"),
    ("int8 -> f32 (DEQUANTIZE)", r"xnn_qs8_f32_vcvt"),
    ("f32 -> int8 (QUANTIZE, qd8 input)", r"xnn_f32_qs8_vcvt|xnn_f32_qd8|xnn_qd8_.*quant"),
    ("softmax / exp / gelu", r"raddstoreexpminusmax|vexp|rmax|vgelu|verf|vtanh|vsigmoid"),
    ("transpose", r"transpose"),
    ("weight packing (matmul operands)", r"packw|pack_"),
    ("memcpy / memset (copies, padding)", r"memmove|memcpy|memset"),
    ("XNNPACK / LiteRT scheduling", r"^xnn_|tflite|litert"),
)

# The child: the harness's own timing (50 runs after 10 warm-up) on an input of the artifact's
# resolution, then runs until killed while perf samples it.
CHILD = """
import sys
import numpy as np
from mfdeploy.harness.timing import time_runtime
from mfdeploy.runtimes import open_runtime
rt = open_runtime(sys.argv[1], threads=1)
res = int(rt.manifest.preprocessing.get("resolution", 224))
x = np.random.default_rng(0).standard_normal((1, 3, res, res)).astype(np.float32)
print("MEDIAN", time_runtime(rt, x)["latency_ms"]["median"], flush=True)
while True:
    rt.run(x)
"""


def kind_of(symbol: str) -> str:
    for kind, pattern in KINDS:
        if re.search(pattern, symbol):
            return kind
    return "other (Python, numpy I/O copies)"


def profile(artifact: str, seconds: float, data: Path) -> tuple[float, dict[str, float]]:
    """(median ms, share per kind) of `artifact` running in a child process."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, artifact],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        line = child.stdout.readline()
        if not line.startswith("MEDIAN"):
            raise SystemExit(f"error: {artifact} did not run on LiteRT")
        median = float(line.split()[1])
        subprocess.run(
            ["perf", "record", "-F", "4000", "-p", str(child.pid), "-o", str(data), "--",
             "sleep", str(seconds)],
            check=True, capture_output=True,
        )  # fmt: skip
    finally:
        child.kill()
        child.wait()
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--sort", "symbol", "-g", "none",
         "--stdio"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    shares: dict[str, float] = {}
    for row in report.splitlines():
        match = re.match(r"\s*([\d.]+)%\s+\[[.k]\]\s+(\S+)", row)
        if match:
            kind = kind_of(match.group(2))
            shares[kind] = shares.get(kind, 0.0) + float(match.group(1)) / 100.0
    return median, shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", nargs="+", metavar="NAME=DIR", required=True)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("error: needs Linux perf (apt-get install linux-perf)")
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for item in args.artifacts:
            name, _, path = item.partition("=")
            start = time.time()
            median, shares = profile(path, args.seconds, Path(scratch) / f"{name}.data")
            results[name] = {"median_ms": median, "shares": shares}
            print(f"{name}: {median:.2f} ms median ({time.time() - start:.0f} s)", flush=True)
    kinds = [k for k, _ in KINDS] + ["other (Python, numpy I/O copies)"]
    rows = [
        [kind] + [f"{r['shares'].get(kind, 0) * r['median_ms']:.2f}" for r in results.values()]
        for kind in kinds
        if any(r["shares"].get(kind, 0) >= 0.005 for r in results.values())
    ]
    rows.append(["median latency"] + [f"{r['median_ms']:.2f}" for r in results.values()])
    print_table(
        "ms per kernel kind (perf samples x median latency), 1 thread", ["kind", *results], rows
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
