"""Small state classes of `volume.Session`: prompts, per-slice results, propagation units, progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

ProgressCallback = Callable[[int, int], Any]


@dataclass
class Prompt:
    """Prompts of one object on one slice, in frame pixels `(x, y)`."""

    box: Optional[np.ndarray] = None
    points: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    mask: Optional[np.ndarray] = None


@dataclass
class SliceResult:
    """One object's logits on one slice, cropped to where they are positive (float16)."""

    r0: int
    c0: int
    logits: np.ndarray


@dataclass
class Unit:
    """One object carried from one prompted slice in one direction, up to `limit` (inclusive)."""

    obj: int
    seed: int
    reverse: bool
    limit: int
    inner: bool = False  # bounded by another prompted slice or by the user's extent: no stop rule
    absent: int = 0
    finished: bool = False
    tentative: list = field(default_factory=list)

    @property
    def length(self) -> int:
        return max((self.limit - self.seed) * (-1 if self.reverse else 1), 0)


class Progress:
    """Slices done and still planned, for `progress(done, total)`."""

    def __init__(self, callback: Optional[ProgressCallback], units: list[Unit]):
        self.callback = callback
        self.planned = {id(u): u.length for u in units}
        self._reverse = {id(u): u.reverse for u in units}
        self.done = 0
        self._seen: set = set()
        self.report()

    def visit(self, unit: Unit, frame_idx: int) -> None:
        key = (unit.reverse, frame_idx)
        self.planned[id(unit)] = max(self.planned[id(unit)] - 1, 0)
        if key not in self._seen:
            self._seen.add(key)
            self.done += 1

    def drop(self, unit: Unit) -> None:
        self.planned[id(unit)] = 0

    @property
    def total(self) -> int:
        left = {False: 0, True: 0}
        for unit_id, remaining in self.planned.items():
            reverse = self._reverse[unit_id]
            left[reverse] = max(left[reverse], remaining)
        return self.done + left[False] + left[True]

    def report(self) -> None:
        if self.callback is not None:
            self.callback(self.done, self.total)

    def finish(self) -> None:
        if self.callback is not None:
            self.callback(self.done, self.done)


def crop_result(logits: np.ndarray) -> Optional[SliceResult]:
    inside = logits > 0
    if not inside.any():
        return None
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return SliceResult(int(r0), int(c0), logits[r0:r1, c0:c1].astype(np.float16))


def as_numpy(values: Any) -> np.ndarray:
    """A model output (torch tensor or array) as a float32 numpy array."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float32)
