"""The propagation sweep of `volume.Session`: one direction, all objects of one track together.

`sweep(session, track, units, ...)` runs the predictor from each unit's prompted slice in one
direction; objects join at their prompted slice and leave when they stop (`absent_slices`
slices without them) or reach their unit's limit. `take_frame` records one yielded frame.
Both read and write the session's results through its bookkeeping (`_store`, `_compose`,
`_clear_results`); `Session.propagate` plans the units and calls `sweep`.
"""

from __future__ import annotations

import inspect
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from volume.session_parts import Progress, Unit, as_numpy
from volume.tracks import Track

if TYPE_CHECKING:  # volume.session imports this module
    from volume.session import Session

SliceCallback = Callable[[int, np.ndarray], Any]


def sweep(session: "Session", track: Track, units: list[Unit], cancel: Optional[threading.Event],
          on_slice: Optional[SliceCallback], counter: Progress) -> None:
    """One direction: objects join the sweep at their prompted slice and leave when they stop."""
    step = -1 if units and units[0].reverse else 1
    queue = sorted((u for u in units if not u.finished), key=lambda u: u.seed * step)
    for unit in [u for u in queue if u.length == 0]:
        unit.finished = True
    queue = [u for u in queue if u.length > 0]
    takes_ids = "obj_ids" in inspect.signature(session.predictor.propagate_in_video).parameters
    while queue:
        active: dict[int, Unit] = {}
        ids: set[int] = set()
        start = queue[0].seed
        frames = session.predictor.propagate_in_video(
            track.state, start_frame_idx=start, reverse=step < 0, **({"obj_ids": ids} if takes_ids else {}))
        yielded = False
        try:
            for frame_idx, obj_ids, mask_logits in frames:
                yielded = True
                frame_idx = int(frame_idx)
                while queue and queue[0].seed == frame_idx:
                    unit = queue.pop(0)
                    active[unit.obj] = unit
                    ids.add(unit.obj)
                changed = take_frame(session, track, frame_idx, list(obj_ids), mask_logits, active, ids, step, counter)
                for index in sorted(changed):
                    plane = session._compose(index)
                    if on_slice is not None:
                        on_slice(index, plane)
                counter.report()
                if cancel is not None and cancel.is_set():
                    session.cancelled = True
                    return
                if not active:
                    break  # restart at the next prompted slice, skipping the slices between
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()
        for unit in active.values():  # the scan ended before the unit's limit
            unit.finished = True
        if not yielded and queue and queue[0].seed == start:
            queue.pop(0).finished = True  # nothing to track from there (the scan's edge)


def take_frame(session: "Session", track: Track, frame_idx: int, obj_ids: list, mask_logits: Any, active: dict,
               ids: set, step: int, counter: Progress) -> set[int]:
    """Record one yielded frame for the active objects; returns the slices whose labels changed."""
    scores = session._object_scores(track.state)
    changed = set()
    for obj, unit in sorted(active.items()):
        if frame_idx == unit.seed:
            continue  # the prompt's own result is already stored
        row = as_numpy(mask_logits[obj_ids.index(obj), 0])
        score = float(scores.get(obj, row.max()))
        # between two prompts or inside the user's extent the stop rule is off: only an empty mask is absent
        present = (score > 0 or unit.inner) and bool((row > 0).any())
        if present and score <= 0:
            score = 1e-3
        counter.visit(unit, frame_idx)
        changed.add(frame_idx)
        if present:
            # a short absence inside the object was a doubt, not an end: keep those masks
            for index, held, held_score in unit.tentative:
                session._store(obj, index, held, held_score)
                changed.add(index)
            unit.tentative.clear()
            unit.absent = 0
            session._store(obj, frame_idx, row, score)
        else:
            session._store(obj, frame_idx, None, score)
            unit.tentative.append((frame_idx, row, score))
            unit.absent += 1
        # between two prompts or inside the user's extent the object is there: carry on to the limit
        stop = not unit.inner and unit.absent >= session.absent_slices
        if stop:
            changed |= keep_end(session, track, obj, unit)
        if stop and frame_idx != unit.limit:  # past the limit lies another unit's (or no) result
            session._clear_results(obj, frame_idx + step, unit.limit)
        if stop or frame_idx == unit.limit:
            unit.finished = True
            counter.drop(unit)
            del active[obj]
            ids.discard(obj)
    return changed


def keep_end(session: "Session", track: Track, obj: int, unit: Unit) -> set[int]:
    """Where a direction ends: keep the absent slices next to the object that the predictor says
    are its end (`kept_at_end`: trimmed masks that look like the object); returns those slices."""
    judge = getattr(session.predictor, "kept_at_end", None)
    kept = set()
    for index, held, held_score in unit.tentative:  # in the direction of travel
        if judge is None or not judge(track.state, obj, index):
            break
        session._store(obj, index, held, max(held_score, 1e-3))
        kept.add(index)
    return kept
