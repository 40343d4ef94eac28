"""ONNX Runtime adapter: CPU execution provider, the same runtime ORT Mobile embeds.

Session creation (graph optimisation included) is timed by the base class as `init_ms`,
separately from inference. Inputs are cast to the model's own input dtype (float16 for
`--io-fp16` artifacts) and outputs back to float32, so callers always pass and get float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfdeploy.artifact import Manifest
from mfdeploy.errors import MfdeployError
from mfdeploy.export.scopes import Graph, Node
from mfdeploy.runtimes.base import (
    Runtime,
    RuntimeInfo,
    to_input_layout,
)
from mfdeploy.runtimes.cpu import host_int8_sums_saturate
from mfdeploy.static_batches import run_static_batches

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class OnnxRuntime(Runtime):
    runtime_name = "onnxruntime"

    def __init__(
        self,
        artifact_dir: Path,
        manifest: Manifest,
        threads: int | None = None,
        optimization: str = "all",
    ):
        if optimization not in OPTIMIZATION_LEVELS:
            raise MfdeployError(
                f"unknown graph optimisation level {optimization!r}; "
                f"choose one of: {', '.join(OPTIMIZATION_LEVELS)}"
            )
        if threads is not None and threads < 1:
            raise MfdeployError("threads must be at least 1")
        self.optimization = optimization
        super().__init__(artifact_dir, manifest, threads)

    def _open(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        options.graph_optimization_level = levels[self.optimization]
        options.log_severity_level = 3
        # x86 CPUs without VNNI (AVX2 only) run u8 x s8 products through 16-bit intermediate
        # sums that saturate; this option makes ORT keep the exact products (int16 widening),
        # so an int8 model computes what its QDQ graph says on every x86 host (docs/onnx.md).
        # Only there: on a VNNI host it halves int8 speed for nothing (EfficientNet-Lite0
        # int8 16.37 vs 7.28 ms, docs/onnx.md).
        if host_int8_sums_saturate():
            options.add_session_config_entry("session.x64quantprecision", "1")
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.model_path), options, providers=["CPUExecutionProvider"]
        )
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_dtype = np.float16 if "float16" in model_input.type else np.float32

    def _run_once(self, batch: np.ndarray) -> np.ndarray:
        x = to_input_layout(batch, self.manifest.input.layout).astype(self.input_dtype, copy=False)
        (out,) = self.session.run(None, {self.input_name: x})
        return out.astype(np.float32)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return run_static_batches(batch, self.manifest.input.shape[0], self._run_once)

    def _graph_proto(self):
        if getattr(self, "_proto", None) is None:
            import onnx

            self._proto = onnx.load(str(self.model_path))
        return self._proto

    def scoped_graph(self, structure) -> Graph:
        """Nodes scoped by the module path the exporter recorded (`onnx_drift.node_scope`)."""
        from mfdeploy.export.onnx_drift import node_scope

        model = self._graph_proto()
        nodes = []
        for node in model.graph.node:
            scope = node_scope(node)
            nodes.append(Node(frozenset([scope] if scope else []), node.input, node.output))
        return Graph(
            nodes, {i.name for i in model.graph.input}, {o.name for o in model.graph.output}
        )

    def output_id(self) -> str:
        return self._graph_proto().graph.output[0].name

    def tensor_values(self, chunk: np.ndarray, ids: list) -> dict[object, np.ndarray]:
        """Extra outputs of an in-memory copy of the graph, run with graph optimisations
        off (QDQ graphs: fake-quant numerics)."""
        from mfdeploy.export.onnx_drift import run_tensors

        x = to_input_layout(chunk, self.manifest.input.layout)
        return run_tensors(self._graph_proto(), {self.input_name: x}, [str(i) for i in ids])

    def info(self) -> RuntimeInfo:
        import onnxruntime as ort

        return RuntimeInfo(
            runtime=self.runtime_name,
            version=ort.__version__,
            threads=self.threads,
            executor="CPUExecutionProvider",
            init_ms=self.init_ms,
        )
