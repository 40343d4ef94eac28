"""LiteRT adapter (ai-edge-litert interpreter, XNNPACK CPU delegate by default)."""

from __future__ import annotations

import numpy as np

from mfdeploy.export import scopes
from mfdeploy.export.scopes import Graph, Node
from mfdeploy.runtimes.base import (
    Runtime,
    RuntimeInfo,
    dequantize,
    input_view,
    quantize,
)
from mfdeploy.static_batches import run_static_batches


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
        """One pass over the image, straight into the interpreter's input buffer, as an app
        writes its frame there: a contiguous NHWC copy, a dtype copy and `set_tensor` would
        be three passes, timed as if LiteRT spent them (measured: docs/int8.md)."""
        x = input_view(batch, self.manifest.input.layout)
        scale, zero = self.input["quantization"]
        if self.input["dtype"] != np.float32 and scale:
            x = quantize(x, scale, zero, self.input["dtype"])
        buffer = interpreter.tensor(self.input["index"])
        if buffer().shape != x.shape:
            raise ValueError(f"input of shape {x.shape}; the model takes {buffer().shape}")
        # the view buffer() returns must be gone before invoke(), which refuses to run while
        # numpy holds its memory: no name is bound to it
        np.copyto(buffer(), x, casting="unsafe")
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

    maps_may_be_nhwc = True

    def scoped_graph(self, structure) -> Graph:
        """Nodes scoped by tensor name: litert-torch names each tensor after the torch
        modules that produced it (`Class_attribute` segments below the exported form)."""
        interpreter = self._debug_interpreter()
        details = {t["index"]: t for t in interpreter.get_tensor_details()}
        table, root = scopes.litert_scope_table(structure), type(structure).__name__
        nodes = []
        for op in interpreter._get_ops_details():
            names = [details[o]["name"] for o in op["outputs"] if o in details]
            found = frozenset().union(*(scopes.litert_scopes(n, table, root) for n in names))
            nodes.append(Node(found, tuple(op["inputs"]), tuple(op["outputs"])))
        return Graph(nodes, {self.input["index"]}, {self.output["index"]})

    def output_id(self) -> int:
        return self.output["index"]

    def tensor_values(self, chunk: np.ndarray, ids: list) -> dict[object, np.ndarray]:
        """Values kept by the debug interpreter (no delegate), dequantised."""
        interpreter = self._debug_interpreter()
        details = {t["index"]: t for t in interpreter.get_tensor_details()}
        self._invoke(interpreter, chunk)
        return {i: self._value(interpreter, details[i]) for i in ids if i in details}

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
