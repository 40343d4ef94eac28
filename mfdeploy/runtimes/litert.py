"""LiteRT adapter (ai-edge-litert interpreter, XNNPACK CPU delegate by default)."""

from __future__ import annotations

import numpy as np

from mfdeploy.runtimes.base import (
    Runtime,
    RuntimeInfo,
    chunked_intermediates,
    dequantize,
    mobile_former_spec,
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
        self._debug = None

    def _invoke(self, interpreter, batch: np.ndarray) -> None:
        x = to_input_layout(batch, self.manifest.input.layout)
        scale, zero = self.input["quantization"]
        if self.input["dtype"] != np.float32 and scale:
            x = quantize(x, scale, zero, self.input["dtype"])
        interpreter.set_tensor(self.input["index"], x.astype(self.input["dtype"]))
        interpreter.invoke()

    @staticmethod
    def _value(interpreter, detail: dict) -> np.ndarray:
        out = interpreter.get_tensor(detail["index"])
        scale, zero = detail["quantization"]
        if out.dtype != np.float32 and scale:
            return dequantize(out, scale, zero)
        return out.astype(np.float32)

    def _run_once(self, batch: np.ndarray) -> np.ndarray:
        self._invoke(self.interpreter, batch)
        return self._value(self.interpreter, self.output)

    def _debug_interpreter(self):
        """A second interpreter that keeps every tensor (no delegate: XNNPACK would own and
        reuse the buffers of the tensors it runs)."""
        if self._debug is None:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType

            self._debug = Interpreter(
                model_path=str(self.model_path),
                num_threads=self.threads,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                experimental_preserve_all_tensors=True,
            )
            self._debug.allocate_tensors()
        return self._debug

    def intermediates(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Block anchors found by tensor name: litert-torch names each tensor after the torch
        modules that produced it; feature maps kept NHWC are transposed back to NCHW."""
        from mfdeploy.harness import anchors as A

        spec, manifest = mobile_former_spec(self.manifest), self.manifest
        interpreter = self._debug_interpreter()
        details = {t["index"]: t for t in interpreter.get_tensor_details()}
        table = A.litert_scope_table(A.structure_model(manifest))
        nodes = []
        for op in interpreter._get_ops_details():
            names = [details[o]["name"] for o in op["outputs"] if o in details]
            scopes = frozenset().union(*(A.litert_scopes(n, table) for n in names))
            nodes.append(A.Node(scopes, tuple(op["inputs"]), tuple(op["outputs"])))
        graph = A.Graph(nodes, {self.input["index"]}, {self.output["index"]})
        candidates = A.locate(graph, A.module_anchors(spec, manifest.form))
        perms = A.layout_perms(manifest.form, nhwc=True)
        resolution = int(manifest.preprocessing["resolution"])

        def value_of(index):
            return self._value(interpreter, details[index]) if index in details else None

        def once(chunk: np.ndarray) -> dict[str, np.ndarray]:
            self._invoke(interpreter, chunk)
            shapes = A.anchor_shapes(spec, resolution, len(chunk), manifest.num_classes)
            found = A.pick(candidates, value_of, shapes, perms)
            head = A.to_reference(value_of(self.output["index"]), shapes["head"], perms)
            return found if head is None else {**found, "head": head}

        return chunked_intermediates(np.asarray(batch, np.float32), manifest.input.shape[0], once)

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
