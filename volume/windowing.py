"""Intensity windows: CT presets (level/width in HU) and robust percentile scaling for MR.

A window maps raw scan values to [0, 1] floats, slice by slice, so that frames are made
lazily and the whole volume is never held as floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from volume.errors import WindowError

# name -> (level, width) in HU
CT_PRESETS: dict[str, tuple[float, float]] = {
    "soft_tissue": (40.0, 400.0),
    "liver": (60.0, 160.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}
PERCENTILES = (0.5, 99.5)

WindowSpec = Union[str, tuple[float, float], "Window", None]


@dataclass(frozen=True)
class Window:
    """Linear map of values in `[low, high]` onto `[0, 1]` (clipped)."""

    low: float
    high: float
    name: str = "custom"

    @classmethod
    def from_level_width(cls, level: float, width: float, name: str = "custom") -> "Window":
        if not (np.isfinite(level) and np.isfinite(width)):
            raise WindowError(f"window level and width must be finite numbers; got level={level}, width={width}")
        if not width > 0:
            raise WindowError(f"window width must be > 0 HU; got level={level}, width={width}")
        return cls(level - width / 2.0, level + width / 2.0, name)

    def apply(self, values: np.ndarray) -> np.ndarray:
        """`values` (any shape) as float32 in [0, 1]."""
        scale = 1.0 / max(self.high - self.low, 1e-6)
        out = (np.asarray(values, dtype=np.float32) - np.float32(self.low)) * np.float32(scale)
        return np.clip(out, 0.0, 1.0, out=out)


def percentile_window(array: np.ndarray, percentiles: tuple[float, float] = PERCENTILES,
                      max_samples: int = 2_000_000) -> Window:
    """Robust [p_low, p_high] window of a volume, from a strided sample of its voxels (fast on big scans)."""
    flat = np.asarray(array).reshape(-1)
    step = max(1, flat.size // max_samples)
    sample = flat[::step].astype(np.float32)
    low, high = np.percentile(sample, percentiles)
    if not high > low:
        high = low + 1.0
    return Window(float(low), float(high), f"percentile {percentiles[0]}-{percentiles[1]}")


def looks_like_ct(array: np.ndarray, max_samples: int = 1_000_000) -> bool:
    """Values in Hounsfield units: a good share of voxels at air (<= -900), nothing below the
    scanners' padding values (-3024 or -2048 outside the field of view)."""
    flat = np.asarray(array).reshape(-1)
    sample = flat[:: max(1, flat.size // max_samples)].astype(np.float32)
    if sample.size == 0:
        return False
    low = float(np.percentile(sample, 1))
    return -3100.0 <= low <= -900.0 or (float(sample.min()) >= -3100.0 and float(np.mean(sample <= -900)) > 0.02)


def resolve_window(spec: WindowSpec, array: np.ndarray, modality: str = "OT") -> Window:
    """A `Window` from "auto", a CT preset name, "percentile", "level,width", (level, width) or a Window.

    "auto" is the soft-tissue preset for CT and percentile scaling for anything else (MR).
    A scan of unknown modality (NIfTI has none) counts as CT when it holds air at about
    -1000 HU.
    """
    if isinstance(spec, Window):
        return spec
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
        if str(modality).upper() == "CT" or (str(modality).upper() in ("OT", "", "NONE") and looks_like_ct(array)):
            return Window.from_level_width(*CT_PRESETS["soft_tissue"], name="soft_tissue")
        return percentile_window(array)
    if isinstance(spec, (tuple, list)):
        if len(spec) != 2:
            raise WindowError(f"a window is (level, width); got {spec!r}")
        return Window.from_level_width(float(spec[0]), float(spec[1]))
    if isinstance(spec, str):
        key = spec.strip().lower().replace("-", "_").replace(" ", "_")
        if key in ("soft", "abdomen"):
            key = "soft_tissue"
        if key in CT_PRESETS:
            return Window.from_level_width(*CT_PRESETS[key], name=key)
        if key in ("percentile", "mr", "mri"):
            return percentile_window(array)
        parts = spec.replace("/", ",").split(",")
        if len(parts) == 2:
            try:
                return Window.from_level_width(float(parts[0]), float(parts[1]))
            except ValueError:
                pass
    raise WindowError(
        f"unknown window {spec!r}; use 'auto', one of {', '.join(CT_PRESETS)}, 'percentile', "
        "or 'LEVEL,WIDTH' in HU (e.g. '40,400')"
    )


# What a prompt holds, in HU, decides the window of a CT object (physics, not fitted): a
# centre mostly of air (lung, airway, bowel gas) -> lung window; a bone-dense centre -> bone
# window; anything else -> soft tissue. Windows snap to presets so objects share encodes.
AIR_HU = -400.0
BONE_HU = 300.0
AIR_SHARE = 0.5
# A box with this share of air whose centre is not air (a lung lobe's crescent around the
# liver dome, a nodule in the lung) may mean the air-filled structure or the tissue: the model
# decides (`volume.tracks`: the window whose mask fits the drawn box best).
AMBIGUOUS_AIR_SHARE = 0.1


def choose_object_window(values_hu: np.ndarray) -> Window:
    """CT window for one object from the intensities at the centre of its prompt (HU).

    `values_hu`: voxels of the prompted slice in the central half of the box (or around
    the positive points). Air-filled objects get the lung window, bone the bone window,
    everything else the soft-tissue window.
    """
    values = np.asarray(values_hu, dtype=np.float32).reshape(-1)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return preset_window("soft_tissue")
    if float(np.mean(values <= AIR_HU)) >= AIR_SHARE:
        return preset_window("lung")
    if float(np.median(values)) >= BONE_HU:
        return preset_window("bone")
    return preset_window("soft_tissue")


def preset_window(name: str) -> Window:
    return Window.from_level_width(*CT_PRESETS[name], name=name)


def air_share(values_hu: np.ndarray) -> float:
    values = np.asarray(values_hu, dtype=np.float32).reshape(-1)
    return float(np.mean(values <= AIR_HU)) if values.size else 0.0


def is_ct(array: np.ndarray, modality: str = "OT") -> bool:
    """CT by the modality tag, or by Hounsfield values when the tag is missing (NIfTI)."""
    tag = str(modality).upper()
    return tag == "CT" or (tag in ("OT", "", "NONE") and looks_like_ct(array))
