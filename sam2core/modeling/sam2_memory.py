"""Memory bank of `SAM2Model`: reading past frames' memories and writing the current frame's.

`Sam2MemoryMixin` holds the official `SAM2Base` memory methods so that they stay methods of
the model class (the video predictor calls them by name):
- `_prepare_memory_conditioned_features(...)`: the current top-level features `(H*W, B, C)`
  fused with the spatial memories `(B, mem_dim, H, W)` of the chosen conditioning and recent
  frames and with their object pointers -> `(B, C, H, W)`.
- `_encode_new_memory(...)`: high-res mask logits `(B, 1, S, S)` + features -> memory
  features `(B, mem_dim, H, W)` and position encodings `[(B, mem_dim, H, W)]`.
- `_apply_non_overlapping_constraints(masks (N, 1, H, W))`: one object per pixel.
The submodules and parameters it reads, and the option flags, are created by `SAM2Model.__init__`.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from sam2core.modeling.common import flat_to_map, map_to_flat
from sam2core.modeling.memory_attention import MemoryAttention
from sam2core.modeling.memory_encoder import MemoryEncoder
from sam2core.modeling.position_encoding import get_1d_sine_pe


def select_closest_cond_frames(frame_idx: int, cond_frame_outputs: dict, max_cond_frame_num: int) -> tuple[dict, dict]:
    """Split conditioning frames into (used, unused): at most `max_cond_frame_num` (-1: all), nearest in time.

    The nearest one before `frame_idx` and the nearest at/after it are always used when present.
    """
    if max_cond_frame_num == -1 or len(cond_frame_outputs) <= max_cond_frame_num:
        return cond_frame_outputs, {}
    if max_cond_frame_num < 2:
        raise ValueError("max_cond_frames_in_attn must be -1 or at least 2")
    chosen: dict = {}
    before = [t for t in cond_frame_outputs if t < frame_idx]
    after = [t for t in cond_frame_outputs if t >= frame_idx]
    if before:
        chosen[max(before)] = cond_frame_outputs[max(before)]
    if after:
        chosen[min(after)] = cond_frame_outputs[min(after)]
    rest = sorted((t for t in cond_frame_outputs if t not in chosen), key=lambda t: abs(t - frame_idx))
    for t in rest[: max_cond_frame_num - len(chosen)]:
        chosen[t] = cond_frame_outputs[t]
    unused = {t: v for t, v in cond_frame_outputs.items() if t not in chosen}
    return chosen, unused


class Sam2MemoryMixin:
    """Memory read/write methods of `SAM2Model` (official `SAM2Base` names); no state of its own."""

    # Set by SAM2Model.__init__ (listed for readers and type checkers).
    training: bool
    num_maskmem: int
    hidden_dim: int
    mem_dim: int
    max_cond_frames_in_attn: int
    memory_temporal_stride_for_eval: int
    directly_add_no_mem_embed: bool
    use_obj_ptrs_in_encoder: bool
    max_obj_ptrs_in_encoder: int
    only_obj_ptrs_in_the_past_for_eval: bool
    use_signed_tpos_enc_to_obj_ptrs: bool
    add_tpos_enc_to_obj_ptrs: bool
    proj_tpos_enc_in_obj_ptrs: bool
    non_overlap_masks_for_mem_enc: bool
    binarize_mask_from_pts_for_mem_enc: bool
    sigmoid_scale_for_mem_enc: float
    sigmoid_bias_for_mem_enc: float
    memory_attention: MemoryAttention
    memory_encoder: MemoryEncoder
    maskmem_tpos_enc: nn.Parameter  # (num_maskmem, 1, 1, mem_dim)
    no_mem_embed: nn.Parameter  # (1, 1, C)
    no_mem_pos_enc: nn.Parameter  # (1, 1, C)
    no_obj_embed_spatial: Optional[nn.Parameter]  # (1, mem_dim)
    obj_ptr_tpos_proj: nn.Module  # (C,) or (mem_dim,) sine encoding -> (mem_dim,)

    def _memory_frame_indices(self, frame_idx: int, track_in_reverse: bool) -> list[tuple[int, int]]:
        """(t_pos, frame index) of the non-conditioning memories to read, t_pos = 1 (oldest) .. num_maskmem-1 (previous frame)."""
        stride = 1 if self.training else self.memory_temporal_stride_for_eval
        picks = []
        for t_pos in range(1, self.num_maskmem):
            frames_back = self.num_maskmem - t_pos
            if frames_back == 1:
                prev = frame_idx + 1 if track_in_reverse else frame_idx - 1
            elif not track_in_reverse:
                # The others lie on multiples of `stride` before the previous frame.
                prev = ((frame_idx - 2) // stride) * stride - (frames_back - 2) * stride
            else:
                prev = -(-(frame_idx + 2) // stride) * stride + (frames_back - 2) * stride
            picks.append((t_pos, prev))
        return picks

    def _object_pointer_tokens(
        self,
        frame_idx: int,
        selected_cond_outputs: dict,
        unselected_cond_outputs: dict,
        output_dict: dict,
        num_frames: Optional[int],
        track_in_reverse: bool,
        batch: int,
        device: torch.device,
    ) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """Object pointers of conditioning and recent frames with their temporal encodings, `(N, B, mem_dim)` each."""
        max_ptrs = self.max_obj_ptrs_in_encoder if num_frames is None else min(num_frames, self.max_obj_ptrs_in_encoder)
        sign = -1 if track_in_reverse else 1
        if not self.training and self.only_obj_ptrs_in_the_past_for_eval:
            ptr_cond = {
                t: out for t, out in selected_cond_outputs.items() if (t >= frame_idx if track_in_reverse else t <= frame_idx)
            }
        else:
            ptr_cond = selected_cond_outputs
        positions, ptrs = [], []
        for t, out in ptr_cond.items():
            positions.append((frame_idx - t) * sign if self.use_signed_tpos_enc_to_obj_ptrs else abs(frame_idx - t))
            ptrs.append(out["obj_ptr"])
        for t_diff in range(1, max_ptrs):
            t = frame_idx + t_diff if track_in_reverse else frame_idx - t_diff
            if t < 0 or (num_frames is not None and t >= num_frames):
                break
            out = output_dict["non_cond_frame_outputs"].get(t, unselected_cond_outputs.get(t))
            if out is not None:
                positions.append(t_diff)
                ptrs.append(out["obj_ptr"])
        if not ptrs:
            return None

        c = self.hidden_dim
        obj_ptrs = torch.stack(ptrs, dim=0)  # (N, B, C)
        if self.add_tpos_enc_to_obj_ptrs:
            t_diff_max = max_ptrs - 1
            tpos_dim = c if self.proj_tpos_enc_in_obj_ptrs else self.mem_dim
            pos = torch.tensor(positions, device=device, dtype=torch.float32) / t_diff_max
            obj_pos = self.obj_ptr_tpos_proj(get_1d_sine_pe(pos, dim=tpos_dim))
            obj_pos = obj_pos.unsqueeze(1).expand(-1, batch, self.mem_dim)
        else:
            obj_pos = obj_ptrs.new_zeros(len(positions), batch, self.mem_dim)
        if self.mem_dim < c:
            # Each C-dim pointer becomes C / mem_dim tokens of the memory width.
            split = c // self.mem_dim
            obj_ptrs = obj_ptrs.reshape(-1, batch, split, self.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
            obj_pos = obj_pos.repeat_interleave(split, dim=0)
        return obj_ptrs, obj_pos

    def _prepare_memory_conditioned_features(
        self,
        frame_idx: int,
        is_init_cond_frame: bool,
        current_vision_feats: list[torch.Tensor],
        current_vision_pos_embeds: list[torch.Tensor],
        feat_sizes: list[tuple[int, int]],
        output_dict: dict,
        num_frames: Optional[int],
        track_in_reverse: bool = False,
    ) -> torch.Tensor:
        """Fuse the current frame's top-level features with the memory bank -> `(B, C, H, W)`."""
        feats = current_vision_feats[-1]  # (H*W, B, C)
        batch = feats.size(1)
        hw = tuple(feat_sizes[-1])
        device = feats.device
        if self.num_maskmem == 0:
            return flat_to_map(feats, hw)

        num_obj_ptr_tokens = 0
        if is_init_cond_frame:
            if self.directly_add_no_mem_embed:
                return flat_to_map(feats + self.no_mem_embed, hw)
            memory_parts = [self.no_mem_embed.expand(1, batch, self.mem_dim)]
            memory_pos_parts = [self.no_mem_pos_enc.expand(1, batch, self.mem_dim)]
        else:
            cond_outputs = output_dict["cond_frame_outputs"]
            if not cond_outputs:
                raise ValueError(f"frame {frame_idx} is not a conditioning frame but output_dict has no conditioning frame")
            selected, unselected = select_closest_cond_frames(frame_idx, cond_outputs, self.max_cond_frames_in_attn)
            entries = [(0, out) for out in selected.values()]
            for t_pos, prev_idx in self._memory_frame_indices(frame_idx, track_in_reverse):
                out = output_dict["non_cond_frame_outputs"].get(prev_idx)
                if out is None:
                    out = unselected.get(prev_idx)
                entries.append((t_pos, out))

            memory_parts, memory_pos_parts = [], []
            for t_pos, prev in entries:
                if prev is None:
                    continue
                memory_parts.append(map_to_flat(prev["maskmem_features"].to(device, non_blocking=True)))
                pos = map_to_flat(prev["maskmem_pos_enc"][-1].to(device))
                memory_pos_parts.append(pos + self.maskmem_tpos_enc[self.num_maskmem - t_pos - 1])

            if self.use_obj_ptrs_in_encoder:
                pointer_tokens = self._object_pointer_tokens(
                    frame_idx, selected, unselected, output_dict, num_frames, track_in_reverse, batch, device
                )
                if pointer_tokens is not None:
                    memory_parts.append(pointer_tokens[0])
                    memory_pos_parts.append(pointer_tokens[1])
                    num_obj_ptr_tokens = pointer_tokens[0].shape[0]

        memory = torch.cat(memory_parts, dim=0)
        memory_pos = torch.cat(memory_pos_parts, dim=0)
        fused = self.memory_attention(
            curr=current_vision_feats[-1:],
            curr_pos=current_vision_pos_embeds[-1:],
            memory=memory,
            memory_pos=memory_pos,
            num_obj_ptr_tokens=num_obj_ptr_tokens,
            feat_hw=hw,
        )
        return flat_to_map(fused, hw)

    def _apply_non_overlapping_constraints(self, pred_masks: torch.Tensor) -> torch.Tensor:
        """Keep each pixel only for the highest-scoring object: others are clamped to at most -10."""
        if pred_masks.size(0) == 1:
            return pred_masks
        winner = torch.argmax(pred_masks, dim=0, keepdim=True)
        objects = torch.arange(pred_masks.size(0), device=pred_masks.device)[:, None, None, None]
        return torch.where(winner == objects, pred_masks, torch.clamp(pred_masks, max=-10.0))

    def _encode_new_memory(
        self,
        current_vision_feats: list[torch.Tensor],
        feat_sizes: list[tuple[int, int]],
        pred_masks_high_res: torch.Tensor,
        object_score_logits: torch.Tensor,
        is_mask_from_pts: bool,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Memory features `(B, mem_dim, H, W)` and their position encodings `[(B, mem_dim, H, W)]`."""
        pix_feat = flat_to_map(current_vision_feats[-1], tuple(feat_sizes[-1]))
        if self.non_overlap_masks_for_mem_enc and not self.training:
            pred_masks_high_res = self._apply_non_overlapping_constraints(pred_masks_high_res)
        if self.binarize_mask_from_pts_for_mem_enc and is_mask_from_pts and not self.training:
            mask_for_mem = (pred_masks_high_res > 0).float()
        else:
            mask_for_mem = torch.sigmoid(pred_masks_high_res)
        if self.sigmoid_scale_for_mem_enc != 1.0:
            mask_for_mem = mask_for_mem * self.sigmoid_scale_for_mem_enc
        if self.sigmoid_bias_for_mem_enc != 0.0:
            mask_for_mem = mask_for_mem + self.sigmoid_bias_for_mem_enc
        encoded = self.memory_encoder(pix_feat, mask_for_mem, skip_mask_sigmoid=True)
        features, pos_enc = encoded["vision_features"], encoded["vision_pos_enc"]
        if self.no_obj_embed_spatial is not None:
            absent = 1 - (object_score_logits > 0).float()  # (B, 1)
            features = features + (absent[..., None, None] * self.no_obj_embed_spatial[..., None, None]).to(features.dtype)
        return features, pos_enc
