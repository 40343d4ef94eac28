"""What this host's CPU is, read once from /proc/cpuinfo (Linux; empty elsewhere).

Runtimes pick int8 kernels by CPU features, and so does the ONNX Runtime adapter: x86 without
a VNNI dot product sums u8 x s8 products in 16-bit registers that saturate (docs/onnx.md).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
#: x86 dot-product instructions that sum int8 products straight into 32 bits
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu_fields(cpuinfo: Path = CPUINFO) -> dict[str, str]:
    """The first CPU's `key: value` entries of a cpuinfo file ({} when there is none)."""
    fields: dict[str, str] = {}
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags(fields: dict[str, str]) -> set[str]:
    """Feature flags (x86 `flags`, ARM `Features`)."""
    return set((fields.get("flags") or fields.get("Features") or "").split())


def int8_sums_saturate(flags: set[str], machine: str | None = None) -> bool:
    """True on x86 without VNNI: SSE4.1 / AVX2 / AVX-512 int8 kernels add pairs of u8 x s8
    products in 16 bits (vpmaddubsw), which saturate; VNNI and ARM dot products do not."""
    arch = (machine or platform.machine()).lower()
    if arch not in ("x86_64", "amd64", "i386", "i686"):
        return False
    return not flags.intersection(VNNI_FLAGS)


@functools.cache
def host_int8_sums_saturate() -> bool:
    """`int8_sums_saturate` for this host (a host without /proc/cpuinfo is taken to saturate
    when x86: widening costs speed, never correctness)."""
    return int8_sums_saturate(cpu_flags(cpu_fields()))
