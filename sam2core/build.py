"""Model names → builders and weight loading, for every family sam2core knows.

Each family owns its builder; this module only dispatches:
- SAM 2 / SAM 2.1 / MedSAM2: `sam2core.sam2_build` (`SAM2_CONFIGS`, `build_sam2`).
- LiteMedSAM: `sam2core.lite_medsam` (`build_lite_medsam`).
Checkpoint files are found by the model store (`sam2core.store.resolve_checkpoint`) and
read only through `sam2core.checkpoint` (weights_only, strict key check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from sam2core.errors import UnknownModelError

LITE_MEDSAM = "lite_medsam"


def _sam2_names() -> list[str]:
    from sam2core.sam2_build import SAM2_CONFIGS

    return list(SAM2_CONFIGS)


def list_models() -> list[str]:
    """Names accepted by `build_model` / `load_model`."""
    return [*_sam2_names(), LITE_MEDSAM]


def _check_name(name: str) -> None:
    names = list_models()
    if name not in names:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(names)}")


def build_model(name: str) -> torch.nn.Module:
    """Build the named model with its architecture only (parameters not loaded)."""
    _check_name(name)
    if name == LITE_MEDSAM:
        from sam2core.lite_medsam import build_lite_medsam

        return build_lite_medsam()
    from sam2core.sam2_build import build_sam2

    return build_sam2(name)


def default_device() -> torch.device:
    """cuda, then mps, then cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_model(
    name: str,
    checkpoint: Optional[Union[str, Path]] = None,
    device: Optional[Union[str, torch.device]] = None,
    download: bool = False,
    engine: Optional[str] = None,
    precision: Optional[str] = None,
) -> torch.nn.Module:
    """Build the named model and load its weights (from `checkpoint` or the model store), in eval mode.

    LiteMedSAM only: `engine` ("auto", "torch", "onnxruntime", "openvino") and `precision`
    ("auto", "fp32", "bf16", "int8") choose what runs it (`sam2core.lite_medsam.engines`);
    None keeps PyTorch fp32 (exact). "auto" measures the installed engines once per machine.
    SAM 2 models run in PyTorch (their precision is an autocast applied by the caller).
    """
    from sam2core.checkpoint import load_checkpoint_into
    from sam2core.store import resolve_checkpoint

    _check_name(name)
    if name != LITE_MEDSAM:
        _check_sam2_engine(name, engine, precision)
    model = build_model(name)
    path = resolve_checkpoint(name, checkpoint=checkpoint, download=download)
    load_checkpoint_into(model, path, model_name=name)
    model.eval()
    model = model.to(torch.device(device) if device is not None else default_device())
    if name == LITE_MEDSAM and (engine is not None or precision is not None):
        from sam2core.lite_medsam.engines import configure_engine

        configure_engine(model, engine=engine or "torch", precision=precision or "fp32")
    return model


def _check_sam2_engine(name: str, engine: Optional[str], precision: Optional[str]) -> None:
    """SAM 2 models run in PyTorch at the precision the caller's autocast sets: reject other requests."""
    from sam2core.lite_medsam.engines import EngineError

    if engine not in (None, "auto", "torch"):
        raise EngineError(f"engine {engine!r} is for lite_medsam only; {name} runs in PyTorch (engine 'torch')")
    if precision not in (None, "auto", "fp32"):
        raise EngineError(f"precision {precision!r} at load time is for lite_medsam only; run {name} under "
                          f"torch.autocast for bf16/fp16")


def make_predictor(model: torch.nn.Module, **options):
    """The streaming predictor that fits `model`: memory-based for SAM 2, prompt carrying for image models."""
    if getattr(model, "is_image_model", False):
        from sam2core.predictor.carrying import CarryingPredictor

        return CarryingPredictor(model, **options)
    from sam2core.predictor.video import VideoPredictor

    return VideoPredictor(model, **options)
