"""ONNX Runtime adapter: CPU execution provider, the same runtime ORT Mobile embeds."""

from __future__ import annotations

import numpy as np

from mfdeploy.runtimes.base import Runtime, RuntimeInfo, run_static_batches, to_input_layout

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class OnnxRuntime(Runtime):
    runtime_name = "onnxruntime"

    def __init__(self, artifact_dir, manifest, threads=None, optimization: str = "all"):
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
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.model_path), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.input_dtype = (
            np.float16 if "float16" in self.session.get_inputs()[0].type else np.float32
        )

    def _run_once(self, batch: np.ndarray) -> np.ndarray:
        x = to_input_layout(batch, self.manifest.input.layout).astype(self.input_dtype)
        (out,) = self.session.run(None, {self.input_name: x})
        return out.astype(np.float32)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return run_static_batches(batch, self.manifest.input.shape[0], self._run_once)

    def info(self) -> RuntimeInfo:
        import onnxruntime as ort

        return RuntimeInfo(
            runtime=self.runtime_name,
            version=ort.__version__,
            threads=self.threads,
            executor="CPUExecutionProvider",
            init_ms=self.init_ms,
        )
