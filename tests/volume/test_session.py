"""Session plumbing with a fast fake image model: prompt mapping, propagation, stops, corrections, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sam2core.carry_predictor import CarryingPredictor
from tests.volume.fake_models import FakeScan, ThresholdImageModel, ellipsoid
from volume import (
    EmptyPromptError,
    NoPromptsError,
    PromptError,
    PromptOutsideVolumeError,
    Session,
    UnknownObjectError,
    dice,
)

SHAPE = (30, 40, 50)
CENTER = (15, 20, 24)
RADII = (8.5, 10, 12)


def make_session(array=None, model=None, **options) -> Session:
    array = ellipsoid(SHAPE, CENTER, RADII) if array is None else array
    model = model or ThresholdImageModel()
    options.setdefault("window", "0,1000")
    return Session(FakeScan(array), model, **options)


def test_axial_box_propagates_both_directions_to_the_whole_object():
    truth = ellipsoid(SHAPE, CENTER, RADII) > 0
    session = make_session()
    session.add_box(1, 15, (10, 12, 30, 36))  # (y0, x0, y1, x1)
    labels = session.propagate()
    assert labels.dtype == np.uint16 and labels.shape == SHAPE
    assert dice(labels == 1, truth) > 0.97
    z_present = np.flatnonzero((labels == 1).any(axis=(1, 2)))
    assert z_present[0] < 10 and z_present[-1] > 20


@pytest.mark.parametrize("view, axis, slice_index, box", [
    ("axial", 0, 15, (10, 12, 30, 36)),     # (y0, x0, y1, x1)
    ("coronal", 1, 20, (7, 12, 23, 36)),    # (z0, x0, z1, x1)
    ("sagittal", 2, 24, (7, 10, 23, 30)),   # (z0, y0, z1, y1)
])
def test_box_maps_onto_each_view(view, axis, slice_index, box):
    truth = ellipsoid(SHAPE, CENTER, RADII) > 0
    session = make_session(axis=view)
    assert session.slicing_axis == axis
    mask2d = session.add_box(1, slice_index, box)
    expected = np.take(truth, slice_index, axis=axis)
    assert mask2d.shape == expected.shape
    assert dice(mask2d, expected) > 0.99


@pytest.mark.parametrize("view", ["axial", "coronal", "sagittal"])
def test_point_in_voxel_coordinates_selects_object_on_each_view(view):
    array = ellipsoid(SHAPE, CENTER, RADII) + ellipsoid(SHAPE, (15, 20, 45), (3, 3, 3))
    session = make_session(array, axis=view)
    session.add_points(1, [(15, 20, 45)], [1])  # the small ball only
    labels = session.propagate()
    assert labels[15, 20, 45] == 1 and labels[CENTER] == 0
    assert dice(labels == 1, ellipsoid(SHAPE, (15, 20, 45), (3, 3, 3)) > 0) > 0.9


def test_axial_follows_scan_direction_not_array_axis():
    # array axis 2 (index i) runs along world z: axial slices must be taken along array axis 2
    direction = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    scan = FakeScan(ellipsoid(SHAPE, CENTER, RADII), direction=direction)
    session = Session(scan, ThresholdImageModel(), axis="axial", window="0,1000")
    assert session.slicing_axis == 2
    assert Session(scan, ThresholdImageModel(), axis="sagittal", window="0,1000").slicing_axis == 0


def test_early_stop_never_encodes_slices_far_outside_the_object():
    model = ThresholdImageModel()
    session = make_session(model=model, absent_slices=2)
    session.add_box(1, 15, (10, 12, 30, 36))
    labels = session.propagate()
    extent = np.flatnonzero((labels == 1).any(axis=(1, 2)))
    assert (extent[0], extent[-1]) == (7, 23)
    # the object spans 17 slices; each direction may look 2 slices beyond it
    assert session.slices_encoded == 17 + 2 * 2
    assert len(model.encoded) == session.slices_encoded


def test_absent_slices_is_configurable():
    session = make_session(absent_slices=4)
    session.add_box(1, 15, (10, 12, 30, 36))
    session.propagate()
    looked_at = np.flatnonzero(~np.isnan(session.scores[1]))
    assert (looked_at[0], looked_at[-1]) == (7 - 4, 23 + 4)
    assert session.slices_encoded <= 17 + 2 * 4


def test_correction_repropagates_from_its_slice_and_keeps_the_rest():
    # two columns side by side along z; the object starts on the left one
    array = ellipsoid(SHAPE, (15, 20, 12), (20, 6, 6)) + ellipsoid(SHAPE, (15, 20, 36), (20, 6, 6))
    left, right = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    left[..., :24], right[..., 24:] = True, True
    session = make_session(array)
    session.add_box(1, 10, (12, 4, 28, 20))
    first = session.propagate().copy()
    assert (first == 1)[:, :, 24:].sum() == 0
    correction = np.zeros(SHAPE[1:], bool)
    correction[14:27, 30:43] = array[20, 14:27, 30:43] > 0
    session.add_mask(1, 20, correction)
    second = session.propagate()
    # halfway between the prompts (slice 15) and below: unchanged; from 16 on: the right column
    np.testing.assert_array_equal(second[:16], first[:16])
    assert ((second[16:] == 1) & left[16:]).sum() == 0
    assert ((second[16:] == 1) & right[16:]).sum() > 0


def test_two_objects_share_slices_without_overlap():
    a = ellipsoid(SHAPE, (15, 20, 14), (8, 8, 8)) > 0
    b = ellipsoid(SHAPE, (15, 20, 31), (8, 8, 8)) > 0
    session = make_session((a | b).astype(np.int16) * 1000)
    # overlapping boxes: each box also covers part of the other ball
    session.add_box(1, 15, (12, 6, 28, 24))
    session.add_box(2, 15, (12, 21, 28, 39))
    labels = session.propagate()
    assert set(np.unique(labels)) == {0, 1, 2}
    # every voxel of the touching balls goes to exactly one object
    assert dice(labels > 0, a | b) > 0.97
    assert dice(labels == 1, a) > 0.8 and dice(labels == 2, b) > 0.8
    assert session.object_ids == [1, 2]


def test_cancel_midway_keeps_labels_consistent_and_next_call_finishes():
    cancel = threading.Event()
    seen = []

    def on_slice(index, plane):
        seen.append(index)
        if len(seen) == 3:
            cancel.set()

    session = make_session()
    session.add_box(1, 15, (10, 12, 30, 36))
    labels = session.propagate(cancel=cancel, on_slice=on_slice).copy()
    assert session.cancelled and len(seen) == 3
    done = np.flatnonzero((labels == 1).any(axis=(1, 2)))
    assert sorted(done) == sorted([15, *seen])
    finished = session.propagate()
    reference = make_session()
    reference.add_box(1, 15, (10, 12, 30, 36))
    np.testing.assert_array_equal(finished, reference.propagate())


def test_progress_reaches_total():
    calls = []
    session = make_session()
    session.add_box(1, 15, (10, 12, 30, 36))
    session.propagate(progress=lambda done, total: calls.append((done, total)))
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] > 0
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))


def test_scores_are_positive_inside_and_negative_just_outside():
    session = make_session()
    session.add_box(1, 15, (10, 12, 30, 36))
    session.propagate()
    scores = session.scores[1]
    assert (scores[8:23] > 0).all()
    assert scores[6] <= 0 and scores[24] <= 0
    assert np.isnan(scores[0]) and np.isnan(scores[29])


def test_remove_object_and_reset_clear_labels():
    session = make_session()
    session.add_box(1, 15, (10, 12, 30, 36))
    session.propagate()
    session.remove_object(1)
    assert session.labels.max() == 0 and session.object_ids == []
    session.add_box(2, 15, (10, 12, 30, 36))
    session.reset()
    assert session.labels.max() == 0
    with pytest.raises(NoPromptsError):
        session.propagate()


@pytest.mark.parametrize("call, error", [
    (lambda s: s.add_points(1, [(15, 20, 60)], [1]), PromptOutsideVolumeError),
    (lambda s: s.add_points(1, [(-1, 20, 20)], [1]), PromptOutsideVolumeError),
    (lambda s: s.add_box(1, 30, (10, 12, 30, 36)), PromptOutsideVolumeError),
    (lambda s: s.add_box(1, 15, (50, 60, 70, 80)), PromptOutsideVolumeError),
    (lambda s: s.add_box(1, 15, (10, 12, 10, 36)), EmptyPromptError),
    (lambda s: s.add_mask(1, 15, np.zeros((40, 50), bool)), EmptyPromptError),
    (lambda s: s.add_mask(1, 15, np.ones((50, 40), bool)), PromptError),
    (lambda s: s.add_points(1, [(14, 20, 20), (15, 20, 20)], [1, 1]), PromptError),
    (lambda s: s.add_points(1, [], []), EmptyPromptError),
    (lambda s: s.add_box(0, 15, (10, 12, 30, 36)), PromptError),
    (lambda s: s.remove_object(7), UnknownObjectError),
    (lambda s: s.propagate(), NoPromptsError),
])
def test_bad_prompts_raise_typed_errors(call, error):
    session = make_session()
    with pytest.raises(error):
        call(session)


def test_prompt_errors_are_value_errors_with_the_reason():
    session = make_session()
    with pytest.raises(ValueError, match="outside"):
        session.add_box(1, 15, (50, 60, 70, 80))


def test_cleanup_keeps_component_connected_to_prompt():
    # a second bright ball touching the first's carried box on slices far from the prompt
    array = ellipsoid(SHAPE, CENTER, RADII)
    session = make_session(array, model=ThresholdImageModel())
    session.add_box(1, 15, (10, 12, 30, 36))
    session.propagate()
    raw = session.raw_labels.copy()
    raw[2, 0:3, 0:3] = 1  # a stray island that no prompt connects to
    from volume.assembly import clean_labels

    seeds = {1: np.zeros(SHAPE, bool)}
    seeds[1][15] = raw[15] == 1
    cleaned = clean_labels(raw, seeds)
    assert cleaned[2, 0:3, 0:3].sum() == 0 and (cleaned == 1).sum() == (raw == 1).sum() - 9


def test_frames_are_made_one_at_a_time_not_the_whole_volume():
    session = make_session()
    frame = session.predictor_state(1)["frames"][3] if session.object_ids else \
        next(iter(session._tracks.tracks.values())).state["frames"][3]
    assert tuple(frame.shape) == (3, 40, 50) and float(frame.max()) <= 1.0
    assert session.frames_made == 1


def test_carrying_predictor_is_used_for_image_models():
    session = make_session()
    assert isinstance(session.predictor, CarryingPredictor)


def test_objects_prompted_on_different_slices_share_one_sweep_per_direction():
    array = ellipsoid(SHAPE, (15, 20, 12), (12.5, 6, 6)) + ellipsoid(SHAPE, (15, 20, 36), (12.5, 6, 6))
    model = ThresholdImageModel()
    session = make_session(array, model=model)
    session.add_box(1, 8, (12, 4, 28, 20))
    session.add_box(2, 20, (12, 28, 28, 44))
    labels = session.propagate()
    assert dice(labels == 1, array * (np.arange(50) < 24) > 0) > 0.95
    assert dice(labels == 2, array * (np.arange(50) >= 24) > 0) > 0.95
    # every slice was made into a frame and encoded once, although both sweeps cross 8..20
    assert session.frames_made == session.slices_encoded == len(model.encoded)


def test_one_direction_then_the_other():
    truth = ellipsoid(SHAPE, CENTER, RADII) > 0
    session = make_session()
    session.add_box(1, 15, (10, 12, 30, 36))
    labels = session.propagate(direction="forward")
    present = np.flatnonzero((labels == 1).any(axis=(1, 2)))
    assert (present[0], present[-1]) == (15, 23)
    labels = session.propagate(direction="backward")
    assert dice(labels == 1, truth) > 0.97


def test_auto_window_treats_hounsfield_values_of_unknown_modality_as_ct():
    from volume import resolve_window

    ct_like = np.full((4, 8, 8), -1000, np.int16)
    ct_like[:, 2:6, 2:6] = 50
    assert resolve_window("auto", ct_like, "OT").name == "soft_tissue"
    mr_like = np.abs(ct_like).astype(np.int16)
    assert resolve_window("auto", mr_like, "OT").name.startswith("percentile")
    assert resolve_window("lung", mr_like, "MR").low == -600 - 750


def test_auto_window_treats_ct_with_scanner_padding_as_ct():
    from volume import resolve_window

    padded = np.full((4, 16, 16), -3024, np.int16)  # outside the field of view
    padded[:, 2:14, 2:14] = -1000
    padded[:, 5:11, 5:11] = 40
    assert resolve_window("auto", padded, "OT").name == "soft_tissue"
