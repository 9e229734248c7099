"""Typed, actionable errors raised by sam2core."""


class Sam2CoreError(Exception):
    """Base class of every error sam2core raises on purpose."""


class UnknownModelError(Sam2CoreError, KeyError):
    """A model name that no config knows."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(Sam2CoreError):
    """A checkpoint file that is missing, unsafe, truncated or does not fit the chosen config."""


class ModelNotAvailableError(Sam2CoreError):
    """Weights are not on this machine and cannot be fetched (offline, missing package...)."""


class PromptError(Sam2CoreError, ValueError):
    """A prompt that cannot be used: unknown object, empty box, outside the frame, ..."""
