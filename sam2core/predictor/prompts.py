"""Prompt handling of the streaming `VideoPredictor`: points, boxes and masks on a frame, clearing, removing objects.

A prompt is run through the model at once (its output is returned and kept as pending);
it is encoded into memory only when propagation starts, as the official `SAM2VideoPredictor`
does. `PromptsMixin` holds these methods; `sam2core.predictor.video.VideoPredictor` supplies
the session, the model and the tracking step they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from sam2core.errors import PromptError
from sam2core.predictor.state import FrameOutput, InferenceState, ObjectState, PendingOutput

PointsLike = Union[torch.Tensor, np.ndarray, Sequence[Sequence[float]]]


class PromptsMixin:
    """Prompt methods of `VideoPredictor` (official call shapes); needs the host members declared below."""

    if TYPE_CHECKING:
        add_all_frames_to_correct_as_cond: bool

        @property
        def image_size(self) -> int: ...

        def _check_frame_idx(self, state: InferenceState, frame_idx: int) -> int: ...

        def _ensure_video_size(self, state: InferenceState, frame_idx: int) -> None: ...

        def _object(self, state: InferenceState, obj_id: Any) -> ObjectState: ...

        def _track_one(self, state: InferenceState, obj: ObjectState, frame_idx: int, is_init_cond_frame: bool,
                       point_inputs: Optional[dict] = None, mask_inputs: Optional[torch.Tensor] = None,
                       reverse: bool = False, run_mem_encoder: bool = True,
                       prev_sam_mask_logits: Optional[torch.Tensor] = None) -> FrameOutput: ...

        def _consolidated_masks(self, state: InferenceState, frame_idx: int, is_cond: bool) -> torch.Tensor: ...

    def _prompt_kind(self, obj: ObjectState, frame_idx: int) -> tuple[bool, bool, bool]:
        """(is_init_cond_frame, reverse, is_cond) for a prompt on `frame_idx`, as the official predictor decides."""
        is_init_cond_frame = frame_idx not in obj.tracked_reverse
        reverse = False if is_init_cond_frame else obj.tracked_reverse[frame_idx]
        is_cond = is_init_cond_frame or self.add_all_frames_to_correct_as_cond
        return is_init_cond_frame, reverse, is_cond

    @staticmethod
    def _as_points(points: Optional[PointsLike], labels: Optional[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Validated prompt clicks as CPU tensors: (N, 2) float32 (x, y) and (N,) int32 labels."""
        if (points is None) != (labels is None):
            raise PromptError("points and labels must be given together (one label per point)")
        if points is None:
            return torch.zeros(0, 2, dtype=torch.float32), torch.zeros(0, dtype=torch.int32)
        points_t = torch.as_tensor(np.asarray(points, dtype=np.float32)) if not isinstance(points, torch.Tensor) \
            else points.detach().float().cpu()
        labels_t = torch.as_tensor(np.asarray(labels, dtype=np.int32)) if not isinstance(labels, torch.Tensor) \
            else labels.detach().to(torch.int32).cpu()
        if points_t.ndim == 3 and points_t.shape[0] == 1:
            points_t = points_t[0]
        if labels_t.ndim == 2 and labels_t.shape[0] == 1:
            labels_t = labels_t[0]
        if points_t.ndim != 2 or points_t.shape[-1] != 2:
            raise PromptError(f"points must be (N, 2) as (x, y); got shape {tuple(points_t.shape)}")
        if labels_t.ndim != 1 or labels_t.shape[0] != points_t.shape[0]:
            raise PromptError(f"labels must be (N,) matching {points_t.shape[0]} points; got shape {tuple(labels_t.shape)}")
        if not torch.isfinite(points_t).all():
            raise PromptError("points contain NaN or infinite coordinates")
        return points_t, labels_t

    @torch.inference_mode()
    def add_new_points_or_box(
        self,
        state: InferenceState,
        frame_idx: int,
        obj_id: Any,
        points: Optional[PointsLike] = None,
        labels: Optional[Any] = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box: Optional[Any] = None,
    ) -> tuple[int, list[Any], torch.Tensor]:
        """Prompt `obj_id` on a frame with clicks and/or a box; returns (frame_idx, obj_ids, (N, 1, H, W) logits).

        Points are `(x, y)` frame pixels (or [0, 1] fractions with `normalize_coords=False`),
        labels 1 positive / 0 negative, box `(x0, y0, x1, y1)` in the same units.
        """
        frame_idx = self._check_frame_idx(state, frame_idx)
        if obj_id is None:
            raise PromptError("obj_id must not be None")
        points_t, labels_t = self._as_points(points, labels)
        if box is None and points_t.shape[0] == 0:
            raise PromptError(f"no prompt for object {obj_id!r} on frame {frame_idx}: give at least one point or a box")
        if box is not None:
            if not clear_old_points:
                raise PromptError("a box must come before any click: use clear_old_points=True with a box")
            box_t = torch.as_tensor(np.asarray(box, dtype=np.float32)).reshape(-1)
            if box_t.numel() != 4 or not torch.isfinite(box_t).all():
                raise PromptError(f"box must be 4 finite numbers (x0, y0, x1, y1); got {box!r}")
            if box_t[2] <= box_t[0] or box_t[3] <= box_t[1]:
                raise PromptError(f"box {box_t.tolist()} is empty: need x1 > x0 and y1 > y0")
            points_t = torch.cat([box_t.reshape(2, 2), points_t], dim=0)
            labels_t = torch.cat([torch.tensor([2, 3], dtype=torch.int32), labels_t], dim=0)

        self._ensure_video_size(state, frame_idx)
        if normalize_coords:
            limit = torch.tensor([state.video_width, state.video_height], dtype=torch.float32)
        else:
            limit = torch.ones(2)
        if (points_t < 0).any() or (points_t > limit).any():
            raise PromptError(f"prompt coordinates {points_t.tolist()} fall outside frame {frame_idx} "
                              f"(width {state.video_width}, height {state.video_height})")
        obj = self._object(state, obj_id)
        if normalize_coords:
            points_t = points_t / limit
        points_t = (points_t * self.image_size)[None].to(state.device)
        labels_t = labels_t[None].to(state.device)
        old = obj.point_inputs.get(frame_idx) if not clear_old_points else None
        if old is not None:
            points_t = torch.cat([old["point_coords"], points_t], dim=1)
            labels_t = torch.cat([old["point_labels"], labels_t], dim=1)
        point_inputs = {"point_coords": points_t, "point_labels": labels_t}
        obj.point_inputs[frame_idx] = point_inputs
        obj.mask_inputs.pop(frame_idx, None)

        is_init_cond_frame, reverse, is_cond = self._prompt_kind(obj, frame_idx)
        pending = obj.pending.get(frame_idx)
        prev_out = pending.output if pending is not None and pending.is_cond == is_cond else obj.bank.get(frame_idx)
        prev_logits = None
        if prev_out is not None and prev_out.pred_masks is not None:
            prev_logits = torch.clamp(prev_out.pred_masks.to(state.device), -32.0, 32.0)
        output = self._track_one(state, obj, frame_idx, is_init_cond_frame, point_inputs=point_inputs,
                                 reverse=reverse, run_mem_encoder=False, prev_sam_mask_logits=prev_logits)
        obj.pending[frame_idx] = PendingOutput(output, is_cond)
        return frame_idx, state.obj_ids, self._consolidated_masks(state, frame_idx, is_cond)

    @torch.inference_mode()
    def add_new_mask(self, state: InferenceState, frame_idx: int, obj_id: Any,
                     mask: Union[torch.Tensor, np.ndarray]) -> tuple[int, list[Any], torch.Tensor]:
        """Prompt `obj_id` on a frame with a `(H, W)` mask; returns (frame_idx, obj_ids, (N, 1, H, W) logits)."""
        frame_idx = self._check_frame_idx(state, frame_idx)
        if obj_id is None:
            raise PromptError("obj_id must not be None")
        mask_t = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
        if mask_t.ndim != 2:
            raise PromptError(f"mask must be 2D (H, W); got shape {tuple(mask_t.shape)}")
        self._ensure_video_size(state, frame_idx)
        obj = self._object(state, obj_id)
        mask_inputs = mask_t.bool()[None, None].float().to(state.device)
        if tuple(mask_inputs.shape[-2:]) != (self.image_size, self.image_size):
            mask_inputs = F.interpolate(mask_inputs, size=(self.image_size, self.image_size), align_corners=False,
                                        mode="bilinear", antialias=True)
            mask_inputs = (mask_inputs >= 0.5).float()
        obj.mask_inputs[frame_idx] = mask_inputs
        obj.point_inputs.pop(frame_idx, None)
        is_init_cond_frame, reverse, is_cond = self._prompt_kind(obj, frame_idx)
        output = self._track_one(state, obj, frame_idx, is_init_cond_frame, mask_inputs=mask_inputs,
                                 reverse=reverse, run_mem_encoder=False)
        obj.pending[frame_idx] = PendingOutput(output, is_cond)
        return frame_idx, state.obj_ids, self._consolidated_masks(state, frame_idx, is_cond)

    @torch.inference_mode()
    def clear_all_prompts_in_frame(self, state: InferenceState, frame_idx: int, obj_id: Any,
                                   need_output: bool = True):
        """Remove an object's prompts on a frame (its output there becomes an ordinary tracked one)."""
        frame_idx = self._check_frame_idx(state, frame_idx)
        obj = state.find(obj_id)
        if obj is None:
            raise PromptError(f"unknown object {obj_id!r}; known objects: {state.obj_ids}")
        obj.point_inputs.pop(frame_idx, None)
        obj.mask_inputs.pop(frame_idx, None)
        obj.pending.pop(frame_idx, None)
        out = obj.bank.cond.pop(frame_idx, None)
        if out is not None:
            obj.bank.non_cond[frame_idx] = out
            obj.tracked_reverse.pop(frame_idx, None)
        if not need_output:
            return None
        is_cond = any(o.pending.get(frame_idx) is not None and o.pending[frame_idx].is_cond for o in state.objects)
        return frame_idx, state.obj_ids, self._consolidated_masks(state, frame_idx, is_cond)

    @torch.inference_mode()
    def remove_object(self, state: InferenceState, obj_id: Any, strict: bool = False, need_output: bool = True):
        """Forget one object; returns (obj_ids, [(frame_idx, masks) of frames it was prompted on])."""
        obj = state.find(obj_id)
        if obj is None:
            if strict:
                raise PromptError(f"cannot remove unknown object {obj_id!r}; known objects: {state.obj_ids}")
            return state.obj_ids, []
        prompted = sorted(set(obj.point_inputs) | set(obj.mask_inputs))
        state.objects.remove(obj)
        state.last_object_scores.pop(obj_id, None)
        updated = []
        if need_output and state.objects:
            for frame_idx in prompted:
                is_cond = any(o.pending.get(frame_idx) is not None and o.pending[frame_idx].is_cond
                              for o in state.objects)
                updated.append((frame_idx, self._consolidated_masks(state, frame_idx, is_cond)))
        return state.obj_ids, updated
