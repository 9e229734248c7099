"""Setting up a `volume.Session`: the scan (an object, a path or a bare array) and the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from volume.errors import VolumeError


@dataclass
class _ArrayScan:
    """Minimal scan for a bare `(z, y, x)` array: unit spacing, identity direction."""

    array: np.ndarray
    spacing_mm: tuple = (1.0, 1.0, 1.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    modality: str = "OT"


def _as_scan(scan: Any) -> Any:
    if isinstance(scan, np.ndarray):
        scan = _ArrayScan(scan)
    elif isinstance(scan, (str, bytes)) or hasattr(scan, "__fspath__"):
        from scanio import read_scan

        scan = read_scan(scan)
    array = getattr(scan, "array", None)
    if array is None or np.ndim(array) != 3:
        raise VolumeError(f"a scan must hold a 3D (z, y, x) array; got {type(scan).__name__} "
                          f"with shape {None if array is None else np.shape(array)}")
    return scan


def _resolve_model(model: Any, device: Any, checkpoint: Any, engine: str = "auto", precision: str = "auto") -> Any:
    """A model name is loaded (LiteMedSAM with `engine`/`precision`); a model object is used as is."""
    if isinstance(model, str):
        from sam2core.build import load_model

        return load_model(model, checkpoint=checkpoint, device=device, engine=engine, precision=precision)
    if (engine, precision) != ("auto", "auto"):
        raise VolumeError(f"engine={engine!r}/precision={precision!r} apply when the model is given by name; "
                          f"a loaded model runs as it was loaded (use sam2core.load_model(..., engine=, precision=) "
                          f"or sam2core.lite_medsam.engines.configure_engine)")
    if device is not None and hasattr(model, "to"):
        import torch

        model = model.to(torch.device(device))
    return model
