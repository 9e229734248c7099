"""Streaming predictor for image models (LiteMedSAM): track objects by carrying each frame's result.

An image model has no memory, so each object's mask on one frame becomes the prompt of the
next frame in the direction of travel (`sam2core.predictor.carry_rule`: candidate boxes,
constraint, appearance gate, stop signals). Each frame is encoded once for all objects (LRU
cache of embeddings). Call shapes follow the official SAM 2 video predictor (see
docs/interfaces.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Collection, Iterator, Optional

import numpy as np
import torch

from sam2core.errors import PromptError
from sam2core.frames import FrameSource, as_frame_source
from sam2core.predictor.carry_rule import (
    NO_OBJECT_LOGIT,
    AppearanceModel,
    CarryConfig,
    carry_mask,
    kept_at_end,
)

@dataclass
class _Output:
    """One object's result on one frame: logits cropped to a window (float16), and its score."""

    r0: int
    c0: int
    logits: torch.Tensor  # (h, w) float16, cpu
    score: float
    frame_hw: tuple[int, int]
    iou: float = float("nan")  # the model's predicted IoU for this mask
    appearance: Optional[AppearanceModel] = None  # learnt where the object was prompted, carried along
    signals: dict = field(default_factory=dict)  # what the stop rule saw on this frame

    @classmethod
    def from_logits(cls, logits: torch.Tensor, score: float, pad: int = 4, iou: float = float("nan"),
                    **extra: Any) -> "_Output":
        h, w = logits.shape
        inside = logits > 0
        if not bool(inside.any()):
            return cls(0, 0, logits.new_zeros((0, 0), dtype=torch.float16).cpu(), score, (h, w), iou, **extra)
        rows = torch.nonzero(inside.any(dim=1)).flatten()
        cols = torch.nonzero(inside.any(dim=0)).flatten()
        r0, r1 = max(int(rows[0]) - pad, 0), min(int(rows[-1]) + 1 + pad, h)
        c0, c1 = max(int(cols[0]) - pad, 0), min(int(cols[-1]) + 1 + pad, w)
        return cls(r0, c0, logits[r0:r1, c0:c1].detach().to("cpu", torch.float16), score, (h, w), iou, **extra)

    @property
    def has_mask(self) -> bool:
        return self.logits.numel() > 0 and bool((self.logits > 0).any())

    @property
    def present(self) -> bool:
        return self.score > 0 and self.logits.numel() > 0 and bool((self.logits > 0).any())

    def full_logits(self) -> torch.Tensor:
        """`(H, W)` float32 logits; outside the stored window: NO_OBJECT_LOGIT."""
        out = torch.full(self.frame_hw, NO_OBJECT_LOGIT, dtype=torch.float32)
        h, w = self.logits.shape
        if h and w:
            out[self.r0:self.r0 + h, self.c0:self.c0 + w] = self.logits.float()
        return out

    def full_mask(self) -> torch.Tensor:
        """`(H, W)` bool mask `full_logits() > 0`, without the float32 frame in between."""
        out = torch.zeros(self.frame_hw, dtype=torch.bool)
        h, w = self.logits.shape
        if h and w:
            out[self.r0:self.r0 + h, self.c0:self.c0 + w] = self.logits > 0
        return out


def store_key(signature: str, frame: Any) -> str:
    from sam2core.predictor.embedding_store import frame_key

    return frame_key(signature, frame)


class CarryingPredictor:
    """Streaming predictor API (SAM 2 call shapes) for image models, by prompt carrying.

    `image_model` has `encode_image(frame)` and `decode(embedding, ...)`; `cache_size`
    embeddings are kept (LRU); `config` sets the carrying strategy (`CarryConfig`).
    `embedding_store`: an `EmbeddingStore` (or None) where embeddings persist on disk, looked
    up before encoding (see `sam2core.predictor.embedding_store`).
    """

    def __init__(self, image_model: Any, cache_size: int = 32, config: Optional[CarryConfig] = None,
                 embedding_store: Any = None, **overrides):
        if not hasattr(image_model, "encode_image") or not hasattr(image_model, "decode"):
            raise TypeError(f"{type(image_model).__name__} is not an image model (needs encode_image and decode)")
        self.model = image_model
        self.cache_size = max(1, int(cache_size))
        config = config or CarryConfig()
        if overrides:
            config = replace(config, **overrides)
        self.config = config
        self.embedding_store = embedding_store
        self._signature: Optional[tuple[tuple, str]] = None  # (the model's engine and precision, store signature)
        if embedding_store is not None:
            self._store_signature()  # a weights hash: worked out now, not on the first prompt
        self._encode_lock = threading.RLock()  # a background precompute and a prompt share the model

    # ------------------------------------------------------------------ state
    def init_state(self, frames: FrameSource) -> dict:
        """A tracking state over `frames` (`(T, 3, H, W)` tensor or `LazyFrames`)."""
        source = as_frame_source(frames)
        state = {"frames": source, "num_frames": len(source), "frame_hw": None,
                 "cache": OrderedDict(), "num_encoded": 0}
        self._clear(state)
        return state

    @staticmethod
    def _clear(state: dict) -> None:
        state["obj_ids"] = []
        state["inputs"] = {}  # obj -> frame -> dict(points, labels, box, mask)
        state["outputs"] = {}  # obj -> frame -> _Output
        state["last_scores"] = {}
        state["held"] = {}  # obj -> (first, last) frames where the object is known to be present

    def reset_state(self, state: dict) -> None:
        """Forget every object, prompt and result (cached embeddings are kept)."""
        self._clear(state)

    def remove_object(self, state: dict, obj_id: int) -> None:
        self._check_object(state, obj_id)
        state["obj_ids"].remove(obj_id)
        state["inputs"].pop(obj_id, None)
        state["outputs"].pop(obj_id, None)
        state["last_scores"].pop(obj_id, None)
        state["held"].pop(obj_id, None)

    def set_held_range(self, state: dict, obj_id: int, first: Optional[int], last: Optional[int]) -> None:
        """Frames `first..last` (inclusive) hold `obj_id` for sure (between its prompts, inside a user's extent).

        There carrying never dies: when no mask is left within `lookback` frames it carries from
        the nearest mask further back (the stop rule is off there, so a doubted one too). `None`
        clears the range.
        """
        self._check_object(state, obj_id)
        if first is None or last is None:
            state["held"].pop(obj_id, None)
        else:
            state["held"][obj_id] = (int(min(first, last)), int(max(first, last)))

    def kept_at_end(self, state: dict, obj_id: int, frame_idx: int) -> bool:
        """Whether `obj_id`'s absent result on `frame_idx` is kept where its direction ends
        (`CarryConfig.keep_ends`, `carry_rule.kept_at_end`)."""
        out = state["outputs"].get(obj_id, {}).get(frame_idx)
        return out is not None and out.has_mask and kept_at_end(out.signals, self.config)

    def _held(self, state: dict, obj: int, frame_idx: int) -> Optional[tuple[int, int]]:
        span = state.get("held", {}).get(obj)
        return span if span is not None and span[0] <= frame_idx <= span[1] else None

    def last_object_scores(self, state: dict) -> dict[int, float]:
        """Logit that each object is present on the last frame returned (> 0 present)."""
        return dict(state["last_scores"])

    @staticmethod
    def _check_object(state: dict, obj_id: int) -> None:
        if obj_id not in state["obj_ids"]:
            raise PromptError(f"unknown object id {obj_id}; known: {state['obj_ids']}")

    def _check_frame(self, state: dict, frame_idx: int) -> int:
        if not 0 <= int(frame_idx) < state["num_frames"]:
            raise PromptError(f"frame {frame_idx} is outside 0..{state['num_frames'] - 1}")
        return int(frame_idx)

    def _add_object(self, state: dict, obj_id: int) -> None:
        if obj_id not in state["obj_ids"]:
            state["obj_ids"].append(obj_id)
            state["inputs"][obj_id] = {}
            state["outputs"][obj_id] = {}

    # -------------------------------------------------------------- embedding
    def _embedding(self, state: dict, frame_idx: int) -> Any:
        return self._encoded(state, frame_idx)[0]

    def _plane(self, state: dict, frame_idx: int) -> torch.Tensor:
        """`(H, W)` first channel of the frame in [0, 1] (kept with its embedding)."""
        return self._encoded(state, frame_idx)[1]

    def encode_frame(self, state: dict, frame_idx: int) -> bool:
        """Make sure `frame_idx` is encoded (RAM LRU and store); True if the model had to run."""
        before = state["num_encoded"]
        self._encoded(state, self._check_frame(state, frame_idx))
        return state["num_encoded"] > before

    def is_encoded(self, state: dict, frame_idx: int) -> bool:
        """Whether `frame_idx`'s embedding is in the RAM LRU (without making the frame)."""
        return int(frame_idx) in state["cache"]

    def _encoded(self, state: dict, frame_idx: int) -> tuple[Any, torch.Tensor]:
        with self._encode_lock:
            cache: OrderedDict = state["cache"]
            if frame_idx in cache:
                cache.move_to_end(frame_idx)
                return cache[frame_idx]
            frame = state["frames"][frame_idx]
            state["frame_hw"] = tuple(int(v) for v in frame.shape[-2:])
            embedding = self._stored_or_encoded(state, frame_idx, frame)
            cache[frame_idx] = (embedding, torch.as_tensor(frame[0]).float().cpu())
            while len(cache) > self.cache_size:
                cache.popitem(last=False)
            return cache[frame_idx]

    def _stored_or_encoded(self, state: dict, frame_idx: int, frame: Any) -> Any:
        store = self.embedding_store
        if store is None:
            state["num_encoded"] += 1
            return self.model.encode_image(frame)
        from sam2core.predictor.embedding_store import group_id, join_embedding, split_embedding

        signature = self._store_signature()
        key = store_key(signature, frame)
        embedding = store.get(key)
        if embedding is not None:
            state["num_from_store"] = state.get("num_from_store", 0) + 1
            return embedding
        embedding = self.model.encode_image(frame)
        state["num_encoded"] += 1
        if "store_group" not in state:
            state["store_group"] = group_id(signature, state["num_frames"], key)
        store.put(key, embedding, state["store_group"], frame_idx, state["num_frames"])
        tensor, meta = split_embedding(embedding)  # the same float16 numbers whether encoded now or stored
        return join_embedding(tensor.to(torch.float16).to(tensor.device), meta)

    def _store_signature(self) -> str:
        """The model's store signature, worked out again only when its engine or precision changed."""
        from sam2core.predictor.embedding_store import model_signature

        engine = (getattr(self.model, "engine", None),
                  getattr(self.model, "engine_precision", getattr(self.model, "precision", None)))
        if self._signature is None or self._signature[0] != engine:
            self._signature = (engine, model_signature(self.model))
        return self._signature[1]

    def _decode(self, embedding: Any, **prompts) -> tuple[torch.Tensor, torch.Tensor]:
        logits, iou = self.model.decode(embedding, **prompts)
        return logits.float().cpu(), iou.float().cpu()

    # ---------------------------------------------------------------- prompts
    def add_new_points_or_box(self, state: dict, frame_idx: int, obj_id: int, points=None, labels=None,
                              box=None, clear_old_points: bool = True):
        """Prompt `obj_id` on `frame_idx`: points `(N, 2)` `(x, y)` with labels, and/or box `(x0, y0, x1, y1)`."""
        frame_idx = self._check_frame(state, frame_idx)
        if points is None and box is None:
            raise PromptError("give points (with labels) or a box")
        pts = None if points is None else np.asarray(points, dtype=np.float32).reshape(-1, 2)
        lab = None
        if pts is not None:
            if labels is None:
                raise PromptError("points need labels (1 positive, 0 negative)")
            lab = np.asarray(labels, dtype=np.int64).reshape(-1)
            if lab.shape[0] != pts.shape[0]:
                raise PromptError(f"got {pts.shape[0]} points but {lab.shape[0]} labels")
        self._add_object(state, obj_id)
        old = state["inputs"][obj_id].get(frame_idx)
        if not clear_old_points and old is not None and old.get("mask") is None:
            if box is None:
                box = old.get("box")
            if old.get("points") is not None and pts is not None:
                pts = np.concatenate([old["points"], pts])
                lab = np.concatenate([old["labels"], lab])
            elif old.get("points") is not None:
                pts, lab = old["points"], old["labels"]
        box_arr = None if box is None else np.asarray(box, dtype=np.float32).reshape(4)
        state["inputs"][obj_id][frame_idx] = {"points": pts, "labels": lab, "box": box_arr, "mask": None}
        embedding = self._embedding(state, frame_idx)
        multimask = box_arr is None and pts is not None and len(pts) == 1
        logits, iou = self._decode(embedding, points=pts, labels=lab, box=box_arr, multimask=multimask)
        best = int(torch.argmax(iou)) if multimask else 0
        shifted = logits[best] - self.config.mask_threshold
        appearance = AppearanceModel.learn(self._plane(state, frame_idx), shifted > 0)
        output = _Output.from_logits(shifted, score=10.0, iou=float(iou[best]), appearance=appearance)
        if not bool((shifted > 0).any()):
            output.score = -10.0
        state["outputs"][obj_id][frame_idx] = output
        return self._frame_result(state, frame_idx)

    def add_new_mask(self, state: dict, frame_idx: int, obj_id: int, mask):
        """Prompt `obj_id` on `frame_idx` with a bool mask `(H, W)`; it is taken as that frame's result."""
        frame_idx = self._check_frame(state, frame_idx)
        mask_t = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask).bool().cpu()
        if mask_t.ndim != 2:
            raise PromptError(f"mask must be (H, W); got shape {tuple(mask_t.shape)}")
        if state["frame_hw"] is not None and tuple(mask_t.shape) != state["frame_hw"]:
            raise PromptError(f"mask has shape {tuple(mask_t.shape)}; frames are {state['frame_hw']}")
        self._add_object(state, obj_id)
        state["frame_hw"] = tuple(mask_t.shape)
        state["inputs"][obj_id][frame_idx] = {"points": None, "labels": None, "box": None, "mask": mask_t}
        logits = mask_t.float() * 20.0 - 10.0
        appearance = None
        if state["frames"] is not None and mask_t.any():
            appearance = AppearanceModel.learn(self._plane(state, frame_idx), mask_t)
        state["outputs"][obj_id][frame_idx] = _Output.from_logits(logits, score=10.0 if mask_t.any() else -10.0,
                                                                  appearance=appearance)
        return self._frame_result(state, frame_idx)

    def _frame_result(self, state: dict, frame_idx: int):
        """(frame_idx, obj_ids, (num_objects, 1, H, W) logits) from the stored outputs."""
        hw = state["frame_hw"]
        rows = []
        for obj in state["obj_ids"]:
            out = state["outputs"][obj].get(frame_idx)
            rows.append(out.full_logits() if out is not None else torch.full(hw, NO_OBJECT_LOGIT))
            state["last_scores"][obj] = out.score if out is not None else NO_OBJECT_LOGIT
        masks = torch.stack(rows)[:, None] if rows else torch.zeros((0, 1, *hw))
        return frame_idx, list(state["obj_ids"]), masks

    # ------------------------------------------------------------ propagation
    def propagate_in_video(self, state: dict, start_frame_idx: Optional[int] = None,
                           max_frame_num_to_track: Optional[int] = None,
                           reverse: bool = False,
                           obj_ids: Optional[Collection[int]] = None) -> Iterator[tuple[int, list, torch.Tensor]]:
        """Yield `(frame_idx, obj_ids, mask_logits)` from `start_frame_idx` onward (or backward).

        Prompted frames yield their prompt's result; other frames carry each object's result
        from the previous frame in the direction of travel. Results are stored before each
        yield, so the consumer may stop at any time. Unlike SAM 2, a frame where the object
        is judged absent (`last_object_scores` <= 0) still yields the model's best guess
        (the consumer decides whether a short absence was a doubt or the object's end).

        `obj_ids` (an extension of the official API): track only these objects; it is read
        at every frame, so the caller may remove objects from it while iterating (e.g. once
        they have left the volume). Others yield their stored result, or "absent".
        """
        if not state["obj_ids"]:
            raise PromptError("no object has a prompt yet; add points, a box or a mask first")
        prompted = sorted({f for obj in state["obj_ids"] for f in state["inputs"][obj]})
        if start_frame_idx is None:
            start_frame_idx = prompted[-1] if reverse else prompted[0]
        start = self._check_frame(state, start_frame_idx)
        n = state["num_frames"]
        step = -1 if reverse else 1
        end = 0 if reverse else n - 1
        if max_frame_num_to_track is not None:
            end = max(start - max_frame_num_to_track, 0) if reverse else min(start + max_frame_num_to_track, n - 1)
        for frame_idx in range(start, end + step, step):
            if frame_idx != start or not all(frame_idx in state["outputs"][o] for o in state["obj_ids"]):
                for obj in state["obj_ids"]:
                    if obj_ids is not None and obj not in obj_ids:
                        continue
                    if frame_idx in state["inputs"][obj] and frame_idx in state["outputs"][obj]:
                        continue  # a prompted frame keeps its prompt's result
                    state["outputs"][obj][frame_idx] = self._track(state, obj, frame_idx, step)
            yield self._frame_result(state, frame_idx)

    def _carry_source(self, state: dict, obj: int, frame_idx: int, step: int) -> tuple[Optional[_Output], list]:
        """The output to carry onto `frame_idx`, and the predicted IoUs of recent present outputs.

        The last *present* output within `lookback` frames (a doubted slice is skipped, so a
        thin object can recover from a bad slice); when there is none, the last output that
        still has a mask: whether a run of doubted slices ends the object is the consumer's
        decision (`volume.Session`: `absent_slices`, and never between two prompts or inside a
        user's extent), so carrying must not die before it.
        """
        outputs = state["outputs"][obj]
        source, fallback, ious = None, None, []
        for back in range(1, self.config.lookback + self.config.iou_history + 1):
            out = outputs.get(frame_idx - back * step)
            if out is None or not out.has_mask:
                continue
            if fallback is None and back <= self.config.lookback:
                fallback = out
            if not out.present:
                continue
            if source is None and back <= self.config.lookback:
                source = out
            if not np.isnan(out.iou) and len(ious) < self.config.iou_history:
                ious.append(out.iou)
        held = self._held(state, obj, frame_idx)
        if source is None and fallback is None and held is not None:
            # the object is there for sure: carry from the last mask behind, however far
            edge = held[0] if step > 0 else held[1]
            for index in range(frame_idx - step, edge - step, -step):
                out = outputs.get(index)
                if out is not None and out.has_mask:
                    source = out
                    break
        return (source if source is not None else fallback), ious

    def _track(self, state: dict, obj: int, frame_idx: int, step: int) -> _Output:
        """Carry `obj` onto `frame_idx` from its last present mask behind it (in the direction of travel)."""
        source, ious = self._carry_source(state, obj, frame_idx, step)
        if source is None:
            hw = state["frame_hw"]
            return _Output(0, 0, torch.zeros((0, 0), dtype=torch.float16), NO_OBJECT_LOGIT, hw)
        embedding, plane = self._encoded(state, frame_idx)
        prev = source.full_mask()
        expected_iou = float(np.median(ious)) if ious else None
        result = carry_mask(self.model, embedding, prev, self.config, decode=self._decode,
                            expected_iou=expected_iou, plane=plane, appearance=source.appearance)
        return _Output.from_logits(result.logits, result.score, iou=result.iou, appearance=source.appearance,
                                   signals=result.signals)
