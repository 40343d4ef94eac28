"""PyTorch as a runtime: the reference every other backend is compared against."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mfdeploy.runtimes.base import Runtime, RuntimeInfo


class TorchRuntime(Runtime):
    runtime_name = "pytorch"

    def _open(self) -> None:
        from mfdeploy.models import create_model

        self.model = create_model(self.manifest.model, weights=self.model_path)

    @classmethod
    def from_model(cls, model: nn.Module, threads: int | None = None) -> TorchRuntime:
        """Wrap an in-memory model (the reference side of a parity check)."""
        runtime = cls.__new__(cls)
        runtime.model, runtime.threads, runtime.init_ms = model.eval(), threads, 0.0
        return runtime

    def run(self, batch: np.ndarray) -> np.ndarray:
        if self.threads:
            torch.set_num_threads(self.threads)
        with torch.no_grad():
            out = self.model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        return out.numpy()

    def torch_module(self) -> nn.Module:
        if self.threads:
            torch.set_num_threads(self.threads)
        return self.model

    def info(self) -> RuntimeInfo:
        return RuntimeInfo(
            runtime=self.runtime_name,
            version=torch.__version__,
            threads=self.threads or torch.get_num_threads(),
            executor="cpu",
            init_ms=self.init_ms,
        )
