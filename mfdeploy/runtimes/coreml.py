"""Core ML as a runtime: `MLModel.predict` on macOS, the MIL executor everywhere else.

On macOS the artifact runs on Apple's Core ML runtime with selectable compute units
(CPU_ONLY / CPU_AND_GPU / ALL / CPU_AND_NE); `info().executor` is "coreml-runtime". On other
systems `predict` does not exist, so the saved program itself is executed op by op in numpy
(mfdeploy.runtimes.mil_executor); `info().executor` is "mil-executor" and its timings are
the executor's, not device latency.

Input contract as for every adapter: float32 normalised NCHW. For an `--image-input`
artifact the normalisation is inside the model, so the batch is mapped back to 0..255 RGB
pixels first. A `--classifier` artifact outputs probabilities; `run` returns their log,
which has the logits' argmax and differs from the logits by a per-row constant.
"""

from __future__ import annotations

import platform

import numpy as np

from mfdeploy.errors import MfdeployError
from mfdeploy.export import scopes
from mfdeploy.export.scopes import Graph
from mfdeploy.runtimes.base import Runtime, RuntimeInfo
from mfdeploy.static_batches import run_static_batches

COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "ALL", "CPU_AND_NE")
EXECUTORS = ("coreml-runtime", "mil-executor")


def default_executor() -> str:
    return "coreml-runtime" if platform.system() == "Darwin" else "mil-executor"


class CoreMLRuntime(Runtime):
    runtime_name = "coreml"

    def __init__(
        self,
        artifact_dir,
        manifest,
        threads: int | None = None,
        compute_units: str = "CPU_ONLY",
        executor: str | None = None,
    ) -> None:
        self.compute_units = compute_units.upper()
        if self.compute_units not in COMPUTE_UNITS:
            raise MfdeployError(
                f"unknown compute units {compute_units!r}; choose {', '.join(COMPUTE_UNITS)}"
            )
        self.executor = executor or default_executor()
        if self.executor not in EXECUTORS:
            raise MfdeployError(f"unknown Core ML executor {executor!r}; choose {EXECUTORS}")
        if self.executor == "coreml-runtime" and platform.system() != "Darwin":
            raise MfdeployError("the Core ML runtime needs macOS; use the MIL executor here")
        super().__init__(artifact_dir, manifest, threads=threads)

    @property
    def _coreml(self) -> dict:
        return self.manifest.extra.get("coreml", {})

    def _open(self) -> None:
        if self.executor == "coreml-runtime":
            import coremltools as ct

            units = getattr(ct.ComputeUnit, self.compute_units)
            self.mlmodel = ct.models.MLModel(str(self.model_path), compute_units=units)
        else:
            from mfdeploy.runtimes.mil_executor import MilExecutor

            self.mil = MilExecutor.from_mlpackage(self.model_path)

    # -------------------------------------------------------------------- inputs
    @property
    def image_input(self) -> bool:
        return self._coreml.get("input_kind") == "image"

    @property
    def classifier(self) -> bool:
        return bool(self._coreml.get("classifier"))

    def _pixels(self, batch: np.ndarray) -> np.ndarray:
        """Normalised NCHW -> 0..255 RGB pixels (what an ImageType input receives)."""
        prep = self.manifest.preprocessing
        mean = np.asarray(prep["mean"], np.float64).reshape(1, 3, 1, 1)
        std = np.asarray(prep["std"], np.float64).reshape(1, 3, 1, 1)
        return ((batch.astype(np.float64) * std + mean) / float(prep["pixel_scale"])).astype(
            np.float32
        )

    def _feed(self, chunk: np.ndarray) -> np.ndarray:
        return self._pixels(chunk) if self.image_input else np.ascontiguousarray(chunk, np.float32)

    # ----------------------------------------------------------------------- run
    def _run_chunk(self, x: np.ndarray) -> np.ndarray:
        name, out = self.manifest.input.name, self.manifest.output.name
        if self.executor == "mil-executor":
            return np.asarray(self.mil.run({name: x})[out], np.float32)
        if self.image_input:
            from PIL import Image

            rows = []
            for sample in x:
                pixels = np.clip(np.round(sample.transpose(1, 2, 0)), 0, 255).astype(np.uint8)
                rows.append(self._predict({name: Image.fromarray(pixels, "RGB")}, out))
            return np.concatenate(rows)
        return self._predict({name: x}, out)

    def _predict(self, feeds: dict, out: str) -> np.ndarray:
        result = self.mlmodel.predict(feeds)[out]
        if isinstance(result, dict):  # classifier: label -> probability, in label order
            labels = list(result)
            order = self._label_order(labels)
            return np.asarray([[result[k] for k in order]], np.float32)
        return np.asarray(result, np.float32)

    def _label_order(self, labels: list[str]) -> list[str]:
        from mfdeploy.labels import imagenet_labels

        known = list(imagenet_labels())
        return known if set(known) == set(labels) else sorted(labels)

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, np.float32)
        if batch.ndim != 4 or batch.shape[1:] != tuple(self.manifest.input.shape[1:]):
            raise MfdeployError(
                f"Core ML model expects (N, {', '.join(map(str, self.manifest.input.shape[1:]))})"
                f" inputs, got {batch.shape}"
            )
        static = int(self.manifest.input.shape[0])
        out = run_static_batches(batch, static, lambda c: self._run_chunk(self._feed(c)))
        out = out.reshape(len(batch), -1)
        if self.classifier:
            out = np.log(np.maximum(out, np.finfo(np.float32).tiny))
        return out.astype(np.float32)

    # --------------------------------------------------------- per-layer tensors
    def recorded_anchors(self) -> dict[str, str] | None:
        """anchor -> MIL value name recorded at export. W8A8 programs went through PT2E, so
        their names cannot be re-derived: without a record they have no anchors."""
        recorded = self._coreml.get("anchors")
        if recorded is not None or self.manifest.precision == "int8":
            return dict(recorded or {})
        return None

    def scoped_graph(self, structure) -> Graph:
        """The torch.export graph of the same form (initial weights: only names matter),
        captured again with the export's wrappers; its node names are the MIL value names."""
        import torch

        from mfdeploy.export import coreml as export

        prep = self.manifest.preprocessing
        module = structure
        if self.image_input:
            module = export.ImageNormalization(
                module, prep["mean"], prep["std"], prep["pixel_scale"]
            )
        if self.classifier:
            module = export.Probabilities(module)
        res, batch = int(prep["resolution"]), int(self.manifest.input.shape[0])
        program = export.capture(module, torch.zeros(batch, 3, res, res))
        return scopes.fx_graph(program, type(structure).__name__)[0]

    def output_id(self) -> str | None:
        """The logits output (a --classifier program outputs probabilities instead)."""
        return None if self.classifier else self.manifest.output.name

    def tensor_values(self, chunk: np.ndarray, ids: list) -> dict[object, np.ndarray]:
        """The MIL executor's values of every op (`run(..., keep_all=True)`)."""
        if self.executor != "mil-executor":
            raise MfdeployError("intermediate values are only available from the MIL executor")
        values = self.mil.run({self.manifest.input.name: self._feed(chunk)}, keep_all=True)
        return {i: np.asarray(values[i], np.float32) for i in ids if i in values}

    def info(self) -> RuntimeInfo:
        import coremltools as ct

        return RuntimeInfo(
            runtime=self.runtime_name,
            version=ct.__version__,
            threads=None,  # Core ML picks its own threads; the executor uses numpy's BLAS
            executor=self.executor,
            init_ms=self.init_ms,
        )
