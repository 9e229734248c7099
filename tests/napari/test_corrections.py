"""Corrections and label policy as plain functions: paint history → mask prompts, lasso, scribble, no-overwrite."""

from __future__ import annotations

import numpy as np

from napari_sam2.widget.corrections import (
    labels_after,
    labels_before,
    lasso_mask,
    merge_plane,
    paint_corrections,
    scribble_points,
    touched_slices,
)


def test_a_paint_stroke_becomes_mask_prompts_for_the_objects_it_changed():
    from napari.layers import Labels

    data = np.zeros((4, 10, 10), dtype=np.uint16)
    data[1, 2:6, 2:6] = 1
    data[1, 6:9, 6:9] = 2
    layer = Labels(data.copy())
    strokes = []
    layer.events.paint.connect(lambda event: strokes.append(event.value))
    layer.data_setitem((np.array([1, 1]), np.array([2, 7]), np.array([2, 7])), 0)  # erase one pixel of each
    [stroke] = strokes
    before = labels_before(np.asarray(layer.data), stroke)
    np.testing.assert_array_equal(before, data)
    assert touched_slices(stroke, axis=0) == [1]
    items, skipped = paint_corrections(before, np.asarray(layer.data), 0, [1], objects=[1, 2])
    assert [(i.obj_id, i.slice_index) for i in items] == [(1, 1), (2, 1)] and not skipped
    assert items[0].mask.sum() == 15 and not items[0].mask[2, 2]


def test_labels_after_a_stroke_are_rebuilt_even_when_napari_emits_paint_before_writing():
    from napari.layers import Labels

    layer = Labels(np.zeros((3, 8, 8), dtype=np.uint16))
    seen = []
    layer.events.paint.connect(lambda event: seen.append((np.array(layer.data, copy=True),
                                                         labels_after(np.asarray(layer.data), event.value),
                                                         event.value)))
    layer.data_setitem((np.array([1, 1]), np.array([4, 5]), np.array([4, 4])), 7)  # atoms: (indices, old, new)
    written = np.array(layer.data, copy=True)
    layer.selected_label = 3
    layer.paint((1, 2, 2), 3)  # a masked atom, outside a mouse stroke
    assert len(seen) == 2  # napari 0.9 emits both before writing; a later napari may emit after: same answer
    for (at_event, after, stroke), final in zip(seen, (written, np.asarray(layer.data))):
        np.testing.assert_array_equal(after, final)
        np.testing.assert_array_equal(labels_before(after, stroke), at_event)


def test_erasing_an_object_from_a_slice_is_reported_not_sent():
    before = np.zeros((2, 5, 5), dtype=np.uint16)
    before[0, 1:3, 1:3] = 3
    items, skipped = paint_corrections(before, np.zeros_like(before), 0, [0], objects=[3])
    assert items == [] and "object 3 erased from slice 0" in skipped[0]


def test_lasso_fills_the_polygon_on_its_slice():
    square = np.array([(4, 2, 2), (4, 2, 7), (4, 7, 7), (4, 7, 2)], dtype=float)
    slice_index, mask = lasso_mask(square, (6, 10, 10), axis=0)
    assert slice_index == 4 and mask.shape == (10, 10)
    assert mask[3:7, 3:7].all() and not mask[8:, :].any()


def test_scribble_gives_points_spaced_along_the_path_on_its_slice():
    path = np.array([(2, 0, 0), (2, 0, 30)], dtype=float)
    slice_index, points = scribble_points(path, axis=0)
    assert slice_index == 2 and len(points) == 6
    np.testing.assert_allclose(points[:, 2], np.linspace(0, 30, 6))
    assert scribble_points(np.array([(1, 0, 0), (3, 0, 5)], dtype=float), axis=0) is None  # across slices


def test_no_overwrite_keeps_voxels_of_other_objects():
    old = np.array([[1, 1, 0, 7], [0, 2, 2, 7]], dtype=np.uint16)  # 7: painted by hand, unknown to the session
    new = np.array([[2, 2, 2, 0], [0, 0, 2, 2]], dtype=np.uint16)
    kept = merge_plane(old, new, protect=True, session_objects={1, 2})
    np.testing.assert_array_equal(kept, [[1, 1, 2, 7], [0, 0, 2, 7]])
    np.testing.assert_array_equal(merge_plane(old, new, protect=False, session_objects={1, 2}), new)
