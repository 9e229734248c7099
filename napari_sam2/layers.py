"""Layer conventions: how a `scanio.Scan` becomes napari layers that overlay in physical units.

napari world axes are the scan's LPS axes in reversed order, `(z, y, x)` in mm, so that every
layer of one scan (image, labels, prompt points and boxes) shares the same data coordinates:
the scan's voxel indices `(z, y, x)`. Layers carry the source `Scan` in
`layer.metadata[SCAN_KEY]` so the writer can export with the exact geometry (DICOM-SEG too).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

SCAN_KEY = "napari_sam2_scan"

# (level, width) in HU, for display; the model's own windowing lives in `volume`.
CT_WINDOWS_HU: dict[str, tuple[float, float]] = {
    "soft tissue": (40.0, 400.0),
    "liver": (60.0, 160.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}
DEFAULT_CT_WINDOW = "soft tissue"

_REVERSE = np.eye(3)[::-1]  # (x, y, z) <-> (z, y, x)


def direction_zyx(scan: Any) -> np.ndarray:
    """The scan's 3x3 direction with rows and columns in `(z, y, x)` order."""
    return _REVERSE @ np.asarray(scan.direction, dtype=float).reshape(3, 3) @ _REVERSE


def geometry_kwargs(scan: Any) -> dict[str, Any]:
    """`scale`, `translate` and (if the direction is not identity) `affine` for any layer of `scan`.

    Data coordinates are voxel indices `(z, y, x)`; world coordinates are LPS mm in `(z, y, x)`.
    """
    spacing_zyx = np.asarray(scan.spacing_mm, dtype=float)
    origin_zyx = np.asarray(scan.origin_mm, dtype=float)[::-1]
    rotation = direction_zyx(scan)
    if np.allclose(rotation, np.eye(3), atol=1e-6):
        return {"scale": tuple(spacing_zyx), "translate": tuple(origin_zyx)}
    affine = np.eye(4)
    affine[:3, :3] = rotation
    affine[:3, 3] = origin_zyx
    return {"scale": tuple(spacing_zyx), "translate": (0.0, 0.0, 0.0), "affine": affine}


def window_limits(level: float, width: float) -> tuple[float, float]:
    """Display contrast limits for a window given as level/width."""
    return (level - width / 2.0, level + width / 2.0)


def _sample(array: np.ndarray, max_values: int = 1_000_000) -> np.ndarray:
    flat = np.asarray(array).reshape(-1)
    return flat[:: max(1, flat.size // max_values)].astype(np.float32)


def is_ct_like(scan: Any) -> bool:
    """CT by modality, or (modality unknown, e.g. NIfTI) values in Hounsfield units: air near -1000."""
    modality = str(getattr(scan, "modality", "")).upper()
    if modality == "CT":
        return True
    if modality not in ("", "OT"):
        return False
    from volume.windowing import looks_like_ct  # one rule for the display and the model's window

    return looks_like_ct(np.asarray(scan.array))


def default_contrast_limits(scan: Any) -> tuple[float, float]:
    """CT: soft-tissue window (L 40 / W 400 HU); anything else: robust 0.5-99.5 percentiles."""
    if is_ct_like(scan):
        return window_limits(*CT_WINDOWS_HU[DEFAULT_CT_WINDOW])
    low, high = np.percentile(_sample(scan.array), [0.5, 99.5])
    if high <= low:
        high = low + 1.0
    return (float(low), float(high))


def scan_display_name(scan: Any, fallback: str = "scan") -> str:
    """A layer name from the scan's source path or series description."""
    from pathlib import Path

    meta = getattr(scan, "metadata", {}) or {}
    source = meta.get("source_path") or meta.get("source") or meta.get("path")
    if source:
        name = Path(str(source)).name
        for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm"):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)] or fallback
        return name
    return str(meta.get("series_description") or meta.get("description") or fallback)


def looks_like_labels(scan: Any) -> bool:
    """Integer, non-negative, few distinct values and not CT/MR: a segmentation file."""
    array = np.asarray(scan.array)
    if not np.issubdtype(array.dtype, np.integer):
        return False
    if str(getattr(scan, "modality", "")).upper() in ("CT", "MR"):
        return False
    sample = array.reshape(-1)[:: max(1, array.size // 2_000_000)]
    if sample.size == 0 or sample.min() < 0:
        return False
    return len(np.unique(sample)) <= 64


def scan_layer_data(scan: Any, name: Optional[str] = None) -> tuple:
    """The napari `LayerDataTuple` for a scan: image (or labels for a segmentation file)."""
    name = name or scan_display_name(scan)
    kwargs: dict[str, Any] = {
        "name": name,
        "metadata": {SCAN_KEY: scan},
        **geometry_kwargs(scan),
    }
    if looks_like_labels(scan):
        return (np.asarray(scan.array), kwargs, "labels")
    kwargs.update(
        colormap="gray",
        contrast_limits=default_contrast_limits(scan),
        blending="translucent",
    )
    return (scan.array, kwargs, "image")


def layer_geometry(layer: Any) -> dict[str, Any]:
    """The geometry kwargs of an existing layer, to give other layers the same data coordinates."""
    scan = layer.metadata.get(SCAN_KEY) if hasattr(layer, "metadata") else None
    if scan is not None:
        return geometry_kwargs(scan)
    out: dict[str, Any] = {
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
    }
    affine = np.asarray(layer.affine.affine_matrix)
    if not np.allclose(affine, np.eye(affine.shape[0])):
        out["affine"] = affine
    return out


def labels_colormap(colors: dict[int, Any]):
    """A napari colormap giving each object id its own colour (0 transparent)."""
    from napari.utils.colormaps import DirectLabelColormap

    color_dict: dict[Any, Any] = {0: (0.0, 0.0, 0.0, 0.0), None: (0.5, 0.5, 0.5, 1.0)}
    color_dict.update(colors)
    return DirectLabelColormap(color_dict=color_dict)
