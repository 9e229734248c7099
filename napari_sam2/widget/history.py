"""Undo / redo for the widget: labels, the session (`Session.snapshot()`), what was sent and the prompt layers.

Each action (a prompt, a propagation, a paint correction, a removal, an extent) records the
widget's state just before it; undo puts that state back and keeps the current one for redo.
A state belongs to one session object: if the session was rebuilt since (other settings),
restoring it drops the session, and the prompts still on the layers are sent again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

MAX_UNDO = 10


@dataclass
class LayerContent:
    """What one prompt layer holds: data, shape types (Shapes) and features."""

    data: list
    features: Any
    shape_types: Optional[list] = None

    @classmethod
    def of(cls, layer: Any) -> "LayerContent":
        shape_types = list(layer.shape_type) if hasattr(layer, "shape_type") else None
        data = [np.array(d, copy=True) for d in layer.data] if shape_types is not None else np.array(layer.data, copy=True)
        return cls(data, layer.features.copy(), shape_types)

    def put(self, layer: Any) -> None:
        if self.shape_types is not None:
            layer.data = []
            if self.data:
                layer.add(list(self.data), shape_type=list(self.shape_types))
            layer.features = self.features.copy()
        else:
            layer.data = np.array(self.data, copy=True).reshape(-1, 3)
            layer.features = self.features.copy()


@dataclass
class WidgetState:
    """The widget at one moment: enough to come back to it."""

    what: str
    labels: Optional[np.ndarray]
    session: Any  # the session object the snapshot belongs to (None: no session yet)
    snapshot: Any
    sent: frozenset
    corrections: tuple
    prompt_layers: dict = field(default_factory=dict)  # "points"/"boxes" -> LayerContent


class History:
    """Two stacks of `WidgetState`s."""

    def __init__(self, limit: int = MAX_UNDO) -> None:
        self.limit = limit
        self.undo_stack: list[WidgetState] = []
        self.redo_stack: list[WidgetState] = []

    def push(self, state: WidgetState) -> None:
        """Record the state before a new action (the redo stack is dropped)."""
        self.undo_stack.append(state)
        del self.undo_stack[:-self.limit]
        self.redo_stack.clear()

    def drop_last(self) -> Optional[WidgetState]:
        """Forget the last record (its action failed or did nothing)."""
        return self.undo_stack.pop() if self.undo_stack else None

    def undo(self, current: WidgetState) -> Optional[WidgetState]:
        if not self.undo_stack:
            return None
        state = self.undo_stack.pop()
        current.what = state.what
        self.redo_stack.append(current)
        return state

    def redo(self, current: WidgetState) -> Optional[WidgetState]:
        if not self.redo_stack:
            return None
        state = self.redo_stack.pop()
        current.what = state.what
        self.undo_stack.append(current)
        return state

    def clear(self) -> None:
        self.undo_stack.clear()
        self.redo_stack.clear()

    def __bool__(self) -> bool:
        return bool(self.undo_stack)
