"""Memory attention: the current frame's tokens attend to themselves and to the memory bank.

The memory bank is the spatial memories of past frames plus object-pointer tokens; 2D RoPE
is applied to queries and to the spatial memory keys, never to the pointer tokens (the last
`num_k_exclude_rope` keys).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from sam2core.modeling.common import activation_fn
from sam2core.modeling.rope import AxialRope, rotate
from sam2core.modeling.two_way_transformer import Attention


class RoPEAttention(Attention):
    """Attention with 2D axial rotary encoding of queries and (the spatial part of) keys.

    `rope_k_repeat`: the keys hold several frames of the query grid, so the query's rotary
    table is tiled over them (cross-attention to memories).
    """

    def __init__(
        self,
        *args,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
        feat_sizes: tuple[int, int] = (64, 64),
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.rope = AxialRope(self.internal_dim // self.num_heads, theta=rope_theta)
        self.rope_k_repeat = rope_k_repeat
        self.feat_sizes = tuple(feat_sizes)  # (w, h) default grid; the actual grid is taken from q

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        num_k_exclude_rope: int = 0,
        feat_hw: Optional[tuple[int, int]] = None,
    ) -> torch.Tensor:
        """q `(B, Lq, C)` on an `feat_hw` grid (square if None); k, v `(B, Lk, C_kv)`."""
        q = self._split_heads(self.q_proj(q))
        k = self._split_heads(self.k_proj(k))
        v = self._split_heads(self.v_proj(v))

        lq = q.shape[-2]
        if feat_hw is None:
            side = int(round(math.sqrt(lq)))
            feat_hw = (side, side)
        h, w = feat_hw
        if h * w != lq:
            raise ValueError(f"query length {lq} is not a {h}x{w} grid")
        cos, sin = self.rope.tables(w, h, q.device)
        q = rotate(q, cos, sin)

        num_k_rope = k.shape[-2] - num_k_exclude_rope
        if num_k_rope > 0:
            if num_k_rope != lq:
                if not self.rope_k_repeat or num_k_rope % lq != 0:
                    raise ValueError(f"{num_k_rope} rotary keys do not tile {lq} queries (rope_k_repeat={self.rope_k_repeat})")
                cos, sin = self.rope.tables(w, h, q.device, repeats=num_k_rope // lq)
            if num_k_exclude_rope == 0:
                k = rotate(k, cos, sin)
            else:  # rotate the spatial keys in place (k is this call's own projection), pointers untouched
                k = k.clone() if k.requires_grad else k
                k[:, :, :num_k_rope] = rotate(k[:, :, :num_k_rope], cos, sin)
        return self._attend(q, k, v)


class MemoryAttentionLayer(nn.Module):
    """Pre-norm layer: self-attention, cross-attention to memory, feed-forward."""

    def __init__(
        self,
        activation: str,
        cross_attention: nn.Module,
        d_model: int,
        dim_feedforward: int,
        dropout: float,
        pos_enc_at_attn: bool,
        pos_enc_at_cross_attn_keys: bool,
        pos_enc_at_cross_attn_queries: bool,
        self_attention: nn.Module,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.dim_feedforward = dim_feedforward
        self.self_attn = self_attention
        self.cross_attn_image = cross_attention
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = activation_fn(activation)
        self.pos_enc_at_attn = pos_enc_at_attn
        self.pos_enc_at_cross_attn_queries = pos_enc_at_cross_attn_queries
        self.pos_enc_at_cross_attn_keys = pos_enc_at_cross_attn_keys

    def _call_attn(self, attn: nn.Module, q, k, v, num_k_exclude_rope: int, feat_hw):
        if isinstance(attn, RoPEAttention):
            return attn(q, k, v, num_k_exclude_rope=num_k_exclude_rope, feat_hw=feat_hw)
        if num_k_exclude_rope > 0:
            raise ValueError("num_k_exclude_rope needs a RoPEAttention")
        return attn(q, k, v)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        pos: Optional[torch.Tensor] = None,
        query_pos: Optional[torch.Tensor] = None,
        num_k_exclude_rope: int = 0,
        feat_hw: Optional[tuple[int, int]] = None,
        memory_keys: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Batch-first tensors: tgt `(B, L, C)`, memory `(B, M, C_mem)`.

        `memory_keys`: `memory + pos` when the caller computed it once for every layer.
        """
        x = self.norm1(tgt)
        qk = x + query_pos if self.pos_enc_at_attn else x
        tgt = tgt + self.dropout(self._call_attn(self.self_attn, qk, qk, x, 0, feat_hw))

        x = self.norm2(tgt)
        if memory_keys is None:
            memory_keys = memory + pos if self.pos_enc_at_cross_attn_keys else memory
        x = self._call_attn(
            self.cross_attn_image,
            x + query_pos if self.pos_enc_at_cross_attn_queries else x,
            memory_keys,
            memory,
            num_k_exclude_rope,
            feat_hw,
        )
        tgt = tgt + self.dropout(x)

        x = self.norm3(tgt)
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return tgt + self.dropout(x)


class MemoryAttention(nn.Module):
    """A stack of memory-attention layers followed by a LayerNorm."""

    def __init__(
        self,
        d_model: int,
        pos_enc_at_input: bool,
        layer_factory,
        num_layers: int,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.layers = nn.ModuleList(layer_factory() for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = nn.LayerNorm(d_model)
        self.pos_enc_at_input = pos_enc_at_input

    def forward(
        self,
        curr: torch.Tensor,
        memory: torch.Tensor,
        curr_pos: Optional[torch.Tensor] = None,
        memory_pos: Optional[torch.Tensor] = None,
        num_obj_ptr_tokens: int = 0,
        feat_hw: Optional[tuple[int, int]] = None,
    ) -> torch.Tensor:
        """Sequence-first tensors as in the official model: curr `(L, B, C)`, memory `(M, B, C_mem)` -> `(L, B, C)`."""
        if isinstance(curr, (list, tuple)):
            (curr,), (curr_pos,) = curr, curr_pos
        if curr.shape[1] != memory.shape[1]:
            raise ValueError(f"batch of curr ({curr.shape[1]}) and memory ({memory.shape[1]}) differ")
        output = curr
        if self.pos_enc_at_input and curr_pos is not None:
            output = output + 0.1 * curr_pos
        output = output.transpose(0, 1)
        curr_pos = curr_pos.transpose(0, 1) if curr_pos is not None else None
        memory = memory.transpose(0, 1)
        memory_pos = memory_pos.transpose(0, 1) if memory_pos is not None else None
        # The cross-attention keys' input is the same in every layer: add the positions once.
        memory_keys = None
        if memory_pos is not None and all(layer.pos_enc_at_cross_attn_keys for layer in self.layers):
            memory_keys = memory + memory_pos
        for layer in self.layers:
            output = layer(
                tgt=output,
                memory=memory,
                pos=memory_pos,
                query_pos=curr_pos,
                num_k_exclude_rope=num_obj_ptr_tokens,
                feat_hw=feat_hw,
                memory_keys=memory_keys,
            )
        return self.norm(output).transpose(0, 1)
