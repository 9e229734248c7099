"""Whether a device runs bfloat16 natively, so that `precision="auto"` only picks bf16 where it is fast.

On CPUs without native bf16 (AVX2-only, most laptops before 2023) bf16 is emulated and many
times slower than float32, so the choice is detected, never assumed.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal, Optional

import torch

Precision = Literal["fp32", "bf16", "auto"]

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matrix products run in hardware: CUDA with bf16 support, or a CPU with AVX-512 BF16 / AMX."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return any(flag in cpu_flags() for flag in _CPU_BF16_FLAGS)
    return False


def autocast_dtype_for(precision: Precision, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for a precision choice: None (float32), or bfloat16 ("bf16", or "auto" where native)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        return torch.bfloat16 if native_bf16(device) else None
    raise ValueError(f"precision must be 'fp32', 'bf16' or 'auto', not {precision!r}")
