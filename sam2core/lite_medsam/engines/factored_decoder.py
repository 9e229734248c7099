"""The mask decoder as exported for the CPU engines: the same function with fewer multiply-adds.

In the SAM two-way transformer a few prompt tokens (T ≈ 7) and many image tokens (N = 64² =
4096) attend to each other. The plain graph projects every image token in every attention
(keys and values of token→image, queries and output of image→token: four `N × C × C/2`
matmuls a layer, per prompt). Those projections are linear, so they can be moved onto the
token side, where there are only T rows:

- token→image: `q_h · (W_k,h x + b_k,h) = (q_h W_k,h) · x + const` — the constant is the
  same for every key of a query row, so softmax drops it; and `Σ a (W_v,h x + b_v,h) =
  W_v,h (Σ a x) + b_v,h` because the weights `a` of a row sum to 1. Scores and the weighted
  sum are then taken against the image tokens themselves (`H·T × N × C` each).
- image→token: `(W_q,h y + b_q,h) · k_h = y · (W_q,h^T k_h) + b_q,h · k_h`, and the output
  projection is applied to the T value rows before the weighted sum, not to the N results.

The image tokens enter the first layer once for all prompts (image embedding plus the one "no
mask" embedding), broadcast, not copied per prompt. About half the multiply-adds of the plain
graph at three prompts (projecting the shared first-layer keys once instead would pay only from
about three prompts on, and cost a single prompt 15 %);
the results equal `MaskDecoder.predict_masks` up to float rounding (tested; the engines are
checked against torch within 1e-3 × max|logit|).

Shapes: B prompts, T tokens, N image tokens, C channels, H heads, I = internal width, d = I / H.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sam2core.modeling.two_way_transformer import Attention, TwoWayAttentionBlock, TwoWayTransformer


def _heads_weight(linear: nn.Linear, num_heads: int) -> torch.Tensor:
    """A projection's weight `(I, C)` as `(H, d, C)`."""
    out_dim, in_dim = linear.weight.shape
    return linear.weight.reshape(num_heads, out_dim // num_heads, in_dim)


def token_to_image(attn: Attention, tokens: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`attn(q=tokens, k=keys, v=values)` with the image-side projections moved to the tokens.

    tokens `(B, T, C)`; keys, values `(1|B, N, C)` → `(B, T, C)`.
    """
    b, t, _ = tokens.shape
    h = attn.num_heads
    d = attn.internal_dim // h
    q = attn.q_proj(tokens).reshape(b, t, h, d).transpose(1, 2)  # (B, H, T, d)
    # Scores against the raw keys: (q_h W_k,h) · x; the q_h · b_k,h term is constant along a row.
    u = (q @ _heads_weight(attn.k_proj, h)) * (1.0 / math.sqrt(d))  # (B, H, T, C)
    scores = u.reshape(b, h * t, -1) @ keys.transpose(1, 2)  # (B, H*T, N)
    weighted = torch.softmax(scores, dim=-1) @ values  # (B, H*T, C): Σ a x, rows of a sum to 1
    v = weighted.reshape(b, h, t, -1) @ _heads_weight(attn.v_proj, h).transpose(1, 2)  # (B, H, T, d)
    v = v + attn.v_proj.bias.reshape(1, h, 1, d)
    return attn.out_proj(v.transpose(1, 2).reshape(b, t, h * d))


def image_to_token(attn: Attention, image: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`attn(q=image, k=keys, v=values)` with the image-side projections moved to the tokens.

    image `(1|B, N, C)`; keys, values `(B, T, C)` → `(B, N, C)`.
    """
    b, t, _ = keys.shape
    h = attn.num_heads
    d = attn.internal_dim // h
    scale = 1.0 / math.sqrt(d)
    k = attn.k_proj(keys).reshape(b, t, h, d).transpose(1, 2)  # (B, H, T, d)
    v = attn.v_proj(values).reshape(b, t, h, d).transpose(1, 2)  # (B, H, T, d)
    # (W_q,h y + b_q,h) · k_h = y · (W_q,h^T k_h) + b_q,h · k_h
    g = (k @ _heads_weight(attn.q_proj, h)) * scale  # (B, H, T, C)
    bias = (k @ attn.q_proj.bias.reshape(h, d, 1)) * scale  # (B, H, T, 1)
    scores = image @ g.reshape(b, h * t, -1).transpose(1, 2) + bias.reshape(b, 1, h * t)  # (B, N, H*T)
    n = scores.shape[1]
    weights = torch.softmax(scores.reshape(b, n, h, t), dim=-1).reshape(b, n, h * t)
    # The output projection on the T value rows of each head: W_o[:, head] v_h → (B, H*T, C)
    w_out = attn.out_proj.weight.reshape(-1, h, d).permute(1, 2, 0)  # (H, d, C)
    projected = (v @ w_out).reshape(b, h * t, -1)
    return weights @ projected + attn.out_proj.bias


def factored_block(block: TwoWayAttentionBlock, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
                   key_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`TwoWayAttentionBlock.forward`, its image-side projections factored (see the module docstring)."""
    queries = block.token_self_attention(queries, query_pe)  # tokens only: nothing to factor

    keys_with_pe = keys + key_pe
    queries = block.norm2(queries + token_to_image(block.cross_attn_token_to_image, queries + query_pe,
                                                   keys_with_pe, keys))
    queries = block.norm3(queries + block.mlp(queries))

    keys = keys + image_to_token(block.cross_attn_image_to_token, keys_with_pe, queries + query_pe, queries)
    return queries, block.norm4(keys)


def factored_transformer(transformer: TwoWayTransformer, image: torch.Tensor, image_pe: torch.Tensor,
                         tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`TwoWayTransformer.forward` for image `(1|B, C, h, w)` (1: one for all prompts), tokens `(B, T, C)`.

    Returns tokens `(B, T, C)` and image tokens `(B, h*w, C)`.
    """
    keys = image.flatten(2).transpose(1, 2)  # (1|B, N, C): broadcast over the prompts until image→token
    key_pe = image_pe.flatten(2).transpose(1, 2)  # (1, N, C)
    queries = tokens
    for layer in transformer.layers:
        queries, keys = factored_block(layer, queries, keys, tokens, key_pe)
    attn_out = token_to_image(transformer.final_attn_token_to_image, queries + tokens, keys + key_pe, keys)
    return transformer.norm_final_attn(queries + attn_out), keys


class FactoredDecoderGraph(nn.Module):
    """Embedding `(1, C, h, w)`, sparse `(B, N, C)`, dense `(B|1, C, h, w)` → masks `(B, 4, 4h, 4w)`, IoU `(B, 4)`.

    `MaskDecoder.predict_masks` (all mask tokens, single-mask output first) with the factored
    attention above; for decoders without high-resolution features (SAM 1, LiteMedSAM).
    """

    def __init__(self, mask_decoder: nn.Module, image_pe: torch.Tensor) -> None:
        super().__init__()
        if getattr(mask_decoder, "use_high_res_features", False):
            raise ValueError("the factored decoder graph is for decoders without high-resolution features")
        self.mask_decoder = mask_decoder
        self.register_buffer("image_pe", image_pe.detach().clone())

    def forward(self, features: torch.Tensor, sparse: torch.Tensor,
                dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        decoder = self.mask_decoder
        tokens = torch.cat((decoder.output_tokens(sparse.shape[0]), sparse), dim=1)  # (B, T, C)
        image = features + dense  # (1|B, C, h, w): one image for every prompt unless dense differs
        hs, image_tokens = factored_transformer(decoder.transformer, image, self.image_pe, tokens)
        masks, iou, _, _ = decoder.predict_from_tokens(hs, image_tokens, image.shape[-2:])
        return masks, iou
