"""LiteRT adapter (ai-edge-litert interpreter, XNNPACK CPU delegate by default)."""

from __future__ import annotations

import numpy as np

from mfdeploy.runtimes.base import (
    Runtime,
    RuntimeInfo,
    dequantize,
    quantize,
    run_static_batches,
    to_input_layout,
)


class LiteRTRuntime(Runtime):
    runtime_name = "litert"

    def __init__(self, artifact_dir, manifest, threads=None, xnnpack: bool = True):
        self.xnnpack = xnnpack
        super().__init__(artifact_dir, manifest, threads)

    def _open(self) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = (
            OpResolverType.AUTO
            if self.xnnpack
            else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        self.interpreter = Interpreter(
            model_path=str(self.model_path),
            num_threads=self.threads,
            experimental_op_resolver_type=resolver,
        )
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def _run_once(self, batch: np.ndarray) -> np.ndarray:
        x = to_input_layout(batch, self.manifest.input.layout)
        scale, zero = self.input["quantization"]
        if self.input["dtype"] != np.float32 and scale:
            x = quantize(x, scale, zero, self.input["dtype"])
        self.interpreter.set_tensor(self.input["index"], x.astype(self.input["dtype"]))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        scale, zero = self.output["quantization"]
        if out.dtype != np.float32 and scale:
            return dequantize(out, scale, zero)
        return out.astype(np.float32)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model's batch is static (manifest input shape): larger batches run in chunks."""
        return run_static_batches(batch, self.manifest.input.shape[0], self._run_once)

    def info(self) -> RuntimeInfo:
        from importlib.metadata import version

        return RuntimeInfo(
            runtime=self.runtime_name,
            version=version("ai-edge-litert"),
            threads=self.threads,
            executor="xnnpack" if self.xnnpack else "builtin",
            init_ms=self.init_ms,
        )
