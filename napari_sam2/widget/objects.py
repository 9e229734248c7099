"""The object list: segmentation targets with an id, a name and a colour (add, rename, recolour, remove)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QColorDialog,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

# Distinct, colour-blind friendly-ish defaults (RGBA 0..1), cycled for new objects.
PALETTE: tuple[tuple[float, float, float, float], ...] = (
    (0.90, 0.62, 0.00, 1.0),
    (0.34, 0.71, 0.91, 1.0),
    (0.00, 0.62, 0.45, 1.0),
    (0.94, 0.89, 0.26, 1.0),
    (0.00, 0.45, 0.70, 1.0),
    (0.84, 0.37, 0.00, 1.0),
    (0.80, 0.47, 0.65, 1.0),
)

_ID_ROLE = Qt.ItemDataRole.UserRole


@dataclass
class SegObject:
    """One segmentation target: `obj_id` is its value in the labels volume."""

    obj_id: int
    name: str
    color: tuple[float, float, float, float]


def _swatch(color: tuple[float, ...]) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor.fromRgbF(*color[:3], 1.0))
    return QIcon(pixmap)


class ObjectList(QWidget):
    """Editable list of objects; double-click a name to rename it."""

    changed = Signal()  # any add / rename / recolour / remove
    removed = Signal(int)  # obj_id
    current_changed = Signal(int)  # obj_id, 0 when none

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._objects: dict[int, SegObject] = {}
        self._next_id = 1
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        self.add_button = QPushButton("Add object")
        self.color_button = QPushButton("Colour…")
        self.remove_button = QPushButton("Remove")
        buttons = QHBoxLayout()
        for button in (self.add_button, self.color_button, self.remove_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self.add_button.clicked.connect(lambda: self.add_object())
        self.color_button.clicked.connect(self._pick_color)
        self.remove_button.clicked.connect(self._remove_current)
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.currentItemChanged.connect(lambda *_: self.current_changed.emit(self.current_id()))

    # --- queries -----------------------------------------------------------------------
    def objects(self) -> list[SegObject]:
        return list(self._objects.values())

    def get(self, obj_id: int) -> Optional[SegObject]:
        return self._objects.get(obj_id)

    def current_id(self) -> int:
        item = self.list.currentItem()
        return int(item.data(_ID_ROLE)) if item is not None else 0

    def current(self) -> Optional[SegObject]:
        return self._objects.get(self.current_id())

    def colors(self) -> dict[int, tuple[float, ...]]:
        return {o.obj_id: o.color for o in self._objects.values()}

    # --- edits -------------------------------------------------------------------------
    def add_object(self, name: Optional[str] = None, color: Optional[tuple] = None) -> SegObject:
        """Append a new object and make it current."""
        obj_id = self._next_id
        self._next_id += 1
        obj = SegObject(
            obj_id=obj_id,
            name=name or f"object {obj_id}",
            color=tuple(color) if color is not None else PALETTE[(obj_id - 1) % len(PALETTE)],
        )
        self._objects[obj_id] = obj
        item = QListWidgetItem(_swatch(obj.color), obj.name)
        item.setData(_ID_ROLE, obj_id)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        self.list.blockSignals(True)
        self.list.addItem(item)
        self.list.blockSignals(False)
        self.list.setCurrentItem(item)
        self.changed.emit()
        return obj

    def rename(self, obj_id: int, name: str) -> None:
        item = self._item(obj_id)
        if item is not None:
            item.setText(name)  # itemChanged updates the object

    def set_color(self, obj_id: int, color: tuple) -> None:
        obj = self._objects.get(obj_id)
        item = self._item(obj_id)
        if obj is None or item is None:
            return
        obj.color = tuple(float(c) for c in color)
        if len(obj.color) == 3:
            obj.color = (*obj.color, 1.0)
        self.list.blockSignals(True)
        item.setIcon(_swatch(obj.color))
        self.list.blockSignals(False)
        self.changed.emit()

    def remove(self, obj_id: int) -> None:
        item = self._item(obj_id)
        if item is None:
            return
        self._objects.pop(obj_id, None)
        self.list.takeItem(self.list.row(item))
        self.removed.emit(obj_id)
        self.changed.emit()

    # --- internals -----------------------------------------------------------------------
    def _item(self, obj_id: int) -> Optional[QListWidgetItem]:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if int(item.data(_ID_ROLE)) == obj_id:
                return item
        return None

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        obj = self._objects.get(int(item.data(_ID_ROLE)))
        if obj is not None and item.text() and item.text() != obj.name:
            obj.name = item.text()
            self.changed.emit()

    def _pick_color(self) -> None:
        obj = self.current()
        if obj is None:
            return
        color = QColorDialog.getColor(QColor.fromRgbF(*obj.color[:3], 1.0), self, f"Colour of {obj.name}")
        if color.isValid():
            self.set_color(obj.obj_id, (color.redF(), color.greenF(), color.blueF(), 1.0))

    def _remove_current(self) -> None:
        obj_id = self.current_id()
        if obj_id:
            self.remove(obj_id)
