"""Reading checkpoint files safely and loading them strictly into a model.

Files are only ever read with ``torch.load(..., weights_only=True)`` (or safetensors), so a
file carrying pickled Python objects is refused without running any of its code. Loading
into a model is strict: every key and shape must match the chosen config, and a mismatch
names the offending keys and, where one fits, the model name the file belongs to.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Optional, Union

import torch

from sam2core.errors import CheckpointError

_WRAPPER_KEYS = ("model", "state_dict")
_SHOW_KEYS = 5

ShapeMap = dict[str, tuple[int, ...]]
_signature_cache: dict[str, ShapeMap] = {}


def load_state_dict(path: Union[str, Path]) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (``.pt``/``.pth`` via weights_only torch.load, or ``.safetensors``).

    Unwraps ``{"model": state_dict}``; raises `CheckpointError` naming the file when it is
    missing, truncated, not a checkpoint, or holds anything other than tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    if path.suffix == ".safetensors":
        obj = _load_safetensors(path)
    else:
        obj = _load_torch(path)
    for key in _WRAPPER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")
    state_dict: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path} is not a plain state dict: entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        state_dict[key] = value
    if not state_dict:
        raise CheckpointError(f"{path} holds no tensors")
    return state_dict


def _load_torch(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise CheckpointError(
                f"{path} contains pickled Python objects besides tensors, which could run code when "
                "loaded; it was refused and nothing in it was executed. Use a plain state-dict "
                "checkpoint (or convert it to .safetensors) from a source you trust."
            ) from None
        raise CheckpointError(f"{path} is truncated or corrupt: {exc}") from None
    except Exception as exc:  # zip errors, EOF, bad magic number, ...: all mean "not a readable checkpoint"
        raise CheckpointError(
            f"{path} is truncated, corrupt or not a PyTorch checkpoint ({type(exc).__name__}: {exc}); "
            "delete it and download it again"
        ) from None


def _load_safetensors(path: Path) -> object:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError(f"{path} is a safetensors file: run `pip install safetensors` to read it") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({exc})") from None


def shape_map(state: Mapping[str, torch.Tensor]) -> ShapeMap:
    """Key -> shape of a state dict (what a config must match)."""
    return {key: tuple(value.shape) for key, value in state.items()}


def describe_mismatch(expected: ShapeMap, found: ShapeMap) -> Optional[str]:
    """None when ``found`` fits ``expected`` exactly, else a short account of missing/unexpected/reshaped keys."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    reshaped = [k for k in expected if k in found and expected[k] != found[k]]
    if not (missing or unexpected or reshaped):
        return None

    def first(keys: list[str], fmt: Callable[[str], str] = str) -> str:
        shown = ", ".join(fmt(k) for k in keys[:_SHOW_KEYS])
        return shown + (", ..." if len(keys) > _SHOW_KEYS else "")

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({first(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({first(unexpected)})")
    if reshaped:
        parts.append(f"{len(reshaped)} keys with another shape ("
                     + first(reshaped, lambda k: f"{k}: file {list(found[k])} vs model {list(expected[k])}")
                     + ")")
    return "; ".join(parts)


def _known_model_builders() -> dict[str, Callable[[], torch.nn.Module]]:
    from sam2core.build import build_model, list_models

    return {name: (lambda n=name: build_model(n)) for name in list_models()}


def _signature(name: str, builder: Callable[[], torch.nn.Module]) -> Optional[ShapeMap]:
    if name not in _signature_cache:
        try:
            with torch.device("meta"):  # shapes only: no memory, no initialisation cost
                _signature_cache[name] = shape_map(builder().state_dict())
        except Exception:
            return None
    return _signature_cache[name]


def suggest_model_name(
    found: ShapeMap,
    exclude: Optional[str] = None,
    candidates: Optional[Mapping[str, Callable[[], torch.nn.Module]]] = None,
) -> Optional[str]:
    """The known model whose keys and shapes ``found`` fits exactly, if any."""
    builders = _known_model_builders() if candidates is None else candidates
    for name, builder in builders.items():
        if name == exclude:
            continue
        signature = _signature(name, builder) if candidates is None else shape_map(builder().state_dict())
        if signature is not None and describe_mismatch(signature, found) is None:
            return name
    return None


def load_checkpoint_into(
    model: torch.nn.Module,
    path: Union[str, Path],
    model_name: str,
    candidates: Optional[Mapping[str, Callable[[], torch.nn.Module]]] = None,
) -> torch.nn.Module:
    """Load the checkpoint at ``path`` into ``model`` strictly; `CheckpointError` if it does not fit ``model_name``.

    ``candidates`` (name -> builder) overrides the known models searched for a suggestion.
    """
    state_dict = load_state_dict(path)
    found = shape_map(state_dict)
    problem = describe_mismatch(shape_map(model.state_dict()), found)
    if problem is not None:
        message = f"checkpoint {path} does not fit model {model_name!r}: {problem}."
        suggestion = suggest_model_name(found, exclude=model_name, candidates=candidates)
        if suggestion is not None:
            message += f" Its keys and shapes fit model {suggestion!r}: pass that model name instead."
        raise CheckpointError(message)
    model.load_state_dict(state_dict, strict=True)
    return model
