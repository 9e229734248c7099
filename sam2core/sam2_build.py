"""Builds SAM 2 / SAM 2.1 / MedSAM2 models from the named configs in `sam2_configs`."""

from __future__ import annotations

from sam2core.errors import UnknownModelError
from sam2core.modeling.sam2_model import SAM2Model
from sam2core.sam2_configs import SAM2_CONFIGS, Sam2Config

__all__ = ["SAM2_CONFIGS", "Sam2Config", "SAM2Model", "build_sam2", "get_config"]


def get_config(name: str, **overrides) -> Sam2Config:
    """The config called `name`, with some fields replaced (e.g. `image_size=256`)."""
    if name not in SAM2_CONFIGS:
        raise UnknownModelError(f"unknown SAM 2 model {name!r}; known: {', '.join(SAM2_CONFIGS)}")
    config = SAM2_CONFIGS[name]
    return config.with_overrides(**overrides) if overrides else config


def build_sam2(name: str, **overrides) -> SAM2Model:
    """A SAM2Model with the named architecture (random weights), in eval mode."""
    if "image_size" in overrides and overrides["image_size"] % 32 != 0:
        raise ValueError(f"image_size must be a multiple of 32, got {overrides['image_size']}")
    return SAM2Model(get_config(name, **overrides)).eval()
