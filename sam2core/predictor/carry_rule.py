"""How an image model's mask on one frame becomes the object's mask on the next, and when it is gone.

An image model (LiteMedSAM) has no memory: each object's mask on one frame is turned into
box prompts on the next frame in the direction of travel. Two things decide 3D quality:

- **carrying**: candidate boxes around the previous mask (margins scaled to the object's
  size), the chosen mask kept inside a dilation of the previous mask, and new pixels whose
  intensity looks like the object's surroundings rather than the object (learnt on the
  prompted frame, `AppearanceModel`) dropped, so that a mask cannot creep slice by slice
  into neighbouring tissue of another intensity;
- **stopping**: signals that do not depend on one scan's scale — the model's predicted IoU
  against its recent median, the area against the previous frame, the appearance of the new
  mask against the prompted object's — each compared with a threshold; the weakest margin
  is the presence score (> 0 present). The thresholds are chosen by leave-one-source-out
  cross-validation on the dev set (`benchmarks/fit_stop_rule.py`, docs/propagation.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import numpy as np
import torch
from scipy import ndimage

NO_OBJECT_LOGIT = -1024.0  # SAM 2's fill value for frames where an object is absent
APPEARANCE_BINS = 32
_SMALL_DISC = 4  # radius up to which dilation applies the disc directly (faster than a distance transform)


# `CarryConfig.keep_ends` -> the criteria an absent slice may fail and still be kept where a direction ends
END_LOOSENED = {
    "none": None,
    "trimmed": ("min_overlap",),  # the gate and the dilation limit let less than min_overlap of the model's mask through
    "small": ("min_overlap", "min_area_ratio", "min_prompt_area"),  # ... or the mask shrank: an end getting small
}


@dataclass(frozen=True)
class CarryConfig:
    """How one frame's mask is carried to the next (sizes relative to sqrt(mask area) in pixels).

    `CarryConfig()` is the default rule; `CarryConfig.plain()` the baseline of plain box
    carrying (previous mask's box, no margin, no constraint, no stop).
    """

    margin_ratios: tuple[float, ...] = (0.0, 0.12, 0.25)  # candidate boxes: margin = ratio * sqrt(area)
    multimask: bool = False  # the first box's three multimask outputs are candidates too
    mask_prompt: bool = False  # first box + previous mask as mask prompt is a candidate too
    min_margin_px: float = 1.0
    max_margin_px: float = 30.0
    dilation_ratio: Optional[float] = 0.12  # new mask within prev mask dilated by this (None: no constraint)
    min_dilation_px: int = 2
    agreement_weight: float = 0.5  # candidate value = predicted IoU + weight * Dice with prev mask ...
    appearance_weight: float = 0.0  # ... + weight * the candidate's object posterior / the prompted mask's
    appearance_gate: float = 0.15  # new pixels (outside prev) with object posterior below this are dropped ...
    gate_all: bool = True  # ... or every pixel of the carried mask (True), not only the new ones
    signals_before_gate: bool = False  # appearance signals of the model's mask before that gate (True) or after
    mask_threshold: float = 0.5  # logits above this are the object (yielded logits are shifted by it)
    stop: bool = True  # False: present while the mask is not empty (no stop rule)
    # ---- stop rule (presence margins). The carrying variant and these thresholds were chosen
    # together on a grid by leave-one-source-out cross-validation on the dev set
    # (benchmarks/fit_stop_rule.py, docs/propagation.md): appearance and intensity likelihood
    # against the prompted mask, area against the previous and the prompted mask; the
    # predicted-IoU criteria did not help on scans from other sources and are off.
    min_iou: float = 0.0  # gone below this predicted IoU (0: off) ...
    iou_drop: float = 1.0  # ... or this far below its recent median (1: off)
    iou_history: int = 3  # frames in that median
    min_overlap: float = 0.5  # fraction of the raw new mask kept (inside the dilated prev mask, past the gate)
    min_region_overlap: float = 0.0  # ... inside the dilated prev mask, before the gate (0: off; 1 without dilation)
    min_area_ratio: float = 0.3  # new area / prev area; below: gone (0: off)
    min_appearance: float = 0.5  # new mask's object posterior / the prompted mask's; below: gone
    min_appearance_core: float = 0.0  # the same on the mask's core (edge pixels eroded); below: gone (0: off)
    min_likelihood: float = -2.0  # mean log-density under the object's histogram minus the prompted mask's (nats)
    min_contrast: float = 0.0  # intensity step across the mask's edge / the prompted mask's; below: gone (0: off)
    min_prompt_area: float = 0.05  # mask area / the prompted mask's area; below: gone (0: off)
    min_area_px: int = 4
    absent_slices: int = 2  # a direction ends after this many absent slices (`volume.Session`'s default)
    keep_ends: str = "trimmed"  # where a direction ends, keep its absent slices that failed only on END_LOOSENED[...]
    lookback: int = 2  # frames back to find a present mask to carry from

    def __post_init__(self) -> None:
        if self.keep_ends not in END_LOOSENED:
            raise ValueError(f"CarryConfig.keep_ends must be one of {sorted(END_LOOSENED)}; got {self.keep_ends!r}")

    @classmethod
    def plain(cls) -> "CarryConfig":
        """Plain box carrying: the previous mask's tight box, nothing else (a baseline)."""
        return cls(margin_ratios=(0.0,), min_margin_px=0.0, dilation_ratio=None, appearance_gate=0.0,
                   stop=False, lookback=1)


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

    @classmethod
    def learn(cls, plane: torch.Tensor, mask: torch.Tensor) -> Optional["AppearanceModel"]:
        """From a `(H, W)` frame channel in [0, 1] and the object's bool mask on it."""
        area = int(mask.sum())
        if area < 4:
            return None
        ring = dilate(mask, max(3, int(round(0.25 * np.sqrt(area))))) & ~mask
        if int(ring.sum()) < 4:
            return None
        values = plane.float().clamp(0, 1)
        model = cls(_density(values[mask]), _density(values[ring]), reference_area=float(area))
        model.reference = max(model.mean_posterior(plane, mask), 1e-3)
        model.reference_core = max(model.mean_posterior(plane, core(mask)), 1e-3)
        model.reference_loglik = model.mean_loglik(plane, mask)
        model.reference_contrast = max(edge_contrast(values, mask), 1e-3)
        return model

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


def _density(values: torch.Tensor) -> np.ndarray:
    """Histogram of values in [0, 1], smoothed over neighbouring bins, with a floor (never 0)."""
    hist = torch.histc(values.float(), bins=APPEARANCE_BINS, min=0.0, max=1.0).numpy().astype(np.float64)
    hist = np.convolve(hist, [0.25, 0.5, 0.25], mode="same")
    hist = hist / max(hist.sum(), 1.0)
    return (hist + 1e-3 / APPEARANCE_BINS).astype(np.float32)


def bbox(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) inclusive of a non-empty bool mask."""
    local = mask.cpu().numpy()  # NumPy's any on bool is ~10x torch's at 1024²
    rows = np.flatnonzero(local.any(axis=1))
    cols = np.flatnonzero(local[rows[0]:rows[-1] + 1].any(axis=0))
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
    rows, cols = _window(bbox(mask), r, mask.shape)
    local = mask[rows, cols].cpu().numpy()
    if r <= _SMALL_DISC:
        offsets = np.arange(-r, r + 1) ** 2
        grown = ndimage.binary_dilation(local, np.add.outer(offsets, offsets) <= r * r)
    else:
        grown = ndimage.distance_transform_edt(~local) <= r  # distance to the nearest mask pixel, exact
    out = torch.zeros_like(mask)
    out[rows, cols] = torch.from_numpy(grown).to(mask.device)
    return out


def _window(box: tuple[int, int, int, int], pad: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """(rows, cols) of the box `(x0, y0, x1, y1)` grown by `pad` pixels, clipped to a `(H, W)` frame."""
    x0, y0, x1, y1 = box
    return (slice(max(0, y0 - pad), min(shape[0], y1 + pad + 1)),
            slice(max(0, x0 - pad), min(shape[1], x1 + pad + 1)))


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
    area = int(np.count_nonzero(prev.cpu().numpy()))
    size = float(np.sqrt(area))
    x0, y0, x1, y1 = bbox(prev)
    # Everything outside `allowed` (prev dilated) is NO_OBJECT_LOGIT: masks, gate and signals are
    # worked out in its box (`rows`, `cols`) only; the same values as on the whole frame.
    if config.dilation_ratio is None:
        rows, cols = slice(0, h), slice(0, w)
        allowed = torch.ones_like(prev)
    else:
        radius = max(config.min_dilation_px, int(round(config.dilation_ratio * size)))
        rows, cols = _window((x0, y0, x1, y1), max(radius, 0), (h, w))
        allowed = dilate(prev[rows, cols], radius)
    prev_local = prev[rows, cols]
    plane_local = plane[rows, cols] if plane is not None else None
    use_appearance = plane is not None and appearance is not None
    shape_allowed = allowed  # the region the mask may take before the appearance gate
    if use_appearance and config.appearance_gate > 0:
        unlike = appearance.posterior(plane_local) < config.appearance_gate
        allowed = allowed & ~(unlike if config.gate_all else unlike & ~prev_local)

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
        local = candidate[rows, cols] - config.mask_threshold
        mask = (local > 0) & allowed
        masks.append(mask)
        value = candidate_iou + config.agreement_weight * mask_dice(mask, prev_local)
        if use_appearance and config.appearance_weight:
            value += config.appearance_weight * appearance.mean_posterior(plane_local, mask) / appearance.reference
        if best is None or value > best[0]:
            best = (value, candidate, local, mask, candidate_iou)
    _, candidate, local, mask, iou = best
    raw_area = int((candidate - config.mask_threshold > 0).sum())
    in_region = (local > 0) & shape_allowed  # the model's mask inside the dilated prev mask, before the gate
    judged = in_region if config.signals_before_gate else mask
    logits = torch.full_like(candidate, NO_OBJECT_LOGIT)
    logits[rows, cols] = torch.where(allowed, local, torch.full_like(local, NO_OBJECT_LOGIT))
    new_area = int(mask.sum())
    signals = {
        "iou": float(iou),
        "expected_iou": float("nan") if expected_iou is None else float(expected_iou),
        "area_ratio": new_area / max(area, 1),
        "overlap": new_area / max(raw_area, 1),
        "region_overlap": int(in_region.sum()) / max(raw_area, 1),
        "area_px": float(new_area),
        "agreement": float(np.mean([mask_dice(masks[0], m) for m in masks[1:]])) if len(masks) > 1 else 1.0,
    }
    if use_appearance:
        signals.update(_appearance_signals(appearance, plane, judged, rows, cols))
    else:
        signals.update({"appearance": 1.0, "appearance_core": 1.0, "likelihood": 0.0, "contrast": 1.0, "prompt_area": 1.0})
    return CarryResult(logits, presence_score(signals, config), float(iou), signals)


def _appearance_signals(appearance: AppearanceModel, plane: torch.Tensor, judged: torch.Tensor, rows: slice,
                        cols: slice) -> dict:
    """`appearance.signals` of a mask given in the window (`rows`, `cols`) of the frame, worked out near the mask.

    The mask's box grown by 2 pixels (clipped to the frame) holds the outer edge band, and the
    erosions (core, inner band) see the same: a pixel outside the mask within r of a mask pixel
    implies one in the ring just outside the mask's box that is no farther, so they equal the whole frame's.
    """
    if not bool(judged.any()):
        return appearance.signals(plane[rows, cols], judged)
    jx0, jy0, jx1, jy1 = bbox(judged)
    box = (jx0 + cols.start, jy0 + rows.start, jx1 + cols.start, jy1 + rows.start)
    near_rows, near_cols = _window(box, 2, plane.shape)
    near = torch.zeros((near_rows.stop - near_rows.start, near_cols.stop - near_cols.start), dtype=judged.dtype,
                       device=judged.device)
    top, bottom = max(near_rows.start, rows.start), min(near_rows.stop, rows.stop)
    left, right = max(near_cols.start, cols.start), min(near_cols.stop, cols.stop)
    near[top - near_rows.start:bottom - near_rows.start, left - near_cols.start:right - near_cols.start] = \
        judged[top - rows.start:bottom - rows.start, left - cols.start:right - cols.start]
    return appearance.signals(plane[near_rows, near_cols], near)


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


def kept_at_end(signals: dict, config: CarryConfig) -> bool:
    """Whether an absent slice where a direction ends keeps its mask (`config.keep_ends`).

    Its mask passed every criterion but those `END_LOOSENED[config.keep_ends]` names: what is
    left looks like the object (intensity, predicted IoU), only trimmed or small — a tapering
    end seen through partial volume — so the end is kept, and the direction still ends there.
    """
    loosened = END_LOOSENED[config.keep_ends]
    if loosened is None or not config.stop or not signals or signals.get("area_px", 0) <= 0:
        return False
    return presence_score(signals, replace(config, **{name: 0.0 for name in loosened})) > 0


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
    if config.min_region_overlap > 0:
        margins.append((signals.get("region_overlap", 1.0) - config.min_region_overlap) * 10.0)
    if config.min_prompt_area > 0:
        margins.append((signals.get("prompt_area", 1.0) - config.min_prompt_area) * 100.0)
    if any(m != m for m in margins):  # a NaN signal is not evidence of presence (as in the fit's grid)
        return -1.0
    return float(min(margins))
