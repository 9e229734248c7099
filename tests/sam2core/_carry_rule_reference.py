"""TEST ORACLE: verbatim copy of sam2core/predictor/carry_rule.py at 78626a3 (full-frame carrying) for test_carry_rule_crop.py.

Only what the oracle runs is kept: the live `CarryConfig` is passed in, and the appearance
model is rebuilt from the live one's fields (no `learn`).
"""


from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch
from scipy import ndimage

from sam2core.predictor.carry_rule import CarryConfig  # noqa: F401  (the live config: the oracle reads its fields)

NO_OBJECT_LOGIT = -1024.0  # SAM 2's fill value for frames where an object is absent
APPEARANCE_BINS = 32
_SMALL_DISC = 4  # radius up to which dilation applies the disc directly (faster than a distance transform)


@dataclass
class AppearanceModel:
    """Intensity histograms of an object and of its surroundings on the frame it was prompted on.

    `posterior(values)` is P(object | intensity) with equal priors: near 1 for intensities seen
    only inside the object, near 0 for those seen only around it, 0.5 where both are alike.
    """

    object_hist: np.ndarray  # (APPEARANCE_BINS,) density
    ring_hist: np.ndarray  # (APPEARANCE_BINS,) density
    reference: float = 1.0  # mean posterior inside the prompted mask
    reference_core: float = 1.0  # mean posterior inside the prompted mask's core
    reference_loglik: float = 0.0  # mean log object density inside the prompted mask
    reference_contrast: float = 1.0  # intensity step across the prompted mask's edge
    reference_area: float = 1.0  # pixels of the prompted mask

    def signals(self, plane: torch.Tensor, mask: torch.Tensor) -> dict:
        """The mask against the prompted object's: posterior (whole, core), likelihood, edge contrast, area."""
        if not bool(mask.any()):
            return {"appearance": 0.0, "appearance_core": 0.0, "likelihood": -10.0, "contrast": 0.0, "prompt_area": 0.0}
        return {"appearance": self.mean_posterior(plane, mask) / self.reference,
                "prompt_area": float(mask.sum()) / self.reference_area,
                "appearance_core": self.mean_posterior(plane, core(mask)) / self.reference_core,
                "likelihood": self.mean_loglik(plane, mask) - self.reference_loglik,
                "contrast": edge_contrast(plane.float().clamp(0, 1), mask) / self.reference_contrast}

    def mean_loglik(self, plane: torch.Tensor, mask: torch.Tensor) -> float:
        if not bool(mask.any()):
            return -10.0
        bins = (plane[mask].float().clamp(0, 1) * (APPEARANCE_BINS - 1)).round().long()
        return float(torch.log(torch.from_numpy(self.object_hist)[bins]).mean())

    def posterior(self, values: torch.Tensor) -> torch.Tensor:
        bins = (values.float().clamp(0, 1) * (APPEARANCE_BINS - 1)).round().long()
        obj = torch.from_numpy(self.object_hist)[bins]
        ring = torch.from_numpy(self.ring_hist)[bins]
        return obj / (obj + ring)

    def mean_posterior(self, plane: torch.Tensor, mask: torch.Tensor) -> float:
        if not bool(mask.any()):
            return 0.0
        return float(self.posterior(plane[mask]).mean())


def bbox(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) inclusive of a non-empty bool mask."""
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of a `(H, W)` bool mask with a disc of `radius` pixels (`y² + x² <= r²`).

    Worked out in the mask's box grown by `radius` only: a small disc directly, a large one as the
    pixels within `radius` of the mask by the exact Euclidean distance transform (linear in the
    box, where a convolution with the disc costs `r²` a pixel: over a second for a liver at 512²).
    """
    if radius <= 0 or not bool(mask.any()):
        return mask
    r = int(radius)
    x0, y0, x1, y1 = bbox(mask)
    rows = slice(max(0, y0 - r), min(mask.shape[0], y1 + r + 1))
    cols = slice(max(0, x0 - r), min(mask.shape[1], x1 + r + 1))
    local = mask[rows, cols].cpu().numpy()
    if r <= _SMALL_DISC:
        offsets = np.arange(-r, r + 1) ** 2
        grown = ndimage.binary_dilation(local, np.add.outer(offsets, offsets) <= r * r)
    else:
        grown = ndimage.distance_transform_edt(~local) <= r  # distance to the nearest mask pixel, exact
    out = torch.zeros_like(mask)
    out[rows, cols] = torch.from_numpy(grown).to(mask.device)
    return out


def core(mask: torch.Tensor) -> torch.Tensor:
    """The mask without its edge (eroded by ~10 % of sqrt(area), at least a pixel); the mask if that empties it."""
    radius = max(1, int(round(0.1 * np.sqrt(float(mask.sum())))))
    inner = ~dilate(~mask, radius)
    return inner if bool(inner.any()) else mask


def edge_contrast(values: torch.Tensor, mask: torch.Tensor) -> float:
    """|mean intensity just inside the edge - just outside| (2-pixel bands), values in [0, 1]."""
    inside = mask & dilate(~mask, 2)
    outside = dilate(mask, 2) & ~mask
    if not bool(inside.any()) or not bool(outside.any()):
        return 0.0
    return abs(float(values[inside].mean()) - float(values[outside].mean()))


def mask_dice(a: torch.Tensor, b: torch.Tensor) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 1.0


@dataclass
class CarryResult:
    """The carried mask on a new frame: logits (> 0 object), presence score and the signals behind it."""

    logits: torch.Tensor  # (H, W), NO_OBJECT_LOGIT outside the allowed region
    score: float  # > 0 present
    iou: float  # the model's predicted IoU of the chosen mask
    signals: dict = field(default_factory=dict)


Decode = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def carry_mask(model: Any, embedding: Any, prev: torch.Tensor, config: CarryConfig, decode: Optional[Decode] = None,
               expected_iou: Optional[float] = None, plane: Optional[torch.Tensor] = None,
               appearance: Optional[AppearanceModel] = None) -> CarryResult:
    """Segment the object on a new frame from its previous mask `prev` `(H, W)` bool.

    `expected_iou`: the object's recent predicted IoU (a sharp drop below it means the box no
    longer holds the object). `plane` `(H, W)` in [0, 1] and `appearance` (learnt on the
    prompted frame) enable the appearance gate and signal.
    """
    decode = decode or (lambda emb, **p: tuple(t.float().cpu() for t in model.decode(emb, **p)))
    h, w = prev.shape
    area = int(prev.sum())
    size = float(np.sqrt(area))
    x0, y0, x1, y1 = bbox(prev)
    if config.dilation_ratio is None:
        allowed = torch.ones_like(prev)
    else:
        allowed = dilate(prev, max(config.min_dilation_px, int(round(config.dilation_ratio * size))))
    use_appearance = plane is not None and appearance is not None
    shape_allowed = allowed  # the region the mask may take before the appearance gate
    if use_appearance and config.appearance_gate > 0:
        unlike = appearance.posterior(plane) < config.appearance_gate
        allowed = allowed & ~(unlike if config.gate_all else unlike & ~prev)

    def box_with(ratio: float) -> np.ndarray:
        margin = float(np.clip(ratio * size, config.min_margin_px, config.max_margin_px))
        return np.array([max(x0 - margin, 0), max(y0 - margin, 0),
                         min(x1 + margin, w - 1), min(y1 + margin, h - 1)], dtype=np.float32)

    boxes = np.stack([box_with(r) for r in config.margin_ratios])
    candidates = _decode_boxes(model, embedding, boxes, decode)
    if config.multimask:
        multi, multi_iou = decode(embedding, box=boxes[0], multimask=True)
        candidates += [(multi[k], float(multi_iou[k])) for k in range(multi.shape[0])]
    if config.mask_prompt:
        with_mask, with_mask_iou = decode(embedding, box=boxes[0], mask_input=prev.float() * 20.0 - 10.0)
        candidates.append((with_mask[0], float(with_mask_iou[0])))
    best = None
    masks = []
    for candidate, candidate_iou in candidates:
        candidate = candidate - config.mask_threshold
        mask = (candidate > 0) & allowed
        masks.append(mask)
        value = candidate_iou + config.agreement_weight * mask_dice(mask, prev)
        if use_appearance and config.appearance_weight:
            value += config.appearance_weight * appearance.mean_posterior(plane, mask) / appearance.reference
        if best is None or value > best[0]:
            best = (value, candidate, mask, candidate_iou)
    _, logits, mask, iou = best
    raw_area = int((logits > 0).sum())
    judged = ((logits > 0) & shape_allowed) if config.signals_before_gate else mask
    logits = torch.where(allowed, logits, torch.full_like(logits, NO_OBJECT_LOGIT))
    new_area = int(mask.sum())
    signals = {
        "iou": float(iou),
        "expected_iou": float("nan") if expected_iou is None else float(expected_iou),
        "area_ratio": new_area / max(area, 1),
        "overlap": new_area / max(raw_area, 1),
        "area_px": float(new_area),
        "agreement": float(np.mean([mask_dice(masks[0], m) for m in masks[1:]])) if len(masks) > 1 else 1.0,
    }
    if use_appearance:
        signals.update(appearance.signals(plane, judged))
    else:
        signals.update({"appearance": 1.0, "appearance_core": 1.0, "likelihood": 0.0, "contrast": 1.0, "prompt_area": 1.0})
    return CarryResult(logits, presence_score(signals, config), float(iou), signals)


def _decode_boxes(model: Any, embedding: Any, boxes: np.ndarray, decode: Decode) -> list:
    """Decode B boxes on one embedding: in one call when the model batches, else one by one."""
    batch = getattr(model, "decode_batch", None)
    if batch is not None:
        logits, iou = batch(embedding, boxes)
        logits, iou = logits.float().cpu(), iou.float().cpu().reshape(-1)
        return [(logits[k], float(iou[k])) for k in range(len(boxes))]
    out = []
    for box in boxes:
        logits, iou = decode(embedding, box=box)
        out.append((logits[0], float(iou[0])))
    return out


def presence_score(signals: dict, config: CarryConfig) -> float:
    """Presence (> 0) from the carried mask's signals: the weakest margin above its threshold."""
    new_area = signals["area_px"]
    if not config.stop:
        return float(new_area - max(config.min_area_px, 1) + 1) if new_area > 0 else -1.0
    min_iou = config.min_iou
    expected = signals.get("expected_iou", float("nan"))
    if expected == expected:
        min_iou = max(min_iou, expected - config.iou_drop)
    margins = [
        (signals["iou"] - min_iou) * 10.0,
        (signals["overlap"] - config.min_overlap) * 10.0,
        (signals["area_ratio"] - config.min_area_ratio) * 10.0,
        (signals["appearance"] - config.min_appearance) * 10.0,
        (signals.get("appearance_core", 1.0) - config.min_appearance_core) * 10.0,
        (signals.get("likelihood", 0.0) - config.min_likelihood) * 10.0,
        (signals.get("contrast", 1.0) - config.min_contrast) * 10.0,
        float(new_area - config.min_area_px),
    ]
    if config.min_prompt_area > 0:
        margins.append((signals.get("prompt_area", 1.0) - config.min_prompt_area) * 100.0)
    return float(min(margins))
