"""Our own PyTorch SAM 2 / SAM 2.1 / MedSAM2 and LiteMedSAM models and streaming predictors.

Knows nothing of scans or napari. Public names are imported lazily so that
`import sam2core` stays cheap and one family's module never drags in another's.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "list_models": "sam2core.build",
    "build_model": "sam2core.build",
    "load_model": "sam2core.build",
    "LazyFrames": "sam2core.frames",
    "VideoPredictor": "sam2core.predictor.video",
    "CarryingPredictor": "sam2core.predictor.carrying",
    "CarryConfig": "sam2core.predictor.carry_rule",
    "make_predictor": "sam2core.build",
    "Sam2CoreError": "sam2core.errors",
    "CheckpointError": "sam2core.errors",
    "UnknownModelError": "sam2core.errors",
    "ModelNotAvailableError": "sam2core.errors",
    "PromptError": "sam2core.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sam2core' has no attribute {name!r}")
