"""Streaming SAM 2 video predictor: the official call shapes, bounded memory, frames fetched on demand.

Works with any model exposing the official `SAM2Base` interface (`image_size`,
`forward_image`, `_prepare_backbone_features`, `track_step`, `_encode_new_memory`,
`_apply_non_overlapping_constraints`, `num_maskmem`, `max_obj_ptrs_in_encoder`, ...): our
`sam2core` SAM2 model or the official one. Semantics follow `sam2==1.1.0`'s
`SAM2VideoPredictor` (prompts consolidated into memory when propagation starts, every
tracked frame's output kept for later corrections), with differences that change nothing
the model can see:

- frames are fetched from the source only when a frame is encoded, and each frame is
  encoded once per session: image features live in a small LRU cache in RAM and, once
  pushed out, in a temporary folder (the official predictor loads every frame up front and
  re-encodes a frame on every call that visits it);
- each tracked output keeps its object pointer in RAM; its mask logits and spatial memory
  stay in RAM only near the frame being tracked and near conditioning frames, and move to
  the temporary folder otherwise, so resident memory stays flat however long the sequence
  while a correction anywhere reads exactly what the official predictor would give it
  (that frame's previous mask logits as a mask prompt, its neighbours' memories);
- outputs are yielded, not stored: the caller keeps the masks it wants.

Not reproduced: the official `fill_hole_area` post-processing (it needs the CUDA extension
and is skipped on CPU by the official code too). Objects with the same memory layout are
run through the model as one batch (`batch_objects`); the model's
`non_overlap_masks_for_mem_enc` would then act across objects, which the official predictor
(one object at a time) never does, so batching is off when that flag is set.

Prompt handling (points, boxes, masks, clearing prompts, removing objects) is in
`sam2core.predictor.prompts`, mixed into `VideoPredictor`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Collection, Iterator, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from sam2core.errors import PromptError
from sam2core.frames import FrameSource, as_frame_source
from sam2core.predictor.precision import Precision, autocast_dtype_for
from sam2core.predictor.preprocess import ResizeMode, preprocess_frame
from sam2core.predictor.prompts import PromptsMixin
from sam2core.predictor.stacked import StackedOutput
from sam2core.predictor.state import (
    FeatureCache,
    FrameFeatures,
    FrameOutput,
    InferenceState,
    ObjectState,
    TensorStore,
)

# Mask logit standing for "no object here" (same value as the official NO_OBJ_SCORE).
NO_OBJ_SCORE = -1024.0


class VideoPredictor(PromptsMixin):
    """Track objects through a frame sequence with a SAM 2 model, from point/box/mask prompts.

    `model`: a SAM 2 model in eval mode (its device is used). `feature_cache_size`: how many
    frames' image features to keep in RAM (LRU; older ones go to the offload folder).
    `non_overlap_masks`: keep only the highest-scoring object at each output pixel.
    `add_all_frames_to_correct_as_cond`: a prompt on an already-tracked frame makes it a
    conditioning frame (default True, so corrections steer later propagation; the official
    default is False). `clear_non_cond_mem_around_input`: forget tracked memories around a
    corrected frame. `resize_mode`: "pil" reproduces the official loader exactly (8-bit PIL
    bicubic), "torch" resizes in float precision. `memory_dtype`: storage dtype of spatial
    memories (bfloat16 like the official predictor). `precision`: "fp32" (default, equal to
    the official predictor), "bf16" (autocast) or "auto" (bf16 only where the device runs it
    natively: AVX-512 BF16 / AMX CPUs, CUDA with bf16). `batch_objects`: track objects whose
    memories cover the same frames in one batch (same results up to float rounding).
    `offload_dir`: where a session's temporary folder for offloaded tensors is created
    (None: the system temporary directory; False: keep them in RAM, memory then grows with
    the frames tracked). `feature_store_mib`: at most this many MiB of image features kept
    in that folder (0: none, frames pushed out of RAM are encoded again when revisited).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        feature_cache_size: int = 4,
        non_overlap_masks: bool = False,
        add_all_frames_to_correct_as_cond: bool = True,
        clear_non_cond_mem_around_input: bool = False,
        resize_mode: ResizeMode = "pil",
        memory_dtype: torch.dtype = torch.bfloat16,
        precision: Precision = "fp32",
        batch_objects: bool = True,
        offload_dir: Union[str, Path, None, bool] = None,
        feature_store_mib: int = 8192,
    ) -> None:
        if feature_cache_size < 1:
            raise ValueError(f"feature_cache_size must be at least 1, got {feature_cache_size}")
        if offload_dir is True:
            raise ValueError("offload_dir must be a folder, None (system temporary folder) or False (keep in RAM)")
        self.model = model
        self.feature_cache_size = feature_cache_size
        self.non_overlap_masks = non_overlap_masks
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.clear_non_cond_mem_around_input = clear_non_cond_mem_around_input
        self.resize_mode = resize_mode
        self.memory_dtype = memory_dtype
        self.precision = precision
        self.autocast_dtype = autocast_dtype_for(precision, self.device)
        self.batch_objects = batch_objects
        self.offload_dir = offload_dir
        self.feature_store_mib = feature_store_mib

    # ------------------------------------------------------------------ model facts
    @property
    def image_size(self) -> int:
        return int(self.model.image_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def _memory_stride(self) -> int:
        return max(1, int(getattr(self.model, "memory_temporal_stride_for_eval", 1)))

    def memory_window(self) -> int:
        """How many frames away from the current frame the model reads spatial memories."""
        num_maskmem = int(self.model.num_maskmem)
        if num_maskmem <= 2:
            return 1
        return (num_maskmem - 2) * self._memory_stride + 1

    def pointer_window(self) -> int:
        """How many frames away from the current frame the model reads object pointers."""
        if not getattr(self.model, "use_obj_ptrs_in_encoder", False):
            return self.memory_window()
        return max(self.memory_window(), int(self.model.max_obj_ptrs_in_encoder) - 1)

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    # ------------------------------------------------------------------ session
    @torch.inference_mode()
    def init_state(self, frames: Union[FrameSource, np.ndarray]) -> InferenceState:
        """Start a session over `frames` (a `(T, 3, H, W)` tensor in [0, 1] or `LazyFrames`); loads nothing yet."""
        source = as_frame_source(frames)
        num_frames = len(source)
        if num_frames == 0:
            raise ValueError("frames is empty: a session needs at least one frame")
        height = width = 0
        if isinstance(source, torch.Tensor):
            height, width = int(source.shape[-2]), int(source.shape[-1])
        store = TensorStore(self.offload_dir)
        feature_store = store if self.feature_store_mib > 0 else None
        return InferenceState(
            frames=source,
            num_frames=num_frames,
            video_height=height,
            video_width=width,
            device=self.device,
            features=FeatureCache(self.feature_cache_size, feature_store, self.feature_store_mib * 2 ** 20),
            store=store,
        )

    @torch.inference_mode()
    def reset_state(self, state: InferenceState) -> None:
        """Forget every object, prompt and memory (image features stay cached)."""
        state.objects.clear()
        state.last_object_scores.clear()

    def last_object_scores(self, state: InferenceState) -> dict[Any, float]:
        """Object-score logit of each object on the last frame returned (yielded or prompted; > 0: present)."""
        return dict(state.last_object_scores)

    # ------------------------------------------------------------------ frames and features
    def _fetch_frame(self, state: InferenceState, frame_idx: int) -> torch.Tensor:
        frame = state.frames[frame_idx]
        state.frames_fetched += 1
        if not isinstance(frame, torch.Tensor):
            frame = torch.as_tensor(np.asarray(frame), dtype=torch.float32)
        if frame.ndim != 3 or frame.shape[0] != 3:
            raise ValueError(f"frame {frame_idx} must be RGB (3, H, W); got shape {tuple(frame.shape)}")
        height, width = int(frame.shape[-2]), int(frame.shape[-1])
        if state.video_height == 0:
            state.video_height, state.video_width = height, width
        elif (height, width) != (state.video_height, state.video_width):
            raise ValueError(f"frame {frame_idx} is {height}x{width} but earlier frames are "
                             f"{state.video_height}x{state.video_width}: every frame must have the same size")
        return frame

    def _ensure_video_size(self, state: InferenceState, frame_idx: int) -> None:
        if state.video_height == 0:
            self._frame_features(state, frame_idx)

    def _encode_frame(self, state: InferenceState, frame_idx: int) -> FrameFeatures:
        image = preprocess_frame(self._fetch_frame(state, frame_idx), self.image_size, state.device,
                                 self.resize_mode)
        with self._autocast():
            backbone_out = self.model.forward_image(image)
            _, vision_feats, vision_pos_embeds, feat_sizes = self.model._prepare_backbone_features(backbone_out)
        # Compact copies: the backbone's full outputs are freed, and a frame read back from
        # the offload folder has the same memory layout as one just encoded (same numerics).
        vision_feats = [x.contiguous() for x in vision_feats]
        shared = state.vision_pos_embeds
        if shared is None or len(shared) != len(vision_pos_embeds) or not all(
                a.shape == b.shape and torch.equal(a, b) for a, b in zip(shared, vision_pos_embeds)):
            shared = [x.contiguous() for x in vision_pos_embeds]
            if state.vision_pos_embeds is None:
                state.vision_pos_embeds = shared
        return FrameFeatures(vision_feats, shared, [tuple(s) for s in feat_sizes])

    def _frame_features(self, state: InferenceState, frame_idx: int) -> FrameFeatures:
        return state.features.get_or_compute(frame_idx, lambda i: self._encode_frame(state, i))

    # ------------------------------------------------------------------ objects
    def _object(self, state: InferenceState, obj_id: Any) -> ObjectState:
        obj = state.find(obj_id)
        if obj is None:
            obj = ObjectState(obj_id=obj_id)
            state.objects.append(obj)
        return obj

    def _check_frame_idx(self, state: InferenceState, frame_idx: int) -> int:
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)):
            raise PromptError(f"frame_idx must be an integer, got {frame_idx!r}")
        if not 0 <= int(frame_idx) < state.num_frames:
            raise PromptError(f"frame {frame_idx} does not exist: the session has frames 0..{state.num_frames - 1}")
        return int(frame_idx)

    # ------------------------------------------------------------------ one tracking step
    def _shared_pos_enc(self, state: InferenceState, pos_enc: Optional[list[torch.Tensor]]):
        """The memory positional encoding is the same on every frame: keep one copy."""
        if pos_enc is None:
            return None
        if state.maskmem_pos_enc is None:
            state.maskmem_pos_enc = [x[0:1].clone() for x in pos_enc]
        return [x.expand(pos_enc[0].size(0), -1, -1, -1) for x in state.maskmem_pos_enc]

    def _track_one(
        self,
        state: InferenceState,
        obj: ObjectState,
        frame_idx: int,
        is_init_cond_frame: bool,
        point_inputs: Optional[dict] = None,
        mask_inputs: Optional[torch.Tensor] = None,
        reverse: bool = False,
        run_mem_encoder: bool = True,
        prev_sam_mask_logits: Optional[torch.Tensor] = None,
    ) -> FrameOutput:
        feats = self._frame_features(state, frame_idx)
        with self._autocast():
            out = self.model.track_step(
                frame_idx=frame_idx,
                is_init_cond_frame=is_init_cond_frame,
                current_vision_feats=feats.vision_feats,
                current_vision_pos_embeds=feats.vision_pos_embeds,
                feat_sizes=feats.feat_sizes,
                point_inputs=point_inputs,
                mask_inputs=mask_inputs,
                output_dict=obj.bank.as_output_dict(),
                num_frames=state.num_frames,
                track_in_reverse=reverse,
                run_mem_encoder=run_mem_encoder,
                prev_sam_mask_logits=prev_sam_mask_logits,
            )
        maskmem_features = out["maskmem_features"]
        if maskmem_features is not None:
            maskmem_features = maskmem_features.to(self.memory_dtype)
        return FrameOutput(
            pred_masks=out["pred_masks"].float(),
            obj_ptr=out["obj_ptr"],
            object_score_logits=out["object_score_logits"],
            maskmem_features=maskmem_features,
            maskmem_pos_enc=self._shared_pos_enc(state, out["maskmem_pos_enc"]),
        )

    def _reachable(self, frame_idx: int) -> range:
        window = self.pointer_window()
        return range(frame_idx - window, frame_idx + window + 1)

    def _memory_layout(self, obj: ObjectState, frame_idx: int) -> tuple:
        """What `track_step` could read for this object on `frame_idx`: objects with equal layouts batch together."""
        reachable = self._reachable(frame_idx)
        return (tuple(sorted(obj.bank.cond)), tuple(sorted(t for t in obj.bank.non_cond if t in reachable)))

    def _batched_bank(self, objects: list[ObjectState], frame_idx: int) -> dict:
        """The `output_dict` of several objects with equal layouts, their outputs stacked along the batch."""
        reachable = self._reachable(frame_idx)
        first = objects[0].bank
        cond = {t: StackedOutput([o.bank.cond[t] for o in objects]) for t in first.cond}
        non_cond = {t: StackedOutput([o.bank.non_cond[t] for o in objects]) for t in first.non_cond if t in reachable}
        return {"cond_frame_outputs": cond, "non_cond_frame_outputs": non_cond}

    def _track_batch(self, state: InferenceState, objects: list[ObjectState], frame_idx: int,
                     reverse: bool) -> list[FrameOutput]:
        """One propagation step for several objects with equal memory layouts, in one batch."""
        feats = self._frame_features(state, frame_idx)
        batch = len(objects)
        bank = self._batched_bank(objects, frame_idx)
        with self._autocast():
            out = self.model.track_step(
                frame_idx=frame_idx,
                is_init_cond_frame=False,
                current_vision_feats=[x.expand(-1, batch, -1) for x in feats.vision_feats],
                current_vision_pos_embeds=[x.expand(-1, batch, -1) for x in feats.vision_pos_embeds],
                feat_sizes=feats.feat_sizes,
                point_inputs=None,
                mask_inputs=None,
                output_dict=bank,
                num_frames=state.num_frames,
                track_in_reverse=reverse,
                run_mem_encoder=True,
                prev_sam_mask_logits=None,
            )
        maskmem_features = out["maskmem_features"].to(self.memory_dtype)
        pos_enc = self._shared_pos_enc(state, [x[0:1] for x in out["maskmem_pos_enc"]])
        return [
            FrameOutput(
                pred_masks=out["pred_masks"][i:i + 1].float().clone(),
                obj_ptr=out["obj_ptr"][i:i + 1],
                object_score_logits=out["object_score_logits"][i:i + 1],
                maskmem_features=maskmem_features[i:i + 1].clone(),
                maskmem_pos_enc=pos_enc,
            )
            for i in range(batch)
        ]

    def _track_frame(self, state: InferenceState, objects: list[ObjectState], frame_idx: int,
                     reverse: bool) -> list[FrameOutput]:
        """Propagation step on one frame for objects without a prompt there (batched where layouts agree)."""
        groups: dict[tuple, list[ObjectState]] = {}
        for obj in objects:
            key = self._memory_layout(obj, frame_idx) if self._can_batch() else (id(obj),)
            groups.setdefault(key, []).append(obj)
        results: dict[int, FrameOutput] = {}
        for group in groups.values():
            if len(group) == 1:
                outs = [self._track_one(state, group[0], frame_idx, is_init_cond_frame=False, reverse=reverse)]
            else:
                outs = self._track_batch(state, group, frame_idx, reverse)
            results.update({id(obj): out for obj, out in zip(group, outs)})
        return [results[id(obj)] for obj in objects]

    def _can_batch(self) -> bool:
        # Memory encoding in a batch would apply the model's non-overlap rule across objects,
        # which the official predictor (objects one by one) never does.
        return self.batch_objects and not getattr(self.model, "non_overlap_masks_for_mem_enc", False)

    def _encode_memory(self, state: InferenceState, frame_idx: int, output: FrameOutput) -> None:
        """Run the memory encoder on a prompted frame's output (its mask treated as user-given)."""
        feats = self._frame_features(state, frame_idx)
        high_res_masks = F.interpolate(output.pred_masks.to(state.device), size=(self.image_size, self.image_size),
                                       mode="bilinear", align_corners=False)
        with self._autocast():
            maskmem_features, maskmem_pos_enc = self.model._encode_new_memory(
                current_vision_feats=feats.vision_feats,
                feat_sizes=feats.feat_sizes,
                pred_masks_high_res=high_res_masks,
                object_score_logits=output.object_score_logits,
                is_mask_from_pts=True,
            )
        output.maskmem_features = maskmem_features.to(self.memory_dtype)
        output.maskmem_pos_enc = self._shared_pos_enc(state, maskmem_pos_enc)

    # ------------------------------------------------------------------ outputs
    def _to_video_res(self, state: InferenceState, masks: torch.Tensor) -> torch.Tensor:
        """(N, 1, h, w) logits → (N, 1, H, W) at frame resolution, non-overlap applied if asked."""
        masks = masks.to(state.device)
        if tuple(masks.shape[-2:]) != (state.video_height, state.video_width):
            masks = F.interpolate(masks, size=(state.video_height, state.video_width), mode="bilinear",
                                  align_corners=False)
        if self.non_overlap_masks:
            masks = self.model._apply_non_overlapping_constraints(masks)
        return masks

    def _consolidated_masks(self, state: InferenceState, frame_idx: int, is_cond: bool) -> torch.Tensor:
        """Every object's current mask on a frame (pending prompt output first), at frame resolution.

        Also makes `last_object_scores` describe this frame (objects with no output there are left out).
        """
        size = (state.video_height, state.video_width)
        consolidated = torch.full((len(state.objects), 1, *size), NO_OBJ_SCORE, dtype=torch.float32,
                                  device=state.device)
        scores = {}
        for index, obj in enumerate(state.objects):
            pending = obj.pending.get(frame_idx)
            out = pending.output if pending is not None and pending.is_cond == is_cond else obj.bank.get(frame_idx)
            if out is None or out.pred_masks is None:
                continue
            scores[obj.obj_id] = float(out.object_score_logits.reshape(-1)[0])
            mask = out.pred_masks.to(state.device)
            if tuple(mask.shape[-2:]) != size:
                mask = F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
            consolidated[index:index + 1] = mask
        state.last_object_scores = scores
        return self._to_video_res(state, consolidated)

    # ------------------------------------------------------------------ propagation
    def _clear_memory_around(self, obj: ObjectState, frame_idx: int) -> None:
        reach = self._memory_stride * int(self.model.num_maskmem)
        for t in range(frame_idx - reach, frame_idx + reach + 1):
            obj.bank.non_cond.pop(t, None)

    def _preflight(self, state: InferenceState) -> None:
        """Encode prompted outputs into memory and move them into each object's bank."""
        if not state.objects:
            raise PromptError("no object has a prompt yet: add points, a box or a mask before propagating")
        for obj in state.objects:
            for is_cond in (False, True):
                for frame_idx, pending in list(obj.pending.items()):
                    if pending.is_cond != is_cond:
                        continue
                    if pending.output.maskmem_features is None:
                        self._encode_memory(state, frame_idx, pending.output)
                    (obj.bank.cond if is_cond else obj.bank.non_cond)[frame_idx] = pending.output
                    if self.clear_non_cond_mem_around_input:
                        self._clear_memory_around(obj, frame_idx)
            obj.pending.clear()
            if not obj.bank.cond:
                raise PromptError(f"object {obj.obj_id!r} has no prompt on any frame: prompt it or remove it")
            for frame_idx in obj.bank.cond:
                obj.bank.non_cond.pop(frame_idx, None)

    def _offload_far(self, state: InferenceState, obj: ObjectState, frame_idx: int) -> None:
        """Keep in RAM only the outputs the next steps read as spatial memory (near this frame and prompts)."""
        obj.bank.offload_far([frame_idx], self.memory_window(), state.store)

    @torch.inference_mode()
    def propagate_in_video(
        self,
        state: InferenceState,
        start_frame_idx: Optional[int] = None,
        max_frame_num_to_track: Optional[int] = None,
        reverse: bool = False,
        obj_ids: Optional[Collection[Any]] = None,
    ) -> Iterator[tuple[int, list[Any], torch.Tensor]]:
        """Track every object frame by frame; yields (frame_idx, obj_ids, (N, 1, H, W) mask logits).

        Stops where the consumer stops iterating; every yielded frame is fully recorded first,
        so the session stays consistent and can be resumed or corrected. `obj_ids` (an
        extension of the official API): track only these objects; it is read at every frame,
        so the caller may add or remove objects while iterating. The others yield their stored
        output on that frame, or "no object" (NO_OBJ_SCORE) where they have none.
        """
        self._preflight(state)
        num_frames = state.num_frames
        if start_frame_idx is None:
            start_frame_idx = min(t for obj in state.objects for t in obj.bank.cond)
        start_frame_idx = self._check_frame_idx(state, start_frame_idx)
        if max_frame_num_to_track is None:
            max_frame_num_to_track = num_frames
        if reverse:
            end_frame_idx = max(start_frame_idx - max_frame_num_to_track, 0)
            order = range(start_frame_idx, end_frame_idx - 1, -1) if start_frame_idx > 0 else range(0)
        else:
            end_frame_idx = min(start_frame_idx + max_frame_num_to_track, num_frames - 1)
            order = range(start_frame_idx, end_frame_idx + 1)

        for frame_idx in order:
            active = [obj for obj in state.objects if obj_ids is None or obj.obj_id in obj_ids]
            to_track = [obj for obj in active if frame_idx not in obj.bank.cond]
            tracked = dict(zip(map(id, to_track), self._track_frame(state, to_track, frame_idx, reverse)))
            masks, scores = [], {}
            for obj in state.objects:
                out = obj.bank.cond.get(frame_idx)
                if id(obj) in tracked:
                    out = tracked[id(obj)]
                    obj.bank.non_cond[frame_idx] = out
                elif out is not None and obj in active and self.clear_non_cond_mem_around_input:
                    self._clear_memory_around(obj, frame_idx)
                if obj in active:
                    obj.tracked_reverse[frame_idx] = reverse
                elif out is None:
                    out = obj.bank.non_cond.get(frame_idx)
                if out is None:
                    masks.append(self._no_object_logits(state))
                    continue
                masks.append(out.pred_masks.to(state.device))
                scores[obj.obj_id] = float(out.object_score_logits.reshape(-1)[0])
            for obj in active:
                self._offload_far(state, obj, frame_idx)
            video_res_masks = self._to_video_res(state, torch.cat(masks, dim=0))
            state.last_object_scores = scores
            yield frame_idx, state.obj_ids, video_res_masks

    def _no_object_logits(self, state: InferenceState) -> torch.Tensor:
        side = self.image_size // 4
        return torch.full((1, 1, side, side), NO_OBJ_SCORE, dtype=torch.float32, device=state.device)
