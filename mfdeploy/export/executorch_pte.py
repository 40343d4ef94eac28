"""What an ExecuTorch `.pte` contains: delegate calls, the ops outside them, and the XNNPACK
node histogram inside them.

A `.pte`'s forward plan is a chain of instructions: a DelegateCall runs a lowered subgraph
(here XNNPACK), a KernelCall runs one op on ExecuTorch's portable / optimized kernels. Each
KernelCall between delegate calls splits the graph: a hand-over per run, and a layout change
(XNNPACK keeps feature maps NHWC inside, the portable kernels NCHW). The XNNPACK payload's
flatbuffer (schema shipped with executorch) is read with the wheel's own `flatc`.
Used by `mfdeploy inspect` (harness/inspect.py); reading only, nothing is executed.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from mfdeploy.errors import MfdeployError


def read_program(path: Path):
    from executorch.exir._serialize._program import deserialize_pte_binary

    try:
        return deserialize_pte_binary(path.read_bytes()).program
    except Exception as exc:
        raise MfdeployError(f"{path}: not a readable ExecuTorch program ({exc})") from None


def plan_calls(program) -> tuple[int, Counter]:
    """(delegate calls, histogram of ops run as kernel calls) of the forward plan."""
    plan = next(p for p in program.execution_plan if p.name == "forward")
    delegates, kernels = 0, Counter()
    for chain in plan.chains:
        for instruction in chain.instructions:
            kind = type(instruction.instr_args).__name__
            if kind == "DelegateCall":
                delegates += 1
            elif kind == "KernelCall":
                op = plan.operators[instruction.instr_args.op_index]
                kernels[op.name + (f".{op.overload}" if op.overload else "")] += 1
    return delegates, kernels


def xnnpack_nodes(program) -> Counter:
    """XNNPACK node types of every XNNPACK delegate payload inline in the program."""
    import executorch.data.bin as bin_dir
    from executorch.backends.xnnpack.serialization import xnnpack_graph_serialize as xs

    XNNHeader = xs.XNNHeader
    flatc = Path(bin_dir.__file__).parent / "flatc"
    schema = Path(xs.__file__).parent / "schema.fbs"
    counts: Counter = Counter()
    plan = next(p for p in program.execution_plan if p.name == "forward")
    with tempfile.TemporaryDirectory() as tmp:
        for i, delegate in enumerate(plan.delegates):
            if delegate.id != "XnnpackBackend" or delegate.processed.location != 0:
                continue  # location 0: inline in backend_delegate_data
            data = bytes(program.backend_delegate_data[delegate.processed.index].data)
            header = XNNHeader.from_bytes(data[: XNNHeader.EXPECTED_LENGTH])
            start = header.flatbuffer_offset
            blob = Path(tmp) / f"d{i}.bin"
            blob.write_bytes(data[start : start + header.flatbuffer_size])
            subprocess.run(
                [str(flatc), "-t", "--strict-json", "--raw-binary", "-o", tmp, str(schema)]
                + ["--", str(blob)],
                check=True,
                capture_output=True,
            )
            text = (Path(tmp) / f"d{i}.json").read_text()  # flatc writes inf / nan bare
            text = re.sub(r"\bnan\b", "NaN", re.sub(r"\binf\b", "Infinity", text))
            graph = json.loads(text)
            counts.update(node["xnode_union_type"] for node in graph.get("xnodes", []))
    return counts


def tensor_ranks(program) -> list[int]:
    """Ranks of the tensors the forward plan holds (inputs, outputs, values between calls)."""
    plan = next(p for p in program.execution_plan if p.name == "forward")
    return [len(v.val.sizes) for v in plan.values if type(v.val).__name__ == "Tensor"]
