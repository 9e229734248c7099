"""Behaviour of the streaming `VideoPredictor` with a tiny random-weight SAM 2.1 model (64-pixel input).

Frames are fetched on demand, the feature cache and memory bank stay bounded, corrections
steer later frames, stopping mid-way leaves a resumable state, bad prompts raise PromptError.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2core import LazyFrames, PromptError, VideoPredictor
from sam2core.sam2_build import build_sam2
from tests.sam2core.sam2_oracle import one_thread, random_weights  # noqa: F401 (one_thread is a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGE_SIZE = 64
HEIGHT, WIDTH = 48, 56
OBJ_SCORE_BIAS = "sam_mask_decoder.pred_obj_score_head.layers.2.bias"


@pytest.fixture(scope="module")
def model(one_thread):
    model = build_sam2("sam2.1_hiera_tiny", image_size=IMAGE_SIZE)
    weights = random_weights(model, seed=5)
    weights[OBJ_SCORE_BIAS].fill_(3.0)  # objects present: masks are not all "no object"
    model.load_state_dict(weights, strict=True)
    return model.eval()


def make_frames(num_frames: int, seed: int = 0) -> torch.Tensor:
    """(T, 3, H, W) in [0, 1]: a bright disc drifting over smooth noise."""
    generator = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(HEIGHT, dtype=torch.float32), torch.arange(WIDTH, dtype=torch.float32),
                            indexing="ij")
    frames = []
    for t in range(num_frames):
        disc = (((yy - 24 - 0.3 * t) ** 2 + (xx - 20 - 0.4 * t) ** 2) < 100).float()
        noise = torch.rand(3, HEIGHT, WIDTH, generator=generator) * 0.2
        frames.append((0.2 + 0.6 * disc[None] + noise).clamp(0, 1))
    return torch.stack(frames)


class CountingFrames:
    """A frame source that counts which frames were asked for."""

    def __init__(self, frames: torch.Tensor) -> None:
        self.frames = frames
        self.calls: list[int] = []

    def __call__(self, index: int) -> torch.Tensor:
        self.calls.append(index)
        return self.frames[index]


def prompt(predictor, state, frame_idx=4):
    predictor.add_new_points_or_box(state, frame_idx, 1, points=[[20.0, 24.0]], labels=[1])
    return predictor.add_new_points_or_box(state, frame_idx, 2, box=[30.0, 5.0, 50.0, 20.0])


def collect(iterator) -> dict[int, torch.Tensor]:
    return {frame_idx: masks.clone() for frame_idx, _, masks in iterator}


def test_lazy_frames_are_fetched_only_when_encoded(model):
    source = CountingFrames(make_frames(12))
    predictor = VideoPredictor(model)
    state = predictor.init_state(LazyFrames(12, source))
    assert source.calls == []
    prompt(predictor, state, frame_idx=4)
    assert source.calls == [4]
    list(predictor.propagate_in_video(state, start_frame_idx=4, max_frame_num_to_track=3))
    assert source.calls == [4, 5, 6, 7]


def test_lazy_frames_give_the_same_masks_as_a_tensor(model):
    frames = make_frames(6)
    predictor = VideoPredictor(model)
    outputs = []
    for source in (frames, LazyFrames(6, lambda i: frames[i].numpy())):
        state = predictor.init_state(source)
        prompt(predictor, state, frame_idx=2)
        outputs.append(collect(predictor.propagate_in_video(state)))
    assert outputs[0].keys() == outputs[1].keys() == {2, 3, 4, 5}
    for frame_idx in outputs[0]:
        assert torch.equal(outputs[0][frame_idx], outputs[1][frame_idx])


def test_masks_come_back_at_frame_resolution(model):
    predictor = VideoPredictor(model)
    state = predictor.init_state(make_frames(3))
    frame_idx, obj_ids, masks = prompt(predictor, state, frame_idx=0)
    assert (frame_idx, obj_ids, tuple(masks.shape)) == (0, [1, 2], (2, 1, HEIGHT, WIDTH))
    for _, _, masks in predictor.propagate_in_video(state):
        assert tuple(masks.shape) == (2, 1, HEIGHT, WIDTH)


def test_feature_cache_stays_within_its_size(model):
    predictor = VideoPredictor(model, feature_cache_size=3)
    state = predictor.init_state(make_frames(10))
    prompt(predictor, state, frame_idx=0)
    for _ in predictor.propagate_in_video(state):
        assert len(state.features) <= 3
    assert state.features.num_computed == 10  # every frame encoded once, none twice


def test_resident_memory_stays_bounded_over_a_long_sequence(model):
    num_frames = 40
    predictor = VideoPredictor(model, feature_cache_size=1)
    state = predictor.init_state(LazyFrames(num_frames, lambda i: make_frames(1, seed=i)[0]))
    prompt(predictor, state, frame_idx=0)
    memory_window = predictor.memory_window()
    num_cond = 1
    resident_bound = num_cond + (1 + num_cond) * (2 * memory_window + 1)
    counts = []
    for frame_idx, _, _ in predictor.propagate_in_video(state):
        for obj in state.objects:
            assert obj.bank.num_in_ram() <= resident_bound
            assert obj.bank.num_stored() == frame_idx + 1  # every output kept (offloaded far away)
        counts.append(state.objects[0].bank.num_in_ram())
    # far from the prompt, a constant number of outputs is resident, whatever the length
    assert counts[-1] == counts[-5]
    resident = [t for t, out in state.objects[0].bank.non_cond.items() if out.in_ram]
    # resident only near the last tracked frame and near the prompted frame 0
    assert all(t >= num_frames - 1 - memory_window or t <= memory_window for t in resident)
    assert len(resident) == 2 * memory_window + 1  # frames 1..6 and 33..39
    assert state.features.num_computed == num_frames and len(state.features) == 1


def test_offloaded_outputs_come_back_unchanged(model):
    frames = make_frames(16)
    outputs = []
    for offload_dir in (None, False):  # temporary folder, or kept in RAM
        predictor = VideoPredictor(model, offload_dir=offload_dir)
        state = predictor.init_state(frames)
        prompt(predictor, state, frame_idx=0)
        list(predictor.propagate_in_video(state))
        far = state.find(1).bank.non_cond[8]  # 8 frames from the prompt, 7 from the last tracked frame
        assert not far.in_ram
        outputs.append(far.pred_masks.clone())
        assert far.in_ram  # read back on access
        predictor.add_new_points_or_box(state, 8, 1, points=[[20.0, 24.0]], labels=[1])
        outputs.append(collect(predictor.propagate_in_video(state, start_frame_idx=8, max_frame_num_to_track=3)))
    assert torch.equal(outputs[0], outputs[2])
    for frame_idx in outputs[1]:
        assert torch.equal(outputs[1][frame_idx], outputs[3][frame_idx])


def test_features_pushed_out_of_ram_are_read_back_not_recomputed(model):
    counts = {}
    for feature_store_mib in (64, 0):
        predictor = VideoPredictor(model, feature_cache_size=2, feature_store_mib=feature_store_mib)
        state = predictor.init_state(make_frames(8))
        prompt(predictor, state, frame_idx=4)
        list(predictor.propagate_in_video(state, start_frame_idx=4))
        list(predictor.propagate_in_video(state, start_frame_idx=4, reverse=True))
        predictor.add_new_points_or_box(state, 6, 1, points=[[25.0, 30.0]], labels=[1])  # revisits 6 and 7
        list(predictor.propagate_in_video(state, start_frame_idx=6))
        counts[feature_store_mib] = (state.features.num_computed, state.features.num_loaded)
    assert counts[64] == (8, 2)  # each frame encoded once, two read back
    assert counts[0] == (10, 0)  # without a store, the two are encoded again


def test_obj_ids_limits_tracking_to_the_listed_objects(model):
    predictor = VideoPredictor(model)
    state = predictor.init_state(make_frames(6))
    prompt(predictor, state, frame_idx=1)
    seen = []
    for frame_idx, obj_ids, masks in predictor.propagate_in_video(state, obj_ids={2}):
        assert obj_ids == [1, 2]
        seen.append(frame_idx)
        if frame_idx > 1:
            assert (masks[0] < -1000).all()  # object 1 not tracked: "no object"
    assert seen == [1, 2, 3, 4, 5]
    assert sorted(state.find(1).bank.non_cond) == [] and sorted(state.find(2).bank.non_cond) == [2, 3, 4, 5]


def test_correction_on_a_tracked_frame_becomes_conditioning_and_changes_later_frames(model):
    predictor = VideoPredictor(model)
    state = predictor.init_state(make_frames(10))
    prompt(predictor, state, frame_idx=0)
    first = collect(predictor.propagate_in_video(state))
    predictor.add_new_points_or_box(state, 5, 1, points=[[20.0, 24.0], [45.0, 40.0]], labels=[0, 1])
    second = collect(predictor.propagate_in_video(state, start_frame_idx=5))
    obj = state.find(1)
    assert 5 in obj.bank.cond and 5 not in obj.bank.non_cond
    assert not torch.equal(first[5][0], second[5][0])
    assert not torch.equal(first[8][0], second[8][0])


def test_stopping_mid_way_leaves_a_state_that_resumes_identically(model):
    frames = make_frames(9)
    predictor = VideoPredictor(model)
    whole_state = predictor.init_state(frames)
    prompt(predictor, whole_state, frame_idx=1)
    whole = collect(predictor.propagate_in_video(whole_state))

    state = predictor.init_state(frames)
    prompt(predictor, state, frame_idx=1)
    part = {}
    for frame_idx, _, masks in predictor.propagate_in_video(state):
        part[frame_idx] = masks.clone()
        if frame_idx == 4:
            break
    scores = predictor.last_object_scores(state)
    assert set(scores) == {1, 2} and all(isinstance(v, float) for v in scores.values())
    part.update(collect(predictor.propagate_in_video(state, start_frame_idx=5)))
    assert part.keys() == whole.keys()
    for frame_idx in whole:
        assert torch.equal(part[frame_idx], whole[frame_idx]), frame_idx


def test_last_object_scores_follow_the_yielded_frame(model):
    predictor = VideoPredictor(model)
    state = predictor.init_state(make_frames(4))
    prompt(predictor, state, frame_idx=0)
    for frame_idx, _, _ in predictor.propagate_in_video(state):
        scores = predictor.last_object_scores(state)
        expected = state.find(1).bank.get(frame_idx).object_score_logits.item()
        assert scores[1] == pytest.approx(expected)


def test_non_overlap_keeps_one_object_per_pixel(model):
    predictor = VideoPredictor(model, non_overlap_masks=True)
    state = predictor.init_state(make_frames(4))
    predictor.add_new_points_or_box(state, 0, 1, box=[5.0, 5.0, 50.0, 45.0])
    predictor.add_new_points_or_box(state, 0, 2, box=[10.0, 8.0, 52.0, 40.0])
    for _, _, masks in predictor.propagate_in_video(state):
        assert ((masks > 0).sum(dim=0) <= 1).all()


def test_remove_object_and_reset_state(model):
    predictor = VideoPredictor(model)
    state = predictor.init_state(make_frames(4))
    prompt(predictor, state, frame_idx=0)
    obj_ids, updated = predictor.remove_object(state, 2)
    assert obj_ids == [1] and [f for f, _ in updated] == [0] and updated[0][1].shape[0] == 1
    for _, obj_ids, masks in predictor.propagate_in_video(state):
        assert obj_ids == [1] and masks.shape[0] == 1
    predictor.reset_state(state)
    assert state.obj_ids == []
    with pytest.raises(PromptError):
        next(predictor.propagate_in_video(state))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(frame_idx=5, points=[[10.0, 10.0]], labels=[1]),  # no such frame
        dict(frame_idx=-1, points=[[10.0, 10.0]], labels=[1]),
        dict(frame_idx=0, points=np.zeros((0, 2)), labels=np.zeros(0)),  # empty points, no box
        dict(frame_idx=0),  # nothing at all
        dict(frame_idx=0, points=[[10.0, 10.0]]),  # points without labels
        dict(frame_idx=0, points=[[10.0, 10.0]], labels=[1, 0]),  # label count mismatch
        dict(frame_idx=0, box=[30.0, 30.0, 10.0, 40.0]),  # empty box
        dict(frame_idx=0, points=[[WIDTH + 5.0, 10.0]], labels=[1]),  # outside the frame
    ],
)
def test_bad_prompts_raise_prompt_error(model, kwargs):
    predictor = VideoPredictor(model)
    state = predictor.init_state(make_frames(5))
    frame_idx = kwargs.pop("frame_idx")
    with pytest.raises(PromptError):
        predictor.add_new_points_or_box(state, frame_idx, 1, **kwargs)
    assert state.obj_ids == []


def test_bad_mask_prompt_raises_prompt_error(model):
    predictor = VideoPredictor(model)
    state = predictor.init_state(make_frames(5))
    with pytest.raises(PromptError):
        predictor.add_new_mask(state, 7, 1, np.ones((HEIGHT, WIDTH), bool))
    with pytest.raises(PromptError):
        predictor.add_new_mask(state, 0, 1, np.ones((1, HEIGHT, WIDTH), bool))


def test_mask_prompt_tracks(model):
    predictor = VideoPredictor(model)
    state = predictor.init_state(make_frames(4))
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[15:35, 10:30] = True
    _, obj_ids, masks = predictor.add_new_mask(state, 1, 7, mask)
    assert obj_ids == [7] and tuple(masks.shape) == (1, 1, HEIGHT, WIDTH)
    frames = [f for f, _, _ in predictor.propagate_in_video(state)]
    assert frames == [1, 2, 3]


def test_objects_tracked_in_one_batch_match_one_by_one(model, monkeypatch):
    frames = make_frames(5)
    calls = []
    real_track_step = model.track_step

    def counting_track_step(*args, **kwargs):
        calls.append(kwargs["current_vision_feats"][-1].shape[1])  # batch size
        return real_track_step(*args, **kwargs)

    monkeypatch.setattr(model, "track_step", counting_track_step)
    outputs = {}
    for batch_objects in (False, True):
        calls.clear()
        predictor = VideoPredictor(model, batch_objects=batch_objects)
        state = predictor.init_state(frames)
        prompt(predictor, state, frame_idx=0)
        outputs[batch_objects] = collect(predictor.propagate_in_video(state))
        # 2 prompt steps, then per propagated frame: one batch of 2, or two of 1
        assert calls == [1, 1] + ([2] * 4 if batch_objects else [1] * 8)
    for frame_idx, ref in outputs[False].items():
        err = (outputs[True][frame_idx] - ref).abs().max().item()
        assert err <= 1e-4 * ref.abs().max().item(), frame_idx


def test_last_object_scores_after_a_prompt_describe_the_prompted_frame(model):
    predictor = VideoPredictor(model)
    state = predictor.init_state(make_frames(4))
    prompt(predictor, state, frame_idx=0)
    list(predictor.propagate_in_video(state))
    predictor.add_new_points_or_box(state, 2, 1, points=[[25.0, 20.0]], labels=[1])
    scores = predictor.last_object_scores(state)
    assert scores[1] == pytest.approx(state.find(1).pending[2].output.object_score_logits.item())
    assert scores[2] == pytest.approx(state.find(2).bank.get(2).object_score_logits.item())
