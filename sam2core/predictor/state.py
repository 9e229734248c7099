"""Typed state of a streaming SAM 2 session: per-frame outputs, per-object memory bank, feature cache.

Large tensors that the model will not read soon (spatial memories and mask logits of frames
far from the frame being tracked, image features of frames not visited lately) move to a
`TensorStore`, a private temporary folder, and come back when read: the session's resident
memory stays flat in the number of frames while every frame's output stays available for a
later correction, as in the official predictor (which keeps everything in memory).
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from sam2core.frames import FrameSource

_keys = itertools.count()


def _discard_file(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


class TensorStore:
    """Tensors kept in files of a private temporary folder (created on first use, removed with the store).

    `root`: where to create the folder (None: the system temporary directory). Pass
    `root=False` to keep the tensors in RAM instead (same interface, no files).
    """

    def __init__(self, root: Optional[Path] | bool = None) -> None:
        self.in_ram = root is False
        self._root = None if root in (None, False) else Path(root)
        self._folder: Optional[Path] = None
        self._ram: dict[str, dict[str, torch.Tensor]] = {}
        self.bytes_written = 0
        self.num_reads = 0

    def new_key(self) -> str:
        return f"t{next(_keys)}"

    def _path(self, key: str) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="sam2core-", dir=self._root))
            weakref.finalize(self, shutil.rmtree, str(self._folder), True)
        return self._folder / f"{key}.pt"

    def put(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        """Store compact CPU copies of `tensors` under `key` (replacing what was there)."""
        cpu = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in tensors.items()}
        self.bytes_written += sum(t.numel() * t.element_size() for t in cpu.values())
        if self.in_ram:
            self._ram[key] = cpu
        else:
            torch.save(cpu, self._path(key))

    def get(self, key: str, device: torch.device) -> dict[str, torch.Tensor]:
        self.num_reads += 1
        if self.in_ram:
            return {name: t.to(device) for name, t in self._ram[key].items()}
        return torch.load(self._path(key), map_location=device, weights_only=True)

    def discard(self, key: str) -> None:
        if self.in_ram:
            self._ram.pop(key, None)
        elif self._folder is not None:
            _discard_file(self._folder / f"{key}.pt")

    def finalizer(self, key: str) -> Callable[[], None]:
        """A callable that discards `key` without keeping the store alive."""
        if self.in_ram:
            ram = self._ram
            return lambda: ram.pop(key, None)
        path = self._path(key)
        return lambda: _discard_file(path)


class FrameOutput:
    """What one object's tracking step on one frame leaves for later frames (batch of 1).

    Reads like the official compact output dict (`out["obj_ptr"]`), because the model's
    `track_step` looks memories up that way. The object pointer and score (a few hundred
    floats) always stay in RAM; the mask logits and spatial memory can be offloaded to a
    `TensorStore` and are read back transparently when accessed.
    """

    _HEAVY = ("pred_masks", "maskmem_features")

    def __init__(
        self,
        pred_masks: Optional[torch.Tensor],  # (1, 1, S/4, S/4) low-res mask logits
        obj_ptr: torch.Tensor,  # (1, C) object pointer
        object_score_logits: torch.Tensor,  # (1, 1) logit that the object is present
        maskmem_features: Optional[torch.Tensor] = None,  # (1, mem_dim, S/16, S/16); None until encoded
        maskmem_pos_enc: Optional[list[torch.Tensor]] = None,  # shared constant, same for every frame
    ) -> None:
        self.obj_ptr = obj_ptr
        self.object_score_logits = object_score_logits
        self.maskmem_pos_enc = maskmem_pos_enc
        self._heavy: Optional[dict[str, Optional[torch.Tensor]]] = {
            "pred_masks": pred_masks, "maskmem_features": maskmem_features}
        self._copy: Optional[tuple[TensorStore, str, tuple[str, ...], torch.device]] = None
        self._finalizer: Optional[weakref.finalize] = None

    # -- heavy tensors, loaded on access
    def _get_heavy(self, name: str) -> Optional[torch.Tensor]:
        if self._heavy is None:
            self.load()
        return self._heavy[name]

    def _set_heavy(self, name: str, value: Optional[torch.Tensor]) -> None:
        if self._heavy is None:
            self.load()
        self._heavy[name] = value
        self._drop_copy()  # the stored copy is stale now

    pred_masks = property(lambda self: self._get_heavy("pred_masks"),
                          lambda self, v: self._set_heavy("pred_masks", v))
    maskmem_features = property(lambda self: self._get_heavy("maskmem_features"),
                                lambda self, v: self._set_heavy("maskmem_features", v))

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __contains__(self, key: str) -> bool:
        return hasattr(self, key)

    @property
    def has_memory(self) -> bool:
        """Whether this output carries a spatial memory (in RAM or offloaded)."""
        if self._heavy is None:
            return "maskmem_features" in self._copy[2]
        return self._heavy["maskmem_features"] is not None

    @property
    def in_ram(self) -> bool:
        """Whether the mask logits and spatial memory are resident (not offloaded)."""
        return self._heavy is not None

    def offload(self, store: TensorStore) -> None:
        """Move the mask logits and spatial memory to `store` (written once; later calls only drop them)."""
        if self._heavy is None:
            return
        present = {k: v for k, v in self._heavy.items() if v is not None}
        if not present:
            return
        if self._copy is None:
            key = store.new_key()
            device = next(iter(present.values())).device
            store.put(key, present)
            self._copy = (store, key, tuple(present), device)
            self._finalizer = weakref.finalize(self, store.finalizer(key))
        self._heavy = None

    def load(self) -> None:
        """Bring offloaded tensors back into RAM (the stored copy stays valid)."""
        if self._heavy is not None:
            return
        store, key, names, device = self._copy
        tensors = store.get(key, device)
        self._heavy = {name: tensors.get(name) for name in self._HEAVY}

    def _drop_copy(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._copy = None


@dataclass
class MemoryBank:
    """One object's outputs keyed by frame: conditioning (prompted) frames and tracked frames.

    Every tracked output is kept (the official predictor keeps them all, and a correction
    reads the corrected frame's previous logits and its neighbours' memories); `offload_far`
    moves the large tensors of those the next step cannot read out of RAM.
    """

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

    def num_in_ram(self) -> int:
        """Outputs whose mask logits / spatial memory are resident."""
        return sum(out.in_ram for out in self.cond.values()) + sum(out.in_ram for out in self.non_cond.values())

    def offload_far(self, anchor_frames: list[int], keep_within: int, store: TensorStore) -> None:
        """Offload the large tensors of tracked outputs farther than `keep_within` frames from every anchor.

        Anchors: `anchor_frames` (the frame just tracked) and every conditioning frame.
        """
        anchors = list(anchor_frames) + list(self.cond)
        for frame_idx, out in self.non_cond.items():
            if out.in_ram and (not anchors or min(abs(frame_idx - a) for a in anchors) > keep_within):
                out.offload(store)

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
    vision_pos_embeds: list[torch.Tensor]  # per level (HW, 1, C); the same tensors for every frame
    feat_sizes: list[tuple[int, int]]


class FeatureCache:
    """Image features per frame: the last `capacity` frames in RAM (LRU), older ones in a `TensorStore`.

    A frame is encoded once per session (`num_computed` counts encoder runs); with no store,
    frames pushed out of RAM are forgotten and encoded again when revisited.
    `store_budget_bytes` bounds the stored features (least recently used dropped first).
    """

    def __init__(self, capacity: int, store: Optional[TensorStore] = None,
                 store_budget_bytes: Optional[int] = None) -> None:
        if capacity < 1:
            raise ValueError(f"feature cache size must be at least 1, got {capacity}")
        self.capacity = capacity
        self.store = store
        self.store_budget_bytes = store_budget_bytes
        self._entries: OrderedDict[int, FrameFeatures] = OrderedDict()
        self._stored: OrderedDict[int, tuple[str, list[torch.Tensor], list[tuple[int, int]], int, torch.device]] = \
            OrderedDict()
        self._stored_bytes = 0
        self.num_computed = 0
        self.num_loaded = 0

    def get_or_compute(self, frame_idx: int, compute: Callable[[int], FrameFeatures]) -> FrameFeatures:
        entry = self._entries.get(frame_idx)
        if entry is not None:
            self._entries.move_to_end(frame_idx)
            return entry
        stored = self._stored.get(frame_idx)
        if stored is not None:
            key, pos, sizes, _, device = stored
            self._stored.move_to_end(frame_idx)
            tensors = self.store.get(key, device)
            entry = FrameFeatures([tensors[f"feat{i}"] for i in range(len(pos))], pos, sizes)
            self.num_loaded += 1
        else:
            entry = compute(frame_idx)
            self.num_computed += 1
        self._entries[frame_idx] = entry
        while len(self._entries) > self.capacity:
            self._push_out(*self._entries.popitem(last=False))
        return entry

    def _push_out(self, frame_idx: int, entry: FrameFeatures) -> None:
        if self.store is None or frame_idx in self._stored:
            return
        tensors = {f"feat{i}": t for i, t in enumerate(entry.vision_feats)}
        size = sum(t.numel() * t.element_size() for t in entry.vision_feats)
        if self.store_budget_bytes is not None and size > self.store_budget_bytes:
            return
        key = self.store.new_key()
        self.store.put(key, tensors)
        self._stored[frame_idx] = (key, entry.vision_pos_embeds, entry.feat_sizes, size,
                                   entry.vision_feats[0].device)
        self._stored_bytes += size
        while self.store_budget_bytes is not None and self._stored_bytes > self.store_budget_bytes:
            _, (old_key, _, _, old_size, _) = self._stored.popitem(last=False)
            self.store.discard(old_key)
            self._stored_bytes -= old_size

    def __len__(self) -> int:
        """Frames whose features are in RAM."""
        return len(self._entries)

    def __contains__(self, frame_idx: int) -> bool:
        return frame_idx in self._entries or frame_idx in self._stored

    def clear(self) -> None:
        self._entries.clear()
        for key, *_ in self._stored.values():
            self.store.discard(key)
        self._stored.clear()
        self._stored_bytes = 0


@dataclass
class InferenceState:
    """A streaming session over one frame source: objects, their memory, a feature cache."""

    frames: FrameSource
    num_frames: int
    video_height: int
    video_width: int
    device: torch.device
    features: FeatureCache
    store: TensorStore = field(default_factory=TensorStore)  # offloaded outputs (and features)
    objects: list[ObjectState] = field(default_factory=list)
    maskmem_pos_enc: Optional[list[torch.Tensor]] = None  # same for every frame; stored once
    vision_pos_embeds: Optional[list[torch.Tensor]] = None  # same for every frame; stored once
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
