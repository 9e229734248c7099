"""TinyViT image encoder in its LiteMedSAM variant (256 input, 64×64 output embedding).

Stages (for the LiteMedSAM config): a 1×1-conv stem keeps the 256×256 grid; stage 0 is
MBConv blocks at 256×256, stages 1-3 are windowed-attention blocks at 128×128, 64×64 and
64×64 (the last merge keeps the resolution). A conv neck maps to 256 channels.
Module names follow the official checkpoint (`patch_embed.seq.*`, `layers.i.blocks.j.*`,
`layers.i.downsample.*`, `neck.*`).

Speed options (numerically equivalent in fp32): conv + batch-norm folded at eval time,
fused scaled-dot-product attention with the relative-position bias as an additive mask,
and channels-last convolutions so that token ⇄ image layout changes are free views.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sam2core.modeling.common import LayerNorm2d


@dataclass(frozen=True)
class TinyViTConfig:
    """Architecture of a TinyViT encoder."""

    image_size: int = 256
    in_chans: int = 3
    embed_dims: Tuple[int, ...] = (64, 128, 160, 320)
    depths: Tuple[int, ...] = (2, 2, 6, 2)
    num_heads: Tuple[int, ...] = (2, 4, 5, 10)
    window_sizes: Tuple[int, ...] = (7, 7, 14, 7)
    # stride of the depthwise conv in the patch merge after stage i (LiteMedSAM keeps 64×64 at the end)
    merge_strides: Tuple[int, ...] = (2, 2, 1)
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    out_chans: int = 256

    def stage_resolutions(self) -> list[int]:
        """Token grid side of each stage: the stem keeps the input resolution."""
        sides = [self.image_size]
        for stride in self.merge_strides:
            sides.append(sides[-1] // stride)
        return sides


LITE_MEDSAM_TINY_VIT = TinyViTConfig()


class Conv2dBN(nn.Module):
    """Conv without bias followed by batch norm; folded into one conv in eval mode."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int = 1, stride: int = 1,
                 padding: int = 0, groups: int = 1) -> None:
        super().__init__()
        self.c = nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chans)

    def folded_weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Conv weight and bias that equal conv → batch norm (running statistics)."""
        bn = self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        return self.c.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.bn(self.c(x))
        weight, bias = self.folded_weight_and_bias()
        c = self.c
        if c.kernel_size == (1, 1) and c.stride == (1, 1) and c.groups == 1 and _is_channels_last(x):
            # A 1×1 conv on channels-last data is a GEMM over (B·H·W, C): MKL beats oneDNN's conv here.
            out = F.linear(x.permute(0, 2, 3, 1), weight.flatten(1).to(x.dtype), bias.to(x.dtype))
            return out.permute(0, 3, 1, 2)
        return F.conv2d(x, weight.to(x.dtype), bias.to(x.dtype), c.stride, c.padding, c.dilation, c.groups)


def _is_channels_last(x: torch.Tensor) -> bool:
    """True when `x` (B, C, H, W) is stored as (B, H, W, C) and that is not also the default layout."""
    return x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class PatchEmbed(nn.Module):
    """Stem: two 1×1 conv-BN with GELU; keeps the input resolution."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            Conv2dBN(in_chans, embed_dim // 2), nn.GELU(), Conv2dBN(embed_dim // 2, embed_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block: 1×1 expand, 3×3 depthwise, 1×1 project, residual, GELU."""

    def __init__(self, chans: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(chans * expand_ratio)
        self.conv1 = Conv2dBN(chans, hidden)
        self.conv2 = Conv2dBN(hidden, hidden, kernel_size=3, padding=1, groups=hidden)
        self.conv3 = Conv2dBN(hidden, chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        y = F.gelu(self.conv1(x))
        y = F.gelu(self.conv2(y))
        return F.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """1×1 conv, strided 3×3 depthwise conv, 1×1 conv; returns tokens `(B, H'·W', C')`."""

    def __init__(self, side: int, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.side = side
        self.conv1 = Conv2dBN(dim, out_dim)
        self.conv2 = Conv2dBN(out_dim, out_dim, kernel_size=3, stride=stride, padding=1, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:  # tokens (B, L, C) → image (B, C, H, W)
            x = tokens_to_image(x, self.side)
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        x = self.conv3(x)
        return image_to_tokens(x)


def tokens_to_image(x: torch.Tensor, side: int) -> torch.Tensor:
    """`(B, H·W, C)` → `(B, C, H, W)` as a channels-last view (no copy)."""
    b, _, c = x.shape
    return x.view(b, side, side, c).permute(0, 3, 1, 2)


def image_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """`(B, C, H, W)` → `(B, H·W, C)`; free when `x` is channels-last."""
    b, c = x.shape[:2]
    return x.permute(0, 2, 3, 1).reshape(b, -1, c)


class ConvStage(nn.Module):
    """Stage 0: MBConv blocks on the image layout, then a patch merge."""

    def __init__(self, dim: int, side: int, depth: int, expand_ratio: float,
                 out_dim: int, merge_stride: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand_ratio) for _ in range(depth))
        self.downsample = PatchMerging(side, dim, out_dim, merge_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


def relative_offset_index(window: int) -> tuple[torch.Tensor, int]:
    """For every (query, key) pair of a window, the index of its |dy|, |dx| offset; and the offset count."""
    points = list(itertools.product(range(window), range(window)))
    offsets: dict[tuple[int, int], int] = {}
    index = []
    for p in points:
        for q in points:
            offset = (abs(p[0] - q[0]), abs(p[1] - q[1]))
            index.append(offsets.setdefault(offset, len(offsets)))
    n = len(points)
    return torch.tensor(index, dtype=torch.long).view(n, n), len(offsets)


class Attention(nn.Module):
    """Multi-head self-attention inside a window, with a learned bias per relative offset."""

    def __init__(self, dim: int, num_heads: int, window: int, use_sdpa: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.use_sdpa = use_sdpa
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        index, num_offsets = relative_offset_index(window)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, num_offsets))
        self.register_buffer("attention_bias_idxs", index, persistent=False)
        self._bias_cache: Optional[tuple] = None

    def relative_bias(self, dtype: torch.dtype) -> torch.Tensor:
        """`(1, heads, N, N)` additive attention bias; cached in eval mode until the parameter changes."""
        if self.training or torch.is_grad_enabled():
            return self.attention_biases[:, self.attention_bias_idxs].to(dtype)[None]
        key = (self.attention_biases._version, self.attention_biases.data_ptr(), dtype,
               self.attention_biases.device)
        if self._bias_cache is None or self._bias_cache[0] != key:
            self._bias_cache = (key, self.attention_biases[:, self.attention_bias_idxs].to(dtype)[None])
        return self._bias_cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B·windows, N, C), already normed
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, self.num_heads, 3 * self.head_dim).permute(0, 2, 1, 3).split(
            self.head_dim, dim=3
        )  # each (B, heads, N, head_dim)
        bias = self.relative_bias(q.dtype)  # (1, heads, N, N); 4D keeps SDPA on its fused CPU kernel
        if self.use_sdpa:
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5 + bias
            x = attn.softmax(dim=-1) @ v
        return self.proj(x.transpose(1, 2).reshape(b, n, -1))


class TinyViTBlock(nn.Module):
    """Windowed attention + residual, 3×3 depthwise conv, MLP + residual."""

    def __init__(self, dim: int, side: int, num_heads: int, window: int, mlp_ratio: float,
                 local_conv_size: int, use_sdpa: bool = True) -> None:
        super().__init__()
        self.side = side
        self.window = window
        self.attn = Attention(dim, num_heads, window, use_sdpa)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2dBN(dim, dim, local_conv_size, padding=local_conv_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C)
        b, length, c = x.shape
        side, win = self.side, self.window
        # Zero padding goes *before* the norm (padded tokens become norm.bias), as in the reference.
        y = x.view(b, side, side, c)
        pad = (win - side % win) % win
        if pad:
            y = F.pad(y, (0, 0, 0, pad, 0, pad))
        y = self.attn.norm(y)
        padded = side + pad
        n = padded // win
        windows = y.view(b, n, win, n, win, c).transpose(2, 3).reshape(b * n * n, win * win, c)
        y = self.attn(windows)
        y = y.view(b, n, n, win, win, c).transpose(2, 3).reshape(b, padded, padded, c)
        if pad:
            y = y[:, :side, :side]
        x = x + y.reshape(b, length, c)
        x = image_to_tokens(self.local_conv(tokens_to_image(x, side)))
        return x + self.mlp(x)


class Mlp(nn.Module):
    """Pre-norm two-layer MLP with GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class AttentionStage(nn.Module):
    """Stages 1-3: TinyViT blocks on tokens, then an optional patch merge."""

    def __init__(self, dim: int, side: int, depth: int, num_heads: int, window: int, mlp_ratio: float,
                 local_conv_size: int, out_dim: int, merge_stride: Optional[int], use_sdpa: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, side, num_heads, window, mlp_ratio, local_conv_size, use_sdpa) for _ in range(depth)
        )
        self.downsample = PatchMerging(side, dim, out_dim, merge_stride) if merge_stride else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class TinyViT(nn.Module):
    """TinyViT encoder: `(B, 3, S, S)` normalised image → `(B, 256, S/4, S/4)` embedding."""

    def __init__(self, config: TinyViTConfig = LITE_MEDSAM_TINY_VIT, use_sdpa: bool = True) -> None:
        super().__init__()
        self.config = config
        sides = config.stage_resolutions()
        dims = config.embed_dims
        self.patch_embed = PatchEmbed(config.in_chans, dims[0])
        layers: list[nn.Module] = [
            ConvStage(dims[0], sides[0], config.depths[0], config.mbconv_expand_ratio, dims[1],
                      config.merge_strides[0])
        ]
        for i in range(1, len(dims)):
            last = i == len(dims) - 1
            layers.append(AttentionStage(
                dims[i], sides[i], config.depths[i], config.num_heads[i], config.window_sizes[i],
                config.mlp_ratio, config.local_conv_size, dims[min(i + 1, len(dims) - 1)],
                None if last else config.merge_strides[i], use_sdpa,
            ))
        self.layers = nn.ModuleList(layers)
        self.out_side = sides[-1]
        self.neck = nn.Sequential(
            nn.Conv2d(dims[-1], config.out_chans, kernel_size=1, bias=False),
            LayerNorm2d(config.out_chans),
            nn.Conv2d(config.out_chans, config.out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(config.out_chans),
        )

    def set_sdpa(self, enabled: bool) -> None:
        """Switch fused attention on/off (off = explicit softmax, like the reference)."""
        for module in self.modules():
            if isinstance(module, Attention):
                module.use_sdpa = enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, C0, S, S)
        for layer in self.layers:
            x = layer(x)  # tokens (B, L, C) after stage 0
        x = tokens_to_image(x, self.out_side)  # (B, C, 64, 64)
        return self.neck(x)
