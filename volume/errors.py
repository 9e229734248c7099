"""Typed, actionable errors raised by the volume package."""

from __future__ import annotations


class VolumeError(Exception):
    """Base class of every error the volume package raises on purpose."""


class WindowError(VolumeError, ValueError):
    """An intensity window that cannot be understood (unknown preset, width <= 0, ...)."""


class AxisError(VolumeError, ValueError):
    """A slicing axis that is not 'axial', 'coronal' or 'sagittal'."""


class PromptError(VolumeError, ValueError):
    """A prompt that cannot be used; the message says what was wrong and what to do."""


class PromptOutsideVolumeError(PromptError, IndexError):
    """A point, box or slice index that lies outside the scan."""


class EmptyPromptError(PromptError):
    """A box with no area, a mask with no voxel, or no points at all."""


class UnknownObjectError(PromptError, KeyError):
    """An object id that has no prompt in this session."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NoPromptsError(VolumeError):
    """`propagate()` was called before any prompt was added."""
