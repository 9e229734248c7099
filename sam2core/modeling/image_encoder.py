"""SAM 2 image encoder: Hiera trunk + FPN neck -> multi-scale features with sine position encodings."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sam2core.modeling.position_encoding import PositionEmbeddingSine


class FpnNeck(nn.Module):
    """Feature pyramid without output convs: 1x1 lateral convs + top-down upsampling on chosen levels.

    Levels are indexed highest resolution first (as the trunk returns them); only levels in
    `fpn_top_down_levels` receive the upsampled coarser map, the others are lateral only.
    """

    def __init__(
        self,
        position_encoding: nn.Module,
        d_model: int,
        backbone_channel_list: Sequence[int],
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        fpn_interp_model: str = "bilinear",
        fuse_type: str = "sum",
        fpn_top_down_levels: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__()
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"fuse_type must be 'sum' or 'avg', got {fuse_type!r}")
        self.position_encoding = position_encoding
        self.d_model = d_model
        self.backbone_channel_list = list(backbone_channel_list)  # lowest resolution first
        self.convs = nn.ModuleList()
        for dim in backbone_channel_list:
            lateral = nn.Sequential()
            lateral.add_module("conv", nn.Conv2d(dim, d_model, kernel_size=kernel_size, stride=stride, padding=padding))
            self.convs.append(lateral)
        self.fpn_interp_model = fpn_interp_model
        self.fuse_type = fuse_type
        levels = range(len(self.convs)) if fpn_top_down_levels is None else fpn_top_down_levels
        self.fpn_top_down_levels = list(levels)

    def forward(self, xs: list[torch.Tensor], num_levels_out: Optional[int] = None) -> tuple[list, list]:
        """Features and position encodings per level, highest resolution first.

        `num_levels_out` keeps only the first (highest-resolution) levels; the dropped
        coarse levels are still computed as top-down inputs but get no position encoding.
        """
        n = len(self.convs)
        if len(xs) != n:
            raise ValueError(f"the neck expects {n} trunk levels, got {len(xs)}")
        num_levels_out = n if num_levels_out is None else num_levels_out
        out: list = [None] * n
        pos: list = [None] * n
        prev = None
        for i in range(n - 1, -1, -1):  # coarse to fine
            lateral = self.convs[n - 1 - i](xs[i])
            if prev is not None and i in self.fpn_top_down_levels:
                top_down = F.interpolate(
                    prev.to(dtype=torch.float32),
                    scale_factor=2.0,
                    mode=self.fpn_interp_model,
                    align_corners=None if self.fpn_interp_model == "nearest" else False,
                    antialias=False,
                )
                prev = lateral + top_down
                if self.fuse_type == "avg":
                    prev = prev / 2
            else:
                prev = lateral
            out[i] = prev
            if i < num_levels_out:
                pos[i] = self.position_encoding(prev).to(prev.dtype)
        return out[:num_levels_out], pos[:num_levels_out]


class ImageEncoder(nn.Module):
    """Trunk + neck; `scalp` drops that many of the coarsest levels from the output."""

    def __init__(self, trunk: nn.Module, neck: FpnNeck, scalp: int = 0) -> None:
        super().__init__()
        if list(trunk.channel_list) != list(neck.backbone_channel_list):
            raise ValueError(
                f"trunk channels {trunk.channel_list} do not match neck channels {neck.backbone_channel_list}"
            )
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, sample: torch.Tensor) -> dict:
        """(B, 3, H, W) normalised image -> {"vision_features", "vision_pos_enc", "backbone_fpn"}."""
        num_levels = len(self.neck.convs) - self.scalp
        features, pos = self.neck(self.trunk(sample), num_levels_out=num_levels)
        return {"vision_features": features[-1], "vision_pos_enc": pos, "backbone_fpn": features}


def build_image_encoder(
    embed_dim: int,
    num_heads: int,
    stages: Sequence[int],
    global_att_blocks: Sequence[int],
    window_pos_embed_bkg_spatial_size: Sequence[int],
    window_spec: Sequence[int],
    d_model: int = 256,
    fpn_top_down_levels: Sequence[int] = (2, 3),
    fpn_interp_model: str = "nearest",
    scalp: int = 1,
) -> ImageEncoder:
    """The SAM 2 image encoder for one Hiera size."""
    from sam2core.modeling.hiera import Hiera

    trunk = Hiera(
        embed_dim=embed_dim,
        num_heads=num_heads,
        stages=tuple(stages),
        global_att_blocks=tuple(global_att_blocks),
        window_pos_embed_bkg_spatial_size=tuple(window_pos_embed_bkg_spatial_size),
        window_spec=tuple(window_spec),
    )
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(num_pos_feats=d_model),
        d_model=d_model,
        backbone_channel_list=trunk.channel_list,
        fpn_top_down_levels=fpn_top_down_levels,
        fpn_interp_model=fpn_interp_model,
    )
    return ImageEncoder(trunk, neck, scalp=scalp)
