"""ExecuTorch adapter: the pip wheel's runtime with its XNNPACK kernels.

The program is loaded through the wheel's native bindings (`executorch.extension.pybindings.
_C`, what `executorch.runtime` and `portable_lib` wrap): both wrappers import the whole
exporter (`executorch.exir`, ~6 s of a bench worker's start here) for one warning class, and
a runtime needs none of it. The same loader, verification and method calls.

Threads: the XNNPACK delegate runs on ExecuTorch's process-wide threadpool, which is reset
to `threads` at open (`_unsafe_reset_threadpool`) and read back for `info()`; None keeps the
runtime's default (one thread per core).

Refused at open (ManifestError, exit 2): a file the runtime cannot load (tampered), a program
whose input / output shapes are not the manifest's, or one whose `mfdeploy_identity` (source
weights sha256 and precision) is not the manifest's: a .pte from another export.

The runtime logs from C++ straight to file descriptor 2 (cpuinfo probing at first use, the
loader's reason for refusing a file); that output is captured while the program is opened
so a refused file is one line on stderr, and the loader's reason goes into that line.
"""

from __future__ import annotations

import numpy as np

from mfdeploy.errors import ManifestError
from mfdeploy.native_stderr import native_reason, native_stderr_captured
from mfdeploy.runtimes.base import Runtime, RuntimeInfo, to_input_layout
from mfdeploy.static_batches import run_static_batches

IDENTITY_METHOD = "mfdeploy_identity"
NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16}


def _bindings():
    """The wheel's native runtime module (torch first: it links against libtorch)."""
    import torch  # noqa: F401
    from executorch.extension.pybindings import _C

    return _C


def set_threads(threads: int | None) -> int:
    """Resize ExecuTorch's threadpool (None: leave it) and return its thread count."""
    bindings = _bindings()
    if threads is not None:
        if threads < 1:
            raise ManifestError(f"threads must be >= 1, not {threads}")
        bindings._unsafe_reset_threadpool(int(threads))
    return int(bindings._threadpool_get_thread_count())


class ExecuTorchRuntime(Runtime):
    runtime_name = "executorch"

    def _import(self) -> None:
        with native_stderr_captured():
            _bindings()

    def _open(self) -> None:
        error = None
        with native_stderr_captured() as log:
            bindings = _bindings()
            self.pool_threads = set_threads(self.threads)
            try:
                self.program = bindings._load_program(
                    str(self.model_path),
                    enable_etdump=False,
                    debug_buffer_size=0,
                    program_verification=bindings.Verification.InternalConsistency,
                )
                self.method = self.program.load_method("forward")
            except Exception as exc:  # RuntimeError / ValueError on bad files
                error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if error is not None:
            reason = native_reason(log)
            raise ManifestError(
                f"{self.model_path}: not a loadable ExecuTorch program "
                f"({error}{': ' + reason if reason else ''})"
            )
        if self.method is None:
            raise ManifestError(f"{self.model_path}: the program has no forward method")
        self._check_program()
        self.dtype = NUMPY_DTYPES.get(self.manifest.input.dtype, np.float32)

    def _check_program(self) -> None:
        """Shapes and identity of the loaded program against the manifest."""
        meta = self.method.method_meta()
        inp, out = meta.input_tensor_meta(0), meta.output_tensor_meta(0)
        manifest = self.manifest
        if list(inp.sizes()) != list(manifest.input.shape) or list(out.sizes()) != list(
            manifest.output.shape
        ):
            raise ManifestError(
                f"{self.model_path}: program takes {list(inp.sizes())} -> {list(out.sizes())}, "
                f"the manifest says {manifest.input.shape} -> {manifest.output.shape}"
            )
        names = {self.program.get_method_name(i) for i in range(self.program.num_methods())}
        if IDENTITY_METHOD not in names:
            raise ManifestError(f"{self.model_path}: no {IDENTITY_METHOD} (not an mfdeploy export)")
        values = self.program.load_method(IDENTITY_METHOD)([])  # one int per byte
        stored = bytes(int(v) & 0xFF for v in values).decode(errors="replace")
        expected = f"{manifest.source_checkpoint_sha256}:{manifest.precision}"
        if stored != expected:
            raise ManifestError(
                f"{self.model_path}: exported from other weights or precision "
                f"({stored[:12]}…:{stored.rpartition(':')[2]}) than the manifest describes "
                f"({expected[:12]}…:{manifest.precision})"
            )

    def _run_once(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = to_input_layout(batch, self.manifest.input.layout).astype(self.dtype, copy=False)
        out = self.method([torch.from_numpy(np.ascontiguousarray(x))])[0]
        return out.float().numpy().astype(np.float32, copy=True)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The program's batch is static (manifest input shape): larger batches run in chunks."""
        return run_static_batches(batch, self.manifest.input.shape[0], self._run_once)

    def info(self) -> RuntimeInfo:
        from importlib.metadata import version

        return RuntimeInfo(
            runtime=self.runtime_name,
            version=version("executorch"),
            threads=set_threads(None),
            executor="xnnpack",
            init_ms=self.init_ms,
        )
