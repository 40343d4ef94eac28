"""Reading a Core ML ML program back: the saved `.mlpackage` as a MIL program, its ranks and ops.

Shared by the exporter (rank check, op histogram in the manifest), `mfdeploy inspect` and
the MIL executor (mfdeploy.runtimes.mil_executor), which runs the program on Linux.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

MAX_RANK = 4  # the deploy-form rule: no tensor of higher rank in a shipped graph


def load_program(mlpackage: str | Path):
    """`.mlpackage` -> MIL Program (coremltools' milproto loader; works without Core ML)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    path = Path(mlpackage)
    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    weights = path / "Data" / "com.apple.CoreML" / "weights"
    return load(spec, spec.specificationVersion, str(weights) if weights.is_dir() else "")


def tensor_rank(var) -> int:
    """Rank of a MIL tensor var; 0 for scalars, strings, lists (the classifier's label list)."""
    try:
        shape = var.shape
    except ValueError:
        return 0
    return len(shape) if shape is not None else 0


def program_ranks(program) -> tuple[int, list[str]]:
    """Highest tensor rank in a MIL program and the ops producing rank > MAX_RANK."""
    highest, offenders = 0, []
    for function in program.functions.values():
        for op in function.operations:
            for var in op.outputs:
                rank = tensor_rank(var)
                highest = max(highest, rank)
                if rank > MAX_RANK:
                    offenders.append(f"{op.op_type}:{op.name} (rank {rank})")
    return highest, offenders


def op_histogram(program) -> dict[str, int]:
    """MIL op types of a program, most frequent first."""
    counts: Counter[str] = Counter(
        op.op_type for function in program.functions.values() for op in function.operations
    )
    return dict(counts.most_common())
