"""Shared helpers for parity tests against the official `sam2` package (the oracle).

- `official_available()` / `skip_without_official`: skip cleanly when `sam2`, `hydra` or
  `iopath` are not installed.
- `build_official(name, image_size=None, video=False)`: the official model for one of our
  config names, built from its hydra yaml with the same overrides as our config, on CPU, eval.
- `random_weights(model, seed)`: a state dict with EVERY entry drawn at random (normal
  with a per-tensor scale that keeps activations in a sane range; not the default init,
  which leaves many tensors zero or constant).
- `load_into_both(ours, official, state_dict)`: strict load into both models.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Optional

import pytest
import torch
from torch import nn

from sam2core.sam2_configs import OFFICIAL_YAML, SAM2_CONFIGS


def official_available() -> bool:
    """True when the official `sam2` package and its hydra/iopath dependencies import."""
    return all(importlib.util.find_spec(m) is not None for m in ("sam2", "hydra", "iopath"))


skip_without_official = pytest.mark.skipif(
    not official_available(), reason="official sam2 package (with hydra-core, iopath) not installed"
)


def official_overrides(name: str, image_size: Optional[int] = None, video: bool = False) -> tuple[str, list[str]]:
    """(yaml path, hydra overrides) that make the official model match our config `name`."""
    yaml_path, default_size = OFFICIAL_YAML[name]
    size = image_size or SAM2_CONFIGS[name].image_size or default_size
    feat = size // 16
    overrides = [
        f"++model.image_size={size}",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{feat},{feat}]",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{feat},{feat}]",
    ]
    if not video:
        # The video builder sets this itself; our configs follow the video builder.
        overrides.append("++model.binarize_mask_from_pts_for_mem_enc=true")
    return yaml_path, overrides


def build_official(name: str, image_size: Optional[int] = None, video: bool = False) -> nn.Module:
    """The official model (`SAM2Base`, or `SAM2VideoPredictor` with video=True) for our config `name`, CPU, eval."""
    if not official_available():
        pytest.skip("official sam2 package not installed")
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    yaml_path, overrides = official_overrides(name, image_size, video)
    builder = build_sam2_video_predictor if video else build_sam2
    return builder(yaml_path, ckpt_path=None, device="cpu", mode="eval", hydra_overrides_extra=overrides)


def official_state_dict_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the official model's state dict, built on the meta device (no memory, fast)."""
    if not official_available():
        pytest.skip("official sam2 package not installed")
    import sam2  # noqa: F401  (initialises hydra with the package's config module)
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    yaml_path, overrides = official_overrides(name)
    cfg = compose(config_name=yaml_path, overrides=overrides)
    OmegaConf.resolve(cfg)
    real_linspace = torch.linspace

    def cpu_linspace(*args, **kwargs):  # Hiera calls .item() on its drop-path schedule
        kwargs["device"] = "cpu"
        return real_linspace(*args, **kwargs)

    torch.linspace = cpu_linspace
    try:
        with torch.device("meta"):
            model = instantiate(cfg.model, _recursive_=True)
    finally:
        torch.linspace = real_linspace
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _scale_for(name: str, module: nn.Module, tensor: torch.Tensor) -> tuple[float, float]:
    """(mean, std) to draw the tensor `name` of `module` from."""
    leaf = name.rsplit(".", 1)[-1]
    norm_types = (nn.LayerNorm, nn.GroupNorm)
    is_norm = isinstance(module, norm_types) or type(module).__name__ == "LayerNorm2d"
    if is_norm:
        return (1.0, 0.1) if leaf == "weight" else (0.0, 0.05)
    if leaf == "bias":
        return 0.0, 0.05
    if isinstance(module, nn.Embedding):
        return 0.0, 1.0
    if isinstance(module, (nn.ConvTranspose2d,)):
        return 0.0, 1.0 / math.sqrt(tensor.shape[0])
    if isinstance(module, (nn.Linear, nn.Conv2d)) and leaf == "weight":
        fan_in = tensor[0].numel()
        return 0.0, 1.0 / math.sqrt(fan_in)
    if leaf == "gamma":  # ConvNeXt layer scale
        return 0.3, 0.1
    if leaf == "positional_encoding_gaussian_matrix":
        return 0.0, 1.0
    # Free parameters: position embeddings, memory/no-object embeddings, tokens.
    return 0.0, 0.2


def random_weights(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A full state dict for `model`, every tensor drawn from a seeded normal with a per-tensor scale."""
    generator = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    state = {}
    for name, tensor in model.state_dict().items():
        owner = modules.get(name.rsplit(".", 1)[0] if "." in name else "", model)
        mean, std = _scale_for(name, owner, tensor)
        draw = torch.randn(tensor.shape, generator=generator, dtype=torch.float32) * std + mean
        state[name] = draw.to(tensor.dtype)
    return state


def load_into_both(ours: nn.Module, official: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load the same weights into both models (strict) and put both in eval mode."""
    ours.load_state_dict(state_dict, strict=True)
    official.load_state_dict(state_dict, strict=True)
    ours.eval()
    official.eval()


def assert_logits_match(ours: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    """|ours - ref| <= 1e-3 * max|ref| and >= 99.9 % of the thresholded values equal."""
    assert ours.shape == ref.shape, f"{what}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    scale = ref.abs().max().item()
    err = (ours.float() - ref.float()).abs().max().item()
    assert err <= 1e-3 * max(scale, 1e-6), f"{what}: max error {err:.3g} vs max |logit| {scale:.3g}"
    agree = ((ours > 0) == (ref > 0)).float().mean().item()
    assert agree >= 0.999, f"{what}: thresholded agreement {agree:.5f}"


@pytest.fixture(scope="module")
def one_thread():
    """Small models run far faster on one thread than on an oversubscribed pool (import into a module, autouse there)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
