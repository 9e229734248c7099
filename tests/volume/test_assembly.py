"""3D clean-up worked inside the box of the labelled voxels: the same result as on the whole volume."""

from __future__ import annotations

import numpy as np

from volume.assembly import clean_labels, clean_session_labels, fill_holes_by_slice, keep_connected, nonzero_box


def _whole_volume_clean(labels: np.ndarray, seeds: dict, axis: int) -> np.ndarray:
    """The clean-up done on every voxel of the volume (no box): the reference."""
    out = np.zeros_like(labels)
    for obj in np.unique(labels[labels != 0]):
        mask = keep_connected(labels == obj, seeds[obj])
        out[fill_holes_by_slice(mask, axis) & ((labels == 0) | (labels == obj))] = obj
    return out


def test_clean_up_in_the_labelled_box_equals_the_whole_volume():
    labels = np.zeros((40, 30, 32), dtype=np.uint16)
    labels[10:16, 5:15, 4:14] = 1
    labels[12, 8:11, 4:8] = 0  # a notch open on the box's left edge: not a hole
    labels[13, 8:11, 7:10] = 0  # an enclosed hole: filled
    labels[10:16, 5:15, 14:20] = 2  # a second object touching the first
    labels[14, 17:19, 2:4] = 1  # an island not connected to object 1's prompt
    seeds = {1: np.zeros(labels.shape, bool), 2: np.zeros(labels.shape, bool)}
    seeds[1][11] = labels[11] == 1
    seeds[2][11] = labels[11] == 2
    assert nonzero_box(labels) == (slice(10, 16), slice(5, 19), slice(2, 20))
    cleaned = clean_labels(labels, seeds, axis=0)
    np.testing.assert_array_equal(cleaned, _whole_volume_clean(labels, seeds, axis=0))
    assert cleaned[13, 9, 8] == 1 and cleaned[12, 9, 5] == 0 and cleaned[14, 17, 2] == 0


def test_nothing_labelled_cleans_to_nothing():
    labels = np.zeros((3, 4, 5), dtype=np.uint16)
    assert nonzero_box(labels) is None
    assert not clean_labels(labels, {}).any()


def test_session_clean_up_seeds_each_object_on_its_prompted_slices_along_any_axis():
    labels = np.zeros((20, 24, 22), dtype=np.uint16)
    labels[4:10, 6:14, 5:12] = 1
    labels[14:16, 17:20, 5:12] = 1  # a second part of object 1, never prompted: dropped
    labels[4:10, 6:14, 12:18] = 2
    labels[7, 9:11, 7:9] = 0  # a hole on a slice of axis 0: filled
    for axis, prompts in ((0, {1: [5], 2: [8, 30]}), (1, {1: [7], 2: [10]})):
        seeds = {}
        for obj, slices in prompts.items():
            seeds[obj] = np.zeros(labels.shape, bool)
            for s in slices:
                if s < labels.shape[axis]:
                    index = [slice(None)] * 3
                    index[axis] = s
                    seeds[obj][tuple(index)] = labels[tuple(index)] == obj
        cleaned = clean_session_labels(labels, prompts, axis)
        np.testing.assert_array_equal(cleaned, _whole_volume_clean(labels, seeds, axis))
        assert not (cleaned[:, 17:20] == 1).any() and (cleaned[4:10, 6:14, 12:18] == 2).all()


def test_extra_seeds_keep_a_run_disconnected_from_the_prompt_and_nothing_beside_it():
    raw = np.zeros((20, 16, 16), dtype=np.uint16)
    raw[2:6, 4:10, 4:10] = 1  # the prompted run
    raw[8:12, 4:10, 4:10] = 1  # a run carried on past the empty slices 6-7
    raw[8:12, 13:15, 13:15] = 1  # an island on the same slices, not part of the carried piece
    seed = np.zeros((16, 16), dtype=bool)
    seed[4:10, 4:10] = True
    cleaned = clean_session_labels(raw, {1: [3]}, axis=0, extra_seeds={1: {8: seed}})
    assert (cleaned[8:12, 4:10, 4:10] == 1).all()
    assert not cleaned[8:12, 13:15, 13:15].any()
    assert not clean_session_labels(raw, {1: [3]}, axis=0)[8:12].any()  # without the seed the run goes
