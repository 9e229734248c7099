"""Overlap metrics between label volumes: Dice and per-object figures."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two masks (non-zero = inside); 1.0 when both are empty."""
    a = np.asarray(a) != 0
    b = np.asarray(b) != 0
    if a.shape != b.shape:
        raise ValueError(f"cannot compare masks of shapes {a.shape} and {b.shape}")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def per_object_metrics(pred: np.ndarray, ref: np.ndarray, labels: Optional[Iterable[int]] = None,
                       spacing_mm: Optional[Sequence[float]] = None) -> dict[int, dict[str, float]]:
    """Per label: Dice, voxels in prediction and reference, and volumes in ml when `spacing_mm` is given.

    `labels` defaults to every non-zero value found in either volume. Compare one predicted
    label against a different reference label with `dice(pred == p, ref == r)`.
    """
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    if labels is None:
        labels = sorted((set(np.unique(pred)) | set(np.unique(ref))) - {0})
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0 if spacing_mm is not None else None
    out: dict[int, dict[str, float]] = {}
    for label in labels:
        p = pred == label
        r = ref == label
        row = {"dice": dice(p, r), "pred_voxels": float(p.sum()), "ref_voxels": float(r.sum())}
        if voxel_ml is not None:
            row["pred_ml"] = row["pred_voxels"] * voxel_ml
            row["ref_ml"] = row["ref_voxels"] * voxel_ml
        out[int(label)] = row
    return out
