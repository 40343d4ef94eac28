"""What an exported graph contains: op histogram, tensor ranks, size, and deploy-form rules.

The rules every deploy-form graph must pass: no runtime shape / gather / einsum / scatter
ops in ONNX, only builtin ops in TFLite (no Flex / custom), and no tensor of rank > 4
(Core ML's limit is 5, NPUs and LiteRT prefer <= 4). For TFLite it also counts the XNNPACK
partitions: each op the delegate does not take splits the graph, and every split costs a
hand-over between XNNPACK and LiteRT's own kernels on each run. For ExecuTorch it counts the
XNNPACK delegate calls and the ops left on the portable kernels (each one is a split).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mfdeploy.artifact import MANIFEST_NAME, open_artifact, path_size
from mfdeploy.errors import MfdeployError
from mfdeploy.export.coreml_mil import MAX_RANK, load_program, op_histogram, program_ranks
from mfdeploy.export.onnx_values import inferred_values

BANNED_ONNX_OPS = ("Shape", "Gather", "GatherElements", "GatherND", "Einsum", "ScatterND")


def over_rank(tensors: list[str]) -> list[str]:
    """The violation for tensors of rank above MAX_RANK (none when there are none)."""
    return [f"{len(tensors)} tensors of rank > {MAX_RANK}"] if tensors else []


@dataclass
class AuditReport:
    path: str
    format: str
    ops: dict[str, int]
    max_rank: int
    tensors_over_rank: list[str]
    model_bytes: int
    violations: list[str] = field(default_factory=list)
    xnnpack_partitions: int | None = None  # TFLite only; 1 = the whole graph in XNNPACK
    delegate_calls: int | None = None  # ExecuTorch only: XNNPACK delegate calls per run
    portable_ops: dict[str, int] | None = None  # ExecuTorch only: ops outside the delegate

    @property
    def passed(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        return data


def _onnx_report(path: Path) -> AuditReport:
    import onnx

    try:
        model = onnx.load(str(path))
        values = inferred_values(model)
    except Exception as exc:
        raise MfdeployError(f"{path}: not a readable ONNX model ({exc})") from None
    graph = model.graph
    ops = Counter(node.op_type for node in graph.node)
    ranks = {name: len(v.dims) for name, v in values.items() if v.dims is not None}
    for init in graph.initializer:
        ranks[init.name] = len(init.dims)
    over = sorted(name for name, rank in ranks.items() if rank > MAX_RANK)
    violations = [f"{count} x {op}" for op, count in ops.items() if op in BANNED_ONNX_OPS]
    violations += over_rank(over)
    return AuditReport(
        str(path),
        "onnx",
        dict(ops.most_common()),
        max(ranks.values(), default=0),
        over,
        path_size(path),
        violations,
    )


def _tflite_report(path: Path) -> AuditReport:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path))
    except Exception as exc:
        raise MfdeployError(f"{path}: not a readable TFLite model ({exc})") from None
    builtin = {name for name in vars(schema.BuiltinOperator) if not name.startswith("_")}
    ops = Counter(op["op_name"] for op in interpreter._get_ops_details())
    ranks = {t["name"]: len(t["shape"]) for t in interpreter.get_tensor_details()}
    over = sorted(name for name, rank in ranks.items() if rank > MAX_RANK)
    violations = [f"{count} x non-builtin {op}" for op, count in ops.items() if op not in builtin]
    violations += over_rank(over)
    return AuditReport(
        str(path),
        "tflite",
        dict(ops.most_common()),
        max(ranks.values(), default=0),
        over,
        path_size(path),
        violations,
        xnnpack_partitions(interpreter),
    )


def xnnpack_partitions(interpreter) -> int:
    """Delegate nodes XNNPACK (LiteRT's default CPU path) adds to the graph when tensors are
    allocated; read the model's own ops before calling this."""
    interpreter.allocate_tensors()  # delegation happens here
    return sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())


def _coreml_report(path: Path) -> AuditReport:
    try:
        program = load_program(path)
    except Exception as exc:
        raise MfdeployError(f"{path}: not a readable Core ML package ({exc})") from None
    highest, offenders = program_ranks(program)
    violations = over_rank(offenders)
    return AuditReport(
        str(path),
        "coreml",
        op_histogram(program),
        highest,
        offenders,
        path_size(path),
        violations,
    )


def _pte_report(path: Path) -> AuditReport:
    """Ops outside the XNNPACK delegate are violations: each splits the graph."""
    from mfdeploy.export import executorch_pte as pte

    program = pte.read_program(path)
    delegates, portable = pte.plan_calls(program)
    ops = Counter({f"xnnpack:{op}": n for op, n in pte.xnnpack_nodes(program).items()})
    ops.update({f"portable:{op}": n for op, n in portable.items()})
    ranks = pte.tensor_ranks(program)
    over = [f"value {i}" for i, rank in enumerate(ranks) if rank > MAX_RANK]
    violations = [f"{n} x {op} outside the XNNPACK delegate" for op, n in portable.items()]
    violations += over_rank(over)
    return AuditReport(
        str(path),
        "pte",
        dict(ops.most_common()),
        max(ranks, default=0),
        over,
        path_size(path),
        violations,
        delegate_calls=delegates,
        portable_ops=dict(portable.most_common()),
    )


def model_path(path: str | Path) -> Path:
    """An artifact dir (manifest.json) or a model file -> the model file."""
    path = Path(path)
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return path / open_artifact(path).model_file
    if not path.exists():
        raise MfdeployError(f"{path}: no such file or artifact directory")
    return path


AUDITORS = {
    ".onnx": _onnx_report,
    ".tflite": _tflite_report,
    ".mlpackage": _coreml_report,
    ".pte": _pte_report,
}


def audit(path: str | Path) -> AuditReport:
    """Audit an exported model (or the model of an artifact directory)."""
    target = model_path(path)
    auditor = AUDITORS.get(target.suffix)
    if auditor is None:
        raise MfdeployError(
            f"{target}: cannot inspect {target.suffix or 'this'} files "
            f"(known: {', '.join(AUDITORS)})"
        )
    return auditor(target)
