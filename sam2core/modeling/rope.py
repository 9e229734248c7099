"""2D axial rotary position encoding (RoPE) for the memory attention.

Channel pairs (2i, 2i+1) of each head are rotated by an angle that depends on the token's
x (first quarter of the pairs' frequencies) or y (second quarter) position on the feature
grid, with the frequencies of Su et al. / Heo et al. (RoPE-ViT). Computed with real cos/sin
in float32, which works on every device (no complex tensors).
"""

from __future__ import annotations

import torch


def axial_rope_angles(head_dim: int, width: int, height: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles `(height * width, head_dim // 2)` for tokens in row-major (y, x) order."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4)[: head_dim // 4].float() / head_dim))
    t = torch.arange(width * height, dtype=torch.float32)
    t_x = t % width
    t_y = torch.div(t, width, rounding_mode="floor")
    return torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of `x` (..., L, D) by angles given as cos/sin `(L, D/2)`; float32 math."""
    shape = x.shape
    pairs = x.float().reshape(*shape[:-1], -1, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    out = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return out.reshape(shape).type_as(x)


class AxialRope:
    """Caches cos/sin tables per (grid size, head_dim, device)."""

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        self.head_dim = head_dim
        self.theta = theta
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def tables(self, width: int, height: int, device: torch.device,
               repeats: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin `(repeats * height * width, head_dim / 2)`: the grid's table tiled `repeats` times."""
        key = (width, height, str(device))
        if key not in self._cache:
            angles = axial_rope_angles(self.head_dim, width, height, self.theta).to(device)
            self._cache[key] = (torch.cos(angles), torch.sin(angles))
        if repeats == 1:
            return self._cache[key]
        # One tiled table, the longest asked for so far; shorter tilings are views of it.
        tiled_key = key + ("tiled",)
        length = repeats * width * height
        if tiled_key not in self._cache or self._cache[tiled_key][0].shape[0] < length:
            cos, sin = self._cache[key]
            self._cache[tiled_key] = (cos.repeat(repeats, 1), sin.repeat(repeats, 1))
        cos, sin = self._cache[tiled_key]
        return cos[:length], sin[:length]
