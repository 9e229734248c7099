"""Keyboard shortcuts of the widget, and the radiological display convention.

Shortcuts are bound on the viewer and on the widget's own layers (a layer's keys win over the
viewer's in napari, and the labels layer has its own Ctrl+Z, which would undo a paint stroke
behind the session's back). The widget's tooltips show them; README lists them.
"""

from __future__ import annotations

from typing import Any, Optional

# control attribute of the dock widget -> napari key binding
SHORTCUTS: dict[str, str] = {
    "points_button": "Shift-P",
    "box_button": "Shift-B",
    "lasso_button": "Shift-L",
    "scribble_button": "Shift-S",
    "paint_button": "Shift-D",
    "negative_check": "Shift-N",
    "first_button": "Shift-F",
    "last_button": "Shift-G",
    "propagate_button": "Shift-Enter",
    "cancel_button": "Shift-Escape",
    "undo_button": "Control-Z",
    "redo_button": "Control-Shift-Z",
}

_ACTIONS: dict[str, Any] = {
    "points_button": lambda w: w.use_points_tool(),
    "box_button": lambda w: w.use_box_tool(),
    "lasso_button": lambda w: w.use_lasso_tool(),
    "scribble_button": lambda w: w.use_scribble_tool(),
    "paint_button": lambda w: w.use_paint_tool(),
    "negative_check": lambda w: w.negative_check.toggle(),
    "first_button": lambda w: w._guarded(w.set_extent_here, "first"),
    "last_button": lambda w: w._guarded(w.set_extent_here, "last"),
    "propagate_button": lambda w: w.propagate(),
    "cancel_button": lambda w: w.cancel(),
    "undo_button": lambda w: w.undo(),
    "redo_button": lambda w: w.redo(),
}


def bind_shortcuts(target: Any, widget: Any) -> None:
    """Bind every shortcut on `target` (the viewer or one of the widget's layers)."""
    for name, key in SHORTCUTS.items():
        action = _ACTIONS[name]

        def handler(_: Any, action: Any = action) -> None:
            action(widget)

        target.bind_key(key, handler, overwrite=True)


def radiological_orientation(displayed_world_axes: Any) -> tuple[str, str]:
    """napari's 2D camera orientation (vertical, horizontal) for the two displayed world axes.

    World axes are LPS in `(z, y, x)` order: 0 superior, 1 posterior, 2 left. Radiological
    convention: head up (superior up), anterior up on axial slices, the patient's right on the
    screen's left (patient left to the right), and on sagittal slices anterior on the left.
    """
    rows = int(list(displayed_world_axes)[0])
    vertical = "up" if rows == 0 else "down"  # superior up; posterior (+y) down
    horizontal = "right"  # +x (left) and +y (posterior) go to the right, whatever the view
    return vertical, horizontal


def control_name(widget: Any, control: Any) -> Optional[str]:
    """The attribute name of one of the widget's controls (to look its shortcut up)."""
    for name, value in vars(widget).items():
        if value is control:
            return name
    return None
