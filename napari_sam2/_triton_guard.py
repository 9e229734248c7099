"""Keep torch from importing Triton inside the viewer's process when there is no CUDA device."""

from __future__ import annotations

import sys


def block_triton_without_cuda() -> bool:
    """Make `import triton` fail (as on CPU-only torch builds) when CUDA is unavailable; True if blocked.

    Triton bundles its own LLVM. Once napari's OpenGL canvas has loaded Mesa's LLVM (software
    rendering: xvfb, remote desktops, machines without a GPU driver), importing Triton — which
    torch does lazily on its first `torch._dynamo` use, e.g. some meta-device or compile paths —
    crashes the whole process with a segfault. Without CUDA, Triton is of no use to torch.
    """
    if "triton" in sys.modules:
        return sys.modules["triton"] is None
    import torch

    if torch.cuda.is_available():
        return False
    sys.modules["triton"] = None  # torch.utils._triton.has_triton_package() -> False
    return True
