"""Slice sequences, windowing, propagation sessions and 3D assembly (uses sam2core and scanio).

`Session(scan, model, axis=..., window=...)` prompts a scan on slices in voxel `(z, y, x)`
coordinates, propagates through the volume and gives `(z, y, x)` labels; `dice` and
`per_object_metrics` compare label volumes.
"""

from volume.assembly import clean_labels, fill_holes_by_slice, keep_connected
from volume.errors import (
    AxisError,
    EmptyPromptError,
    NoPromptsError,
    PromptError,
    PromptOutsideVolumeError,
    UnknownObjectError,
    VolumeError,
    WindowError,
)
from volume.metrics import dice, per_object_metrics
from volume.session import Session
from volume.slicing import VIEWS, SliceGeometry, slicing_axis
from volume.windowing import CT_PRESETS, Window, percentile_window, resolve_window

__all__ = [
    "AxisError", "CT_PRESETS", "EmptyPromptError", "NoPromptsError", "PromptError",
    "PromptOutsideVolumeError", "Session", "SliceGeometry", "UnknownObjectError", "VIEWS",
    "VolumeError", "Window", "WindowError", "clean_labels", "dice", "fill_holes_by_slice",
    "keep_connected", "per_object_metrics", "percentile_window", "resolve_window", "slicing_axis",
]
