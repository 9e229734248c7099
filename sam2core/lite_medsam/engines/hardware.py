"""What this machine's CPU can run natively, and a key that names the machine for cached choices.

bf16 is fast only with native bf16 units (x86: AVX-512 BF16 or AMX; Arm: the BF16
extension); elsewhere libraries emulate it and it runs 5-40x slower than fp32, so it is
never assumed: `native_bf16()` reads the CPU flags.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Optional

import torch

X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
ARM_BF16_FLAGS = ("bf16",)


@functools.lru_cache(maxsize=1)
def cpu_model_and_flags() -> tuple[str, frozenset[str]]:
    """CPU model name and feature flags (Linux /proc/cpuinfo, macOS sysctl; empty when unknown)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        name, flags = "", set()
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "cpu model") and not name:
                name = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = set(value.split())
        return name or platform.processor(), frozenset(flags)
    if platform.system() == "Darwin":
        try:
            name = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5).stdout.strip()
            bf16 = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True,
                                  text=True, timeout=5).stdout.strip()
            return name, frozenset({"bf16"} if bf16 == "1" else set())
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor(), frozenset()


def native_bf16(device: Optional[torch.device] = None) -> bool:
    """True when `device` (default cpu) computes bf16 natively (CPU flags; CUDA capability)."""
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    _, flags = cpu_model_and_flags()
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i386", "i686"):
        return any(flag in flags for flag in X86_BF16_FLAGS)
    if machine in ("arm64", "aarch64"):
        return any(flag in flags for flag in ARM_BF16_FLAGS)
    return False


def machine_key(num_threads: Optional[int] = None) -> str:
    """Short hash naming this CPU (model, flags), the thread count and torch's version."""
    name, flags = cpu_model_and_flags()
    threads = num_threads if num_threads is not None else torch.get_num_threads()
    text = "|".join([name, platform.machine(), ",".join(sorted(flags)), str(threads), torch.__version__])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
