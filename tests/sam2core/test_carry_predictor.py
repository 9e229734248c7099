"""CarryingPredictor: the streaming predictor API for image models, with a fast fake image model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2core.carry_predictor import CarryingPredictor
from sam2core.errors import PromptError
from sam2core.frames import LazyFrames
from tests.volume.fake_models import ThresholdImageModel


def cylinder_frames(num_frames=20, hw=(40, 60), centers=((20, 20),), radius=6, frames_with=None):
    """`(T, 3, H, W)` frames with bright discs (value 1) at `centers` (row, col) on `frames_with`."""
    yy, xx = np.mgrid[: hw[0], : hw[1]]
    frames = np.zeros((num_frames, 3, *hw), dtype=np.float32)
    for t in frames_with if frames_with is not None else range(num_frames):
        for cy, cx in centers:
            frames[t, :, (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = 1.0
    return torch.from_numpy(frames)


class UnderSegmentingModel(ThresholdImageModel):
    """Returns the bright pixels of the box shrunk by one pixel on every side."""

    def decode(self, embedding, points=None, labels=None, box=None, mask_input=None, multimask=False):
        if box is not None:
            x0, y0, x1, y1 = np.asarray(box, dtype=float).reshape(4)
            box = np.array([x0 + 1, y0 + 1, x1 - 1, y1 - 1])
        return super().decode(embedding, points, labels, box, mask_input, multimask)


def test_yields_frames_in_order_with_official_shapes():
    predictor = CarryingPredictor(ThresholdImageModel())
    state = predictor.init_state(cylinder_frames())
    frame_idx, obj_ids, logits = predictor.add_new_points_or_box(state, 5, 1, box=(12, 12, 28, 28))
    assert frame_idx == 5 and obj_ids == [1] and tuple(logits.shape) == (1, 1, 40, 60)
    seen = [f for f, _, masks in predictor.propagate_in_video(state, start_frame_idx=5, max_frame_num_to_track=3)]
    assert seen == [5, 6, 7, 8]
    seen = [f for f, _, _ in predictor.propagate_in_video(state, start_frame_idx=5, reverse=True)]
    assert seen == [5, 4, 3, 2, 1, 0]


def test_each_frame_is_encoded_once_for_all_objects():
    model = ThresholdImageModel()
    predictor = CarryingPredictor(model, cache_size=4)
    state = predictor.init_state(cylinder_frames(centers=((20, 15), (20, 45))))
    predictor.add_new_points_or_box(state, 0, 1, box=(7, 12, 23, 28))
    predictor.add_new_points_or_box(state, 0, 2, box=(37, 12, 53, 28))
    for frame_idx, obj_ids, logits in predictor.propagate_in_video(state):
        assert obj_ids == [1, 2]
        assert (logits[0, 0, 20, 15] > 0) and (logits[1, 0, 20, 45] > 0)
        assert (logits[0, 0, 20, 45] < 0) and (logits[1, 0, 20, 15] < 0)
    assert len(model.encoded) == 20 and state["num_encoded"] == 20
    assert len(state["cache"]) == 4


def test_object_gone_gives_negative_score():
    predictor = CarryingPredictor(ThresholdImageModel())
    state = predictor.init_state(cylinder_frames(frames_with=range(0, 10)))
    predictor.add_new_points_or_box(state, 4, 1, box=(12, 12, 28, 28))
    scores = {}
    for frame_idx, _, logits in predictor.propagate_in_video(state, start_frame_idx=4):
        scores[frame_idx] = predictor.last_object_scores(state)[1]
        if frame_idx >= 10:
            assert (logits <= 0).all()
    assert all(scores[t] > 0 for t in range(4, 10))
    assert all(scores[t] < 0 for t in range(10, 20))


def test_nothing_left_to_carry_means_no_encoding():
    model = ThresholdImageModel()
    predictor = CarryingPredictor(model)
    state = predictor.init_state(cylinder_frames(frames_with=range(0, 10)))
    predictor.add_new_points_or_box(state, 4, 1, box=(12, 12, 28, 28))
    list(predictor.propagate_in_video(state, start_frame_idx=4))
    # frames 10 and 11 are looked at (lookback 2), later frames have nothing to carry
    assert len(model.encoded) == 8


def test_mask_does_not_shrink_with_an_undersegmenting_model():
    predictor = CarryingPredictor(UnderSegmentingModel())
    frames = cylinder_frames()
    state = predictor.init_state(frames)
    predictor.add_new_points_or_box(state, 0, 1, box=(13, 13, 27, 27))  # one pixel beyond the disc
    truth = frames[0, 0] > 0.5
    for frame_idx, _, logits in predictor.propagate_in_video(state):
        assert torch.equal(logits[0, 0] > 0, truth), f"mask changed on frame {frame_idx}"


def test_carried_mask_does_not_leak_into_a_neighbour():
    # two discs 3 pixels apart; the box margins reach the neighbour, the dilation limit does not
    predictor = CarryingPredictor(ThresholdImageModel())
    frames = cylinder_frames(centers=((20, 20), (20, 35)))
    state = predictor.init_state(frames)
    predictor.add_new_points_or_box(state, 0, 1, box=(14, 14, 26, 26))
    for frame_idx, _, logits in predictor.propagate_in_video(state):
        assert not (logits[0, 0, :, 29:] > 0).any(), f"leaked on frame {frame_idx}"
        assert (logits[0, 0, 20, 20] > 0)


def test_consumer_may_stop_and_resume():
    predictor = CarryingPredictor(ThresholdImageModel())
    state = predictor.init_state(cylinder_frames())
    predictor.add_new_points_or_box(state, 0, 1, box=(12, 12, 28, 28))
    for frame_idx, _, _ in predictor.propagate_in_video(state):
        if frame_idx == 3:
            break
    resumed = [(f, bool((m[0, 0] > 0).any())) for f, _, m in predictor.propagate_in_video(state, start_frame_idx=4)]
    assert resumed[0] == (4, True) and all(present for _, present in resumed)


def test_lazy_frames_are_accepted():
    frames = cylinder_frames()
    predictor = CarryingPredictor(ThresholdImageModel())
    state = predictor.init_state(LazyFrames(len(frames), lambda i: frames[i].numpy()))
    predictor.add_new_points_or_box(state, 2, 1, points=[(20, 20)], labels=[1])
    assert sum(1 for _ in predictor.propagate_in_video(state)) == 18


def test_mask_prompt_is_the_frames_result():
    predictor = CarryingPredictor(ThresholdImageModel())
    state = predictor.init_state(cylinder_frames())
    mask = np.zeros((40, 60), bool)
    mask[15:25, 15:25] = True
    _, _, logits = predictor.add_new_mask(state, 3, 7, mask)
    assert torch.equal(logits[0, 0] > 0, torch.from_numpy(mask))


def test_remove_object_and_reset():
    predictor = CarryingPredictor(ThresholdImageModel())
    state = predictor.init_state(cylinder_frames())
    predictor.add_new_points_or_box(state, 0, 1, box=(12, 12, 28, 28))
    predictor.add_new_points_or_box(state, 0, 2, box=(0, 0, 5, 5))
    predictor.remove_object(state, 2)
    assert next(predictor.propagate_in_video(state))[1] == [1]
    with pytest.raises(PromptError):
        predictor.remove_object(state, 2)
    predictor.reset_state(state)
    with pytest.raises(PromptError):
        next(predictor.propagate_in_video(state))


@pytest.mark.parametrize("kwargs", [
    {"frame_idx": 20, "obj_id": 1, "box": (1, 1, 5, 5)},
    {"frame_idx": 0, "obj_id": 1},
    {"frame_idx": 0, "obj_id": 1, "points": [(1, 1), (2, 2)], "labels": [1]},
])
def test_bad_prompts_raise_prompt_error(kwargs):
    predictor = CarryingPredictor(ThresholdImageModel())
    state = predictor.init_state(cylinder_frames())
    with pytest.raises(PromptError):
        predictor.add_new_points_or_box(state, **kwargs)


def test_full_mask_is_full_logits_above_zero():
    from sam2core.predictor.carrying import _Output

    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(-2.0, 3.0, (40, 52)).astype(np.float32))
    logits[:5] = -1.0  # a crop window that does not start at the frame's edge
    for out in (_Output.from_logits(logits, 1.0), _Output.from_logits(torch.full((40, 52), -3.0), -1.0)):
        assert out.full_mask().dtype == torch.bool
        assert torch.equal(out.full_mask(), out.full_logits() > 0)


def _masks_past_a_gap(held: bool) -> dict[int, bool]:
    """Which frames get a mask when the disc is missing from frames 8-10 (optionally held 4..15)."""
    predictor = CarryingPredictor(ThresholdImageModel())
    state = predictor.init_state(cylinder_frames(frames_with=[f for f in range(20) if f not in (8, 9, 10)]))
    predictor.add_new_points_or_box(state, 4, 1, box=(12, 12, 28, 28))
    if held:
        predictor.set_held_range(state, 1, 4, 15)
    return {f: bool((logits[0, 0] > 0).any()) for f, _, logits in predictor.propagate_in_video(state, start_frame_idx=4)}


def test_held_range_carries_from_the_last_mask_however_far_back():
    masks = _masks_past_a_gap(held=True)
    assert not any(masks[f] for f in (8, 9, 10))
    assert all(masks[f] for f in range(11, 20))  # frame 11 carried from frame 7, four back; then on as usual


def test_without_a_held_range_nothing_is_carried_past_the_gap():
    masks = _masks_past_a_gap(held=False)
    assert not any(masks[f] for f in range(8, 20))  # lookback 2 finds no mask from frame 10 on


def test_held_range_is_cleared_with_none_and_with_the_object():
    predictor = CarryingPredictor(ThresholdImageModel())
    state = predictor.init_state(cylinder_frames())
    predictor.add_new_points_or_box(state, 4, 1, box=(12, 12, 28, 28))
    predictor.set_held_range(state, 1, 10, 2)
    assert state["held"][1] == (2, 10)
    predictor.set_held_range(state, 1, None, None)
    assert 1 not in state["held"]
    predictor.set_held_range(state, 1, 2, 10)
    predictor.remove_object(state, 1)
    assert 1 not in state["held"]
    with pytest.raises(PromptError):
        predictor.set_held_range(state, 1, 2, 10)


def test_held_range_carries_backward_from_the_nearest_mask_too():
    predictor = CarryingPredictor(ThresholdImageModel())
    state = predictor.init_state(cylinder_frames(frames_with=[f for f in range(20) if f not in (8, 9, 10)]))
    predictor.add_new_points_or_box(state, 15, 1, box=(12, 12, 28, 28))
    predictor.set_held_range(state, 1, 2, 15)
    masks = {f: bool((logits[0, 0] > 0).any())
             for f, _, logits in predictor.propagate_in_video(state, start_frame_idx=15, reverse=True)}
    assert not any(masks[f] for f in (8, 9, 10))
    assert all(masks[f] for f in range(0, 8))  # frame 7 carried from frame 11
