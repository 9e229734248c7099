"""Session.snapshot/restore (undo), Session.precompute and the embedding store, with the fast fake model."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.volume.fake_models import FakeScan, ThresholdImageModel, ellipsoid
from volume import Session
from volume.errors import VolumeError
from volume.precompute import next_slice

SHAPE = (24, 32, 40)


def _session(model=None, **options) -> Session:
    array = ellipsoid(SHAPE, (12, 16, 20), (7.5, 9, 11))
    array[3:6, 2:6, 2:6] = 1000  # a second small object
    options.setdefault("window", "0,1000")
    return Session(FakeScan(array), model or ThresholdImageModel(), **options)


def test_restore_undoes_a_correction_and_the_next_propagation_matches_a_fresh_run():
    session = _session()
    session.add_box(1, 12, (6, 8, 26, 32))
    session.propagate()
    before = session.snapshot()
    labels_before = session.labels.copy()
    session.add_points(1, [(14, 16, 20)], [0])  # a negative click erases the object on z=14
    session.propagate()
    assert not np.array_equal(session.labels, labels_before)
    session.restore(before)
    np.testing.assert_array_equal(session.labels, labels_before)
    assert session.prompted_slices == {1: [12]}
    fresh = _session()
    fresh.add_box(1, 12, (6, 8, 26, 32))
    fresh.propagate()
    session.add_box(2, 4, (1, 1, 7, 7))
    fresh.add_box(2, 4, (1, 1, 7, 7))
    np.testing.assert_array_equal(session.propagate(), fresh.propagate())


def test_redo_after_undo_restores_the_later_state():
    session = _session()
    session.add_box(1, 12, (6, 8, 26, 32))
    empty = session.snapshot()
    session.propagate()
    done = session.snapshot()
    labels_done = session.labels.copy()
    session.restore(empty)
    assert (session.labels > 0).sum() == (session.raw_labels[12] > 0).sum()
    session.restore(done)
    np.testing.assert_array_equal(session.labels, labels_done)


def test_restore_forgets_an_object_added_after_the_snapshot():
    session = _session()
    session.add_box(1, 12, (6, 8, 26, 32))
    snap = session.snapshot()
    session.add_box(2, 4, (1, 1, 7, 7))
    session.restore(snap)
    assert session.object_ids == [1] and not (session.labels == 2).any()
    assert session.predictor_state(1)["obj_ids"] == [1]


def test_precompute_outward_order_and_prompt_then_encodes_nothing():
    model = ThresholdImageModel()
    session = _session(model, predictor_options={"cache_size": 64})
    seen = []
    encoded = session.precompute(progress=lambda done, total: seen.append((done, total)), center=5)
    assert encoded == SHAPE[0] and seen[-1] == (SHAPE[0], SHAPE[0])
    order = [next_slice(set(range(10)) - set(done), 5) for done in ([], [5], [5, 6])]
    assert order == [5, 6, 4]
    n = len(model.encoded)
    session.add_box(1, 12, (6, 8, 26, 32))
    session.propagate()
    assert len(model.encoded) == n


def test_precompute_stops_on_cancel_and_waits_while_paused():
    session = _session()
    cancel, pause = threading.Event(), threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        if done == 3:
            cancel.set()

    assert session.precompute(progress=progress, cancel=cancel) == 3
    pause.set()
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("n", session.precompute(pause=pause, cancel=cancel)))
    cancel.clear()
    worker.start()
    worker.join(0.3)
    assert worker.is_alive()  # paused
    cancel.set()
    worker.join(2)
    assert result["n"] == 0


def test_a_second_session_on_the_same_scan_reads_the_store_and_encodes_nothing(tmp_path):
    first_model = ThresholdImageModel()
    first = _session(first_model, embedding_store=tmp_path)
    first.precompute()
    distinct = len({frame.numpy().tobytes() for frame in first_model.encoded})
    assert len(first_model.encoded) == distinct  # identical slices (air) share one embedding
    second_model = ThresholdImageModel()
    second = _session(second_model, embedding_store=tmp_path)
    second.add_box(1, 12, (6, 8, 26, 32))
    labels = second.propagate()
    assert len(second_model.encoded) == 0 and (labels == 1).sum() > 0
    plain = _session()
    plain.add_box(1, 12, (6, 8, 26, 32))
    np.testing.assert_array_equal(labels, plain.propagate())


def test_a_model_with_other_weights_does_not_use_the_store(tmp_path):
    first = ThresholdImageModel(0.5)
    _session(first, embedding_store=tmp_path).precompute()
    other = ThresholdImageModel(0.4)
    _session(other, embedding_store=tmp_path).precompute()
    assert len(other.encoded) == len(first.encoded) > 0


def test_precompute_refuses_an_unknown_order():
    with pytest.raises(VolumeError, match="order"):
        _session().precompute(order="random")
