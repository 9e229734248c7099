"""npe2 writer: a labels layer saved with its scan's exact geometry (NIfTI, NRRD, MHA, DICOM-SEG)."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_sam2.layers import SCAN_KEY


def scan_from_layer_meta(data: np.ndarray, meta: dict[str, Any]):
    """The source `Scan` kept in the layer metadata, else one rebuilt from scale/translate/affine."""
    scan = (meta.get("metadata") or {}).get(SCAN_KEY)
    if scan is not None:
        return scan
    import scanio

    reverse = np.eye(3)[::-1]
    scale_zyx = np.asarray(meta.get("scale", (1.0, 1.0, 1.0)), dtype=float)[-3:]
    translate_zyx = np.asarray(meta.get("translate", (0.0, 0.0, 0.0)), dtype=float)[-3:]
    affine = np.asarray(meta.get("affine", np.eye(4)), dtype=float)
    if affine.shape != (4, 4):
        affine = np.eye(4)
    rotation_zyx = affine[:3, :3]
    origin_zyx = affine[:3, :3] @ translate_zyx + affine[:3, 3]
    return scanio.Scan(
        array=np.zeros(data.shape, dtype=np.uint8),
        spacing_mm=tuple(float(s) for s in scale_zyx),
        origin_mm=tuple(float(v) for v in origin_zyx[::-1]),
        direction=reverse @ rotation_zyx @ reverse,
        modality="OT",
        metadata={},
    )


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer hook: write `data` (z, y, x) beside its scan's geometry."""
    import scanio

    labels = np.asarray(data)
    if labels.ndim != 3:
        raise ValueError(f"cannot write {path}: labels must be 3D (z, y, x), got shape {labels.shape}")
    scan = scan_from_layer_meta(labels, meta)
    written = scanio.write_labels(path, labels, like=scan, overwrite=True)
    return [str(written)]
