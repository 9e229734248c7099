"""Typed state of a streaming SAM 2 session: per-frame outputs, per-object memory bank, feature cache."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from sam2core.frames import FrameSource


@dataclass
class FrameOutput:
    """What one object's tracking step on one frame leaves for later frames (batch of 1).

    Reads like the official compact output dict (`out["obj_ptr"]`), because the model's
    `track_step` looks memories up that way.
    """

    pred_masks: Optional[torch.Tensor]  # (1, 1, S/4, S/4) low-res mask logits; None once trimmed
    obj_ptr: torch.Tensor  # (1, C) object pointer
    object_score_logits: torch.Tensor  # (1, 1) logit that the object is present
    maskmem_features: Optional[torch.Tensor] = None  # (1, mem_dim, S/16, S/16); None until encoded or once trimmed
    maskmem_pos_enc: Optional[list[torch.Tensor]] = None  # shared constant, same for every frame

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __contains__(self, key: str) -> bool:
        return hasattr(self, key)

    @property
    def has_memory(self) -> bool:
        """Whether this output still carries its spatial memory (else it serves only its object pointer)."""
        return self.maskmem_features is not None

    def trim_to_pointer(self) -> None:
        """Drop the large tensors; keep the object pointer and score (a few hundred floats)."""
        self.maskmem_features = None
        self.maskmem_pos_enc = None
        self.pred_masks = None


@dataclass
class MemoryBank:
    """One object's outputs keyed by frame: conditioning (prompted) frames kept forever, the rest bounded."""

    cond: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond: dict[int, FrameOutput] = field(default_factory=dict)

    def get(self, frame_idx: int) -> Optional[FrameOutput]:
        """The stored output on a frame, conditioning first."""
        out = self.cond.get(frame_idx)
        return out if out is not None else self.non_cond.get(frame_idx)

    def as_output_dict(self) -> dict[str, dict[int, FrameOutput]]:
        """The `output_dict` view `model.track_step` reads memories from."""
        return {"cond_frame_outputs": self.cond, "non_cond_frame_outputs": self.non_cond}

    def num_stored(self) -> int:
        return len(self.cond) + len(self.non_cond)

    def num_with_memory(self) -> int:
        return sum(out.has_memory for out in self.cond.values()) + sum(
            out.has_memory for out in self.non_cond.values())

    def evict(self, anchor_frames: list[int], keep_memory_within: int, keep_pointer_within: int) -> None:
        """Bound the non-conditioning outputs to what the model can still read.

        An output within `keep_memory_within` frames of an anchor (the frame just tracked,
        every conditioning frame) keeps everything; within `keep_pointer_within` it keeps only
        its object pointer; farther away it is dropped.
        """
        anchors = list(anchor_frames) + list(self.cond)
        for frame_idx in list(self.non_cond):
            distance = min(abs(frame_idx - a) for a in anchors) if anchors else 0
            if distance <= keep_memory_within:
                continue
            if distance <= keep_pointer_within:
                self.non_cond[frame_idx].trim_to_pointer()
            else:
                del self.non_cond[frame_idx]

    def clear(self) -> None:
        self.cond.clear()
        self.non_cond.clear()


@dataclass
class PendingOutput:
    """An output from a prompt, not yet encoded into memory (done when propagation starts)."""

    output: FrameOutput
    is_cond: bool


@dataclass
class ObjectState:
    """Everything the session knows about one tracked object."""

    obj_id: Any
    point_inputs: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)  # frame → model-scale points
    mask_inputs: dict[int, torch.Tensor] = field(default_factory=dict)  # frame → (1, 1, S, S) mask
    bank: MemoryBank = field(default_factory=MemoryBank)
    pending: dict[int, PendingOutput] = field(default_factory=dict)  # frame → prompt output awaiting memory
    tracked_reverse: dict[int, bool] = field(default_factory=dict)  # frame → tracked in reverse?

    def clear_results(self) -> None:
        self.point_inputs.clear()
        self.mask_inputs.clear()
        self.bank.clear()
        self.pending.clear()
        self.tracked_reverse.clear()


@dataclass
class FrameFeatures:
    """Image-encoder features of one frame, prepared for `track_step` (batch of 1)."""

    vision_feats: list[torch.Tensor]  # per level (HW, 1, C)
    vision_pos_embeds: list[torch.Tensor]  # per level (HW, 1, C)
    feat_sizes: list[tuple[int, int]]


class FeatureCache:
    """LRU cache of `FrameFeatures`, at most `capacity` frames; counts encoder runs."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"feature cache size must be at least 1, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[int, FrameFeatures] = OrderedDict()
        self.num_computed = 0

    def get_or_compute(self, frame_idx: int, compute: Callable[[int], FrameFeatures]) -> FrameFeatures:
        entry = self._entries.get(frame_idx)
        if entry is not None:
            self._entries.move_to_end(frame_idx)
            return entry
        entry = compute(frame_idx)
        self.num_computed += 1
        self._entries[frame_idx] = entry
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, frame_idx: int) -> bool:
        return frame_idx in self._entries

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class InferenceState:
    """A streaming session over one frame source: objects, their memory, a feature cache."""

    frames: FrameSource
    num_frames: int
    video_height: int
    video_width: int
    device: torch.device
    features: FeatureCache
    objects: list[ObjectState] = field(default_factory=list)
    maskmem_pos_enc: Optional[list[torch.Tensor]] = None  # same for every frame; stored once
    last_object_scores: dict[Any, float] = field(default_factory=dict)
    frames_fetched: int = 0

    @property
    def obj_ids(self) -> list[Any]:
        return [obj.obj_id for obj in self.objects]

    def find(self, obj_id: Any) -> Optional[ObjectState]:
        for obj in self.objects:
            if obj.obj_id == obj_id:
                return obj
        return None
