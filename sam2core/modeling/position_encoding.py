"""Positional encodings: random Fourier features (prompts), 2D sine (feature maps), 1D sine (time)."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn


class PositionEmbeddingRandom(nn.Module):
    """Random spatial-frequency encoding of (x, y) positions (SAM prompt encoder)."""

    def __init__(self, num_pos_feats: int = 64, scale: Optional[float] = None) -> None:
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        # (2, num_pos_feats): projects (x, y) in [-1, 1] onto random frequencies.
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def _encode(self, coords_01: torch.Tensor) -> torch.Tensor:
        """(..., 2) positions in [0, 1] -> (..., 2 * num_pos_feats) features."""
        proj = (2 * coords_01 - 1) @ self.positional_encoding_gaussian_matrix
        proj = 2 * math.pi * proj
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoding of every cell centre of an `(h, w)` grid, as `(C, h, w)`."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (h, w, 2) as (x, y)
        return self._encode(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Encode `(B, N, 2)` pixel (x, y) coordinates of an image of `image_size` (h, w)."""
        h, w = image_size
        size_xy = torch.tensor([w, h], device=coords.device, dtype=torch.float32)
        return self._encode(coords.to(torch.float32) / size_xy)


class PositionEmbeddingSine(nn.Module):
    """Normalised 2D sine/cosine encoding of a feature map (DETR style), no parameters."""

    def __init__(
        self,
        num_pos_feats: int,
        temperature: int = 10000,
        normalize: bool = True,
        scale: Optional[float] = None,
    ) -> None:
        super().__init__()
        if num_pos_feats % 2 != 0:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        if scale is not None and not normalize:
            raise ValueError("scale needs normalize=True")
        self.num_pos_feats = num_pos_feats // 2  # per axis
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale
        self._cache: dict[tuple, torch.Tensor] = {}

    def _axis_features(self, positions: torch.Tensor) -> torch.Tensor:
        """(L,) positions -> (L, num_pos_feats): sin on even, cos on odd channels."""
        idx = torch.arange(self.num_pos_feats, dtype=torch.float32, device=positions.device)
        dim_t = self.temperature ** (2 * torch.div(idx, 2, rounding_mode="floor") / self.num_pos_feats)
        angles = positions[:, None] / dim_t
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)

    @torch.no_grad()
    def grid(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """The `(C, h, w)` float32 encoding of an `(h, w)` map (cached)."""
        key = (h, w, str(device))
        if key not in self._cache:
            ys = torch.arange(1, h + 1, dtype=torch.float32, device=device)
            xs = torch.arange(1, w + 1, dtype=torch.float32, device=device)
            if self.normalize:
                eps = 1e-6
                ys = ys / (ys[-1:] + eps) * self.scale
                xs = xs / (xs[-1:] + eps) * self.scale
            fy = self._axis_features(ys)  # (h, C/2)
            fx = self._axis_features(xs)  # (w, C/2)
            pe = torch.cat(
                [fy[:, None, :].expand(h, w, -1), fx[None, :, :].expand(h, w, -1)], dim=-1
            )
            self._cache[key] = pe.permute(2, 0, 1).contiguous()
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoding for a `(B, C', H, W)` map: `(B, C, H, W)` in x's dtype."""
        b, _, h, w = x.shape
        return self.grid(h, w, x.device).to(x.dtype)[None].expand(b, -1, -1, -1)


def get_1d_sine_pe(positions: torch.Tensor, dim: int, temperature: float = 10000) -> torch.Tensor:
    """1D sine/cosine encoding of (N,) positions -> (N, dim): [sin | cos] halves."""
    half = dim // 2
    idx = torch.arange(half, dtype=torch.float32, device=positions.device)
    dim_t = temperature ** (2 * torch.div(idx, 2, rounding_mode="floor") / half)
    angles = positions.unsqueeze(-1) / dim_t
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
