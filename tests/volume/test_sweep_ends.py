"""Where a propagation direction ends, the absent slices the predictor calls the object's end are kept."""

from __future__ import annotations

import numpy as np

from volume.session_parts import Unit
from volume.sweep import keep_end


class _Judge:
    """A predictor stand-in: `kept_at_end` is true on the slices in `ends`."""

    def __init__(self, ends):
        self.ends = set(ends)

    def kept_at_end(self, state, obj_id, frame_idx):
        return frame_idx in self.ends


class _Recorder:
    """The parts of a Session `keep_end` uses: its predictor and `_store`."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.stored = {}

    def _store(self, obj, s, logits, score):
        self.stored[s] = (logits, score)


class _Track:
    state: dict = {}


def _unit_with_absent(slices) -> Unit:
    unit = Unit(obj=1, seed=10, reverse=False, limit=30)
    unit.tentative = [(s, np.ones((4, 4)), -1.0) for s in slices]
    return unit


def test_the_leading_absent_slices_judged_an_end_are_kept_as_present():
    session = _Recorder(_Judge({14, 15}))
    kept = keep_end(session, _Track(), 1, _unit_with_absent([14, 15]))
    assert kept == {14, 15}
    assert all(score > 0 for _, score in session.stored.values())


def test_keeping_stops_at_the_first_absent_slice_not_judged_an_end():
    session = _Recorder(_Judge({15}))
    assert keep_end(session, _Track(), 1, _unit_with_absent([14, 15])) == set()
    assert session.stored == {}


def test_a_predictor_without_the_judgement_keeps_nothing():
    session = _Recorder(object())
    assert keep_end(session, _Track(), 1, _unit_with_absent([14, 15])) == set()
