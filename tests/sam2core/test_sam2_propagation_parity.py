"""Our streaming `VideoPredictor` against the official `SAM2VideoPredictor`, same random weights.

12 synthetic frames (two moving shapes), written as JPEGs for the official loader and read
back with PIL for ours, so both see the same pixels. Two objects prompted on the middle
frame (clicks for one, a box for the other), propagated forward then backward from there.
Every yielded frame's logits agree to <= 1e-3 x max |logit| and >= 99.9 % thresholded.
Then a correction click on a frame tracked forward, and forward propagation from it.
Run once with the official model inside our predictor (proves the predictor alone) and once
with our model (proves the whole stack). A 128-pixel model input keeps this fast on CPU.
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
    load_into_both,
    one_thread,
    random_weights,
    skip_without_official,
)

pytestmark = [skip_without_official, pytest.mark.usefixtures("one_thread")]

MODEL = "sam2.1_hiera_tiny"
IMAGE_SIZE = 128
NUM_FRAMES = 12
HEIGHT, WIDTH = 100, 120  # (y, x) frame size: not square, not the model size
MIDDLE = NUM_FRAMES // 2
CLICKS = dict(points=[[40.0, 50.0], [95.0, 20.0]], labels=[1, 0])
BOX = dict(box=[70.0, 15.0, 110.0, 45.0])
CORRECTED = MIDDLE + 3
CORRECTION = dict(points=[[50.0, 60.0], [30.0, 40.0]], labels=[0, 1])
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


def run_session(predictor, state) -> dict:
    """Prompts then forward and backward propagation; every output keyed by (step, frame)."""
    outputs = {}
    _, obj_ids, masks = predictor.add_new_points_or_box(state, MIDDLE, 1, **CLICKS)
    outputs[("clicks", MIDDLE)] = masks.clone()
    _, obj_ids, masks = predictor.add_new_points_or_box(state, MIDDLE, 2, **BOX)
    outputs[("box", MIDDLE)] = masks.clone()
    assert list(obj_ids) == [1, 2]
    for direction, reverse in (("forward", False), ("backward", True)):
        for frame_idx, ids, masks in predictor.propagate_in_video(state, start_frame_idx=MIDDLE, reverse=reverse):
            assert list(ids) == [1, 2]
            outputs[(direction, frame_idx)] = masks.clone()
    # A correction click on a frame tracked forward: it becomes a conditioning frame.
    _, _, masks = predictor.add_new_points_or_box(state, CORRECTED, 1, **CORRECTION)
    outputs[("correction", CORRECTED)] = masks.clone()
    for frame_idx, _, masks in predictor.propagate_in_video(state, start_frame_idx=CORRECTED):
        outputs[("after correction", frame_idx)] = masks.clone()
    return outputs


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_thread):
    """The official predictor (random weights), its outputs, and the frames as our predictor gets them."""
    folder: Path = tmp_path_factory.mktemp("frames")
    for index, frame in enumerate(synthetic_frames_rgb_u8()):
        Image.fromarray(frame).save(folder / f"{index:05d}.jpg", quality=95)
    decoded = [np.array(Image.open(folder / f"{i:05d}.jpg").convert("RGB")) for i in range(NUM_FRAMES)]
    frames = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255.0 for f in decoded])

    official = build_official(MODEL, image_size=IMAGE_SIZE, video=True)
    weights = random_weights(official, seed=3)
    weights[OBJ_SCORE_BIAS].fill_(3.0)  # objects present: logits are not all -1024
    official.load_state_dict(weights, strict=True)
    official.eval()
    official.add_all_frames_to_correct_as_cond = True  # our default: corrections condition later frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no CUDA hole-filling kernel on CPU
        state = official.init_state(str(folder))
        ref = run_session(official, state)
    return official, weights, frames, ref


def check_against_reference(ours: dict, ref: dict) -> None:
    assert set(ours) == set(ref)
    assert len([k for k in ref if k[0] in ("forward", "backward")]) == NUM_FRAMES + 1  # middle frame twice
    assert len([k for k in ref if k[0] == "after correction"]) == NUM_FRAMES - CORRECTED
    for key in sorted(ref, key=str):
        assert_logits_match(ours[key], ref[key], f"{key[0]} frame {key[1]}")
    positive = torch.cat([(m > 0).float().flatten() for m in ref.values()]).mean().item()
    assert 0.01 < positive < 0.99, f"degenerate reference: {positive:.3f} of pixels positive"


def test_official_model_in_our_predictor_matches_official_predictor(reference):
    official, _, frames, ref = reference
    predictor = VideoPredictor(official, feature_cache_size=2)
    ours = run_session(predictor, predictor.init_state(frames))
    check_against_reference(ours, ref)


def test_our_model_in_our_predictor_matches_official_predictor(reference):
    official, weights, frames, ref = reference
    model = build_sam2(MODEL, image_size=IMAGE_SIZE)
    model.load_state_dict(weights, strict=True)
    model.eval()
    predictor = VideoPredictor(model, feature_cache_size=2)
    ours = run_session(predictor, predictor.init_state(frames))
    check_against_reference(ours, ref)


def test_frame_preprocessing_equals_the_official_loader(tmp_path):
    from sam2.utils.misc import _load_img_as_tensor

    from sam2core.predictor.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess_frame

    path = tmp_path / "frame.jpg"
    Image.fromarray(synthetic_frames_rgb_u8()[3]).save(path, quality=90)
    official, _, _ = _load_img_as_tensor(str(path), IMAGE_SIZE)
    official = official.float()
    official -= torch.tensor(IMAGENET_MEAN)[:, None, None]
    official /= torch.tensor(IMAGENET_STD)[:, None, None]
    decoded = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255.0
    ours = preprocess_frame(decoded, IMAGE_SIZE, torch.device("cpu"), resize_mode="pil")[0]
    assert torch.equal(ours, official)
