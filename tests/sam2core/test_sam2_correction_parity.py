"""Corrections on tracked frames: our `VideoPredictor` against the official `SAM2VideoPredictor`.

The interactive workflow at the model's 256-pixel input, same random weights, 20 synthetic
frames (JPEGs, so both decode the same pixels): a box on the middle frame (and a click for a
second object), propagation forward and backward from there, then a click on a later tracked
frame re-propagated forward and a click on an earlier tracked frame re-propagated backward.
Both corrected frames lie more than `num_maskmem` frames from every prompt and from where the
last propagation ended, so their previous mask logits (the official predictor feeds them to
the decoder as a mask prompt) and their neighbours' memories have been offloaded from RAM
and must come back exactly. Every output: 100 % equal masks, logits within 1e-3 x max|logit|.
Run with the official default (corrections stay non-conditioning) and with ours
(corrections become conditioning frames).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2core.sam2_build import build_sam2
from sam2core.video_predictor import VideoPredictor
from tests.sam2core.sam2_oracle import (  # noqa: F401 (one_thread is a fixture)
    assert_logits_match,
    build_official,
    one_thread,
    random_weights,
    skip_without_official,
)

pytestmark = [skip_without_official, pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

MODEL = "sam2.1_hiera_tiny"
IMAGE_SIZE = 256
NUM_FRAMES = 20
HEIGHT, WIDTH = 100, 120  # (y, x) frame size
MIDDLE = 10
LATER, EARLIER = 17, 2  # corrected frames: 7 and 8 frames from the prompt
BOX = dict(box=[20.0, 30.0, 65.0, 75.0])
SECOND = dict(points=[[90.0, 30.0]], labels=[1])
LATER_CLICK = dict(points=[[70.0, 75.0]], labels=[0])
EARLIER_CLICK = dict(points=[[35.0, 40.0]], labels=[1])
OBJ_SCORE_BIAS = "sam_mask_decoder.pred_obj_score_head.layers.2.bias"


def synthetic_frames_rgb_u8() -> list[np.ndarray]:
    """(y, x, 3) uint8 frames: a disc drifting down-right and a bar drifting left, over a texture."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    frames = []
    for t in range(NUM_FRAMES):
        disc = ((yy - 50 - 1.5 * t) ** 2 + (xx - 40 - 1.0 * t) ** 2) < 18.0 ** 2
        bar = (np.abs(yy - 30) < 12) & (np.abs(xx - 90 + 1.5 * t) < 18)
        image = np.stack([0.15 + 0.7 * disc, 0.25 + 0.6 * bar, 0.45 + 0.1 * np.sin(xx / 5.0 + yy / 9.0)], axis=-1)
        frames.append((np.clip(image, 0, 1) * 255).astype(np.uint8))
    return frames


def run_workflow(predictor, state) -> dict:
    """Prompt, propagate both ways, then two corrections each re-propagated; every output keyed by (step, frame)."""
    outputs = {}
    outputs[("box", MIDDLE)] = predictor.add_new_points_or_box(state, MIDDLE, 1, **BOX)[2].clone()
    outputs[("second object", MIDDLE)] = predictor.add_new_points_or_box(state, MIDDLE, 2, **SECOND)[2].clone()
    for step, reverse in (("forward", False), ("backward", True)):
        for frame_idx, _, masks in predictor.propagate_in_video(state, start_frame_idx=MIDDLE, reverse=reverse):
            outputs[(step, frame_idx)] = masks.clone()
    for name, frame_idx, click, reverse in (("later", LATER, LATER_CLICK, False),
                                            ("earlier", EARLIER, EARLIER_CLICK, True)):
        outputs[(f"{name} click", frame_idx)] = predictor.add_new_points_or_box(state, frame_idx, 1, **click)[2].clone()
        for tracked_idx, _, masks in predictor.propagate_in_video(state, start_frame_idx=frame_idx, reverse=reverse):
            outputs[(f"after {name} click", tracked_idx)] = masks.clone()
    return outputs


@pytest.fixture(scope="module")
def frames_and_weights(tmp_path_factory, one_thread):
    folder: Path = tmp_path_factory.mktemp("frames")
    for index, frame in enumerate(synthetic_frames_rgb_u8()):
        Image.fromarray(frame).save(folder / f"{index:05d}.jpg", quality=95)
    decoded = [np.array(Image.open(folder / f"{i:05d}.jpg").convert("RGB")) for i in range(NUM_FRAMES)]
    frames = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255.0 for f in decoded])
    official = build_official(MODEL, image_size=IMAGE_SIZE, video=True)
    weights = random_weights(official, seed=0)
    weights[OBJ_SCORE_BIAS].fill_(3.0)  # objects present: logits are not all -1024
    official.load_state_dict(weights, strict=True)
    official.eval()
    return folder, frames, weights, official


@pytest.mark.parametrize("corrections_condition", [False, True], ids=["official-default", "ours-default"])
def test_corrections_on_tracked_frames_match_the_official_predictor(frames_and_weights, corrections_condition):
    folder, frames, weights, official = frames_and_weights
    official.add_all_frames_to_correct_as_cond = corrections_condition
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no CUDA hole-filling kernel on CPU
        reference = run_workflow(official, official.init_state(str(folder)))

    model = build_sam2(MODEL, image_size=IMAGE_SIZE)
    model.load_state_dict(weights, strict=True)
    model.eval()
    predictor = VideoPredictor(model, add_all_frames_to_correct_as_cond=corrections_condition)
    state = predictor.init_state(frames)
    ours = run_workflow(predictor, state)

    assert set(ours) == set(reference)
    assert state.features.num_computed == NUM_FRAMES  # every frame encoded once across the five calls
    assert state.store.num_reads > 0  # offloaded outputs were read back for the corrections
    for key in sorted(reference, key=str):
        assert_logits_match(ours[key], reference[key], f"{key[0]} frame {key[1]}")
        assert torch.equal(ours[key] > 0, reference[key] > 0), f"{key[0]} frame {key[1]}: masks differ"
    for name, frame_idx in (("later", LATER), ("earlier", EARLIER)):  # the corrections changed something
        before = reference[("forward" if name == "later" else "backward", frame_idx)]
        assert not torch.equal(reference[(f"{name} click", frame_idx)] > 0, before > 0)
    positive = torch.cat([(m > 0).float().flatten() for m in reference.values()]).mean().item()
    assert 0.01 < positive < 0.99, f"degenerate reference: {positive:.3f} of pixels positive"
