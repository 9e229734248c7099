"""Our SAM 2 / 2.1 model against the official `sam2` package, with the same random weights.

Image-encoder features, single-frame masks for point, box and mask prompts, a correction
click, and `track_step` on non-conditioning frames reading memory (two objects, both time
directions, absent objects). 256-pixel inputs keep this fast on CPU; every window size
still needs padding there, as at 1024.
"""

from __future__ import annotations

import copy

import pytest
import torch

from sam2core.sam2_build import build_sam2
from sam2core.sam2_configs import SAM2_CONFIGS
from tests.sam2core.sam2_oracle import (
    assert_logits_match,
    build_official,
    load_into_both,
    official_state_dict_shapes,
    random_weights,
    skip_without_official,
)

pytestmark = skip_without_official

IMAGE_SIZE = 256
OBJ_SCORE_BIAS = "sam_mask_decoder.pred_obj_score_head.layers.2.bias"


def assert_close(ours: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    scale = ref.abs().max().item()
    err = (ours.float() - ref.float()).abs().max().item()
    assert err <= 1e-4 * max(scale, 1.0), f"{what}: max error {err:.3g} (scale {scale:.3g})"


def assert_outputs_match(ours: dict, ref: dict, what: str) -> None:
    for key in ("pred_masks", "pred_masks_high_res"):
        assert_logits_match(ours[key], ref[key], f"{what} {key}")
    for key in ("obj_ptr", "object_score_logits", "maskmem_features"):
        assert_close(ours[key], ref[key], f"{what} {key}")
    assert len(ours["maskmem_pos_enc"]) == len(ref["maskmem_pos_enc"])
    for a, b in zip(ours["maskmem_pos_enc"], ref["maskmem_pos_enc"]):
        assert_close(a, b, f"{what} maskmem_pos_enc")


class Pair:
    """Our model and the official one with the same weights, and both encodings of one image."""

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.ours = build_sam2(name, image_size=IMAGE_SIZE)
        self.ref = build_official(name, image_size=IMAGE_SIZE)
        self.state = random_weights(self.ref, seed)
        # An object-score head that says "present", so the mask logits are not all -1024.
        self.state[OBJ_SCORE_BIAS].fill_(3.0)
        load_into_both(self.ours, self.ref, self.state)
        image = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            self.backbone_ours = self.ours.forward_image(image)
            self.backbone_ref = self.ref.forward_image(image)
        self.feats_ours = self.ours._prepare_backbone_features(self.backbone_ours)[1:]
        self.feats_ref = self.ref._prepare_backbone_features(self.backbone_ref)[1:]

    def reload(self, state: dict) -> None:
        load_into_both(self.ours, self.ref, state)

    def step(self, frame_idx, is_cond, outputs, num_objects=1, num_frames=12, **kwargs) -> tuple[dict, dict]:
        """track_step on both models; `outputs` is a pair of output dicts (ours, official)."""
        results = []
        for model, feats, output_dict in ((self.ours, self.feats_ours, outputs[0]), (self.ref, self.feats_ref, outputs[1])):
            vision_feats, vision_pos, feat_sizes = feats
            vision_feats = [x.expand(-1, num_objects, -1) for x in vision_feats]
            vision_pos = [x.expand(-1, num_objects, -1) for x in vision_pos]
            with torch.no_grad():
                results.append(
                    model.track_step(
                        frame_idx=frame_idx,
                        is_init_cond_frame=is_cond,
                        current_vision_feats=vision_feats,
                        current_vision_pos_embeds=vision_pos,
                        feat_sizes=feat_sizes,
                        output_dict=output_dict,
                        num_frames=num_frames,
                        **kwargs,
                    )
                )
        return results[0], results[1]


@pytest.fixture(scope="module", params=["sam2.1_hiera_tiny", "sam2_hiera_base_plus"])
def pair(request) -> Pair:
    return Pair(request.param, seed=1)


def empty_outputs() -> tuple[dict, dict]:
    return ({"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}, {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}})


def points(coords, labels) -> dict:
    return {
        "point_coords": torch.tensor(coords, dtype=torch.float32),
        "point_labels": torch.tensor(labels, dtype=torch.int32),
    }


@pytest.mark.parametrize("name", list(SAM2_CONFIGS))
def test_state_dict_keys_and_shapes_equal_official(name):
    with torch.device("meta"):
        ours = build_sam2(name)
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    ref_shapes = official_state_dict_shapes(name)
    assert set(ours_shapes) == set(ref_shapes), set(ours_shapes) ^ set(ref_shapes)
    assert ours_shapes == ref_shapes


def test_image_encoder_features_equal(pair):
    for level, (a, b) in enumerate(zip(pair.backbone_ours["backbone_fpn"], pair.backbone_ref["backbone_fpn"])):
        assert_close(a, b, f"backbone_fpn[{level}]")
    for level, (a, b) in enumerate(zip(pair.backbone_ours["vision_pos_enc"], pair.backbone_ref["vision_pos_enc"])):
        assert_close(a, b, f"vision_pos_enc[{level}]")
    assert_close(pair.backbone_ours["vision_features"], pair.backbone_ref["vision_features"], "vision_features")


PROMPTS = {
    "one_point_multimask": dict(point_inputs=points([[[100.0, 120.0]]], [[1]]), mask_inputs=None),
    "two_points_single_mask": dict(point_inputs=points([[[100.0, 120.0], [30.0, 200.0]]], [[1, 0]]), mask_inputs=None),
    "box_as_corner_points": dict(point_inputs=points([[[50.0, 60.0], [180.0, 200.0]]], [[2, 3]]), mask_inputs=None),
}


@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_single_frame_point_and_box_masks_equal(pair, prompt):
    ours, ref = pair.step(0, True, empty_outputs(), **PROMPTS[prompt])
    assert_outputs_match(ours, ref, prompt)


def test_single_frame_mask_prompt_equal(pair):
    mask = torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE)
    mask[..., 40:150, 60:210] = 1.0
    ours, ref = pair.step(0, True, empty_outputs(), point_inputs=None, mask_inputs=mask)
    assert_outputs_match(ours, ref, "mask prompt")


def test_correction_click_with_previous_logits_equal(pair):
    first, _ = pair.step(0, True, empty_outputs(), **PROMPTS["one_point_multimask"])
    prev_logits = first["pred_masks"]
    ours, ref = pair.step(
        0,
        True,
        empty_outputs(),
        point_inputs=points([[[100.0, 120.0], [150.0, 40.0]]], [[1, 1]]),
        mask_inputs=None,
        prev_sam_mask_logits=prev_logits,
    )
    assert_outputs_match(ours, ref, "correction")


def _build_memory_bank(pair: Pair, num_objects: int, reverse: bool) -> tuple[dict, dict]:
    """Conditioning frame 6 then three tracked frames on one side of it, checked frame by frame."""
    outputs = empty_outputs()
    coords = [[[100.0, 120.0]], [[60.0, 30.0]]][:num_objects]
    cond = pair.step(6, True, outputs, num_objects, point_inputs=points(coords, [[1]] * num_objects), mask_inputs=None)
    for side, out in zip(outputs, cond):
        side["cond_frame_outputs"][6] = out
    step = 1 if reverse else -1
    for frame in (6 - step, 6 - 2 * step, 6 - 3 * step):
        stepped = pair.step(frame, False, outputs, num_objects, point_inputs=None, mask_inputs=None, track_in_reverse=reverse)
        for side, out in zip(outputs, stepped):
            side["non_cond_frame_outputs"][frame] = out
        assert_outputs_match(*stepped, f"frame {frame}")
    return outputs


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_track_step_with_memory_two_objects_equal(pair, reverse):
    outputs = _build_memory_bank(pair, num_objects=2, reverse=reverse)
    # A frame further on, skipping one: its memory has gaps and pointers from 3 frames.
    frame = 1 if reverse else 11
    ours, ref = pair.step(frame, False, outputs, 2, point_inputs=None, mask_inputs=None, track_in_reverse=reverse)
    assert_outputs_match(ours, ref, "tracked frame")


def test_track_step_absent_object_equal(pair):
    absent = copy.copy(pair.state)
    absent[OBJ_SCORE_BIAS] = torch.full_like(pair.state[OBJ_SCORE_BIAS], -3.0)
    pair.reload(absent)
    try:
        outputs = empty_outputs()
        cond = pair.step(6, True, outputs, point_inputs=points([[[100.0, 120.0]]], [[1]]), mask_inputs=None)
        assert (cond[1]["object_score_logits"] < 0).all()
        for side, out in zip(outputs, cond):
            side["cond_frame_outputs"][6] = out
        ours, ref = pair.step(7, False, outputs, point_inputs=None, mask_inputs=None)
        assert_outputs_match(ours, ref, "absent object")
    finally:
        pair.reload(pair.state)


def _synthetic_bank(num_objects: int, num_frames: int, cond_frames: tuple[int, ...], seed: int = 5) -> dict:
    """Distinct random memories and pointers on every frame, so any selection mistake shows."""
    g = torch.Generator().manual_seed(seed)
    side = IMAGE_SIZE // 16
    bank = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    for frame in range(num_frames):
        out = {
            "maskmem_features": torch.randn(num_objects, 64, side, side, generator=g),
            "maskmem_pos_enc": [torch.randn(num_objects, 64, side, side, generator=g)],
            "obj_ptr": torch.randn(num_objects, 256, generator=g),
        }
        kind = "cond_frame_outputs" if frame in cond_frames else "non_cond_frame_outputs"
        bank[kind][frame] = out
    return bank


MEMORY_CASES = {
    "forward": dict(frame_idx=14, reverse=False),
    "reverse": dict(frame_idx=5, reverse=True),
    "near_first_frame": dict(frame_idx=2, reverse=False),
    "stride_3_forward": dict(frame_idx=16, reverse=False, stride=3),
    "stride_3_reverse": dict(frame_idx=4, reverse=True, stride=3),
    "two_cond_frames_max": dict(frame_idx=13, reverse=False, max_cond=2),
    "few_frames_caps_pointers": dict(frame_idx=6, reverse=False, num_frames=8),
}


@pytest.mark.parametrize("case", list(MEMORY_CASES))
def test_memory_selection_and_fusion_equal(pair, case):
    """Which memories and pointers are read, their temporal encodings, and the fused features."""
    spec = MEMORY_CASES[case]
    num_frames = spec.get("num_frames", 24)
    bank = _synthetic_bank(num_objects=2, num_frames=num_frames, cond_frames=(0, 9, 20))
    results = []
    for model, (feats, pos, sizes) in ((pair.ours, pair.feats_ours), (pair.ref, pair.feats_ref)):
        saved = (model.memory_temporal_stride_for_eval, model.max_cond_frames_in_attn)
        model.memory_temporal_stride_for_eval = spec.get("stride", 1)
        model.max_cond_frames_in_attn = spec.get("max_cond", -1)
        try:
            with torch.no_grad():
                results.append(
                    model._prepare_memory_conditioned_features(
                        frame_idx=spec["frame_idx"],
                        is_init_cond_frame=False,
                        current_vision_feats=[feats[-1].expand(-1, 2, -1)],
                        current_vision_pos_embeds=[pos[-1].expand(-1, 2, -1)],
                        feat_sizes=sizes[-1:],
                        output_dict=bank,
                        num_frames=num_frames,
                        track_in_reverse=spec["reverse"],
                    )
                )
        finally:
            model.memory_temporal_stride_for_eval, model.max_cond_frames_in_attn = saved
    assert_close(results[0], results[1], case)


def test_non_overlapping_constraints_equal(pair):
    logits = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(7)) * 5
    assert torch.equal(
        pair.ours._apply_non_overlapping_constraints(logits), pair.ref._apply_non_overlapping_constraints(logits)
    )


def test_memory_encoding_with_non_overlap_and_sigmoid_masks_equal(pair):
    """`_encode_new_memory` for 3 objects: non-overlap constraint on, masks from tracking (sigmoid, not binarised)."""
    g = torch.Generator().manual_seed(8)
    feats = [pair.feats_ours[0][-1].expand(-1, 3, -1)]
    sizes = pair.feats_ours[2][-1:]
    masks = torch.randn(3, 1, IMAGE_SIZE, IMAGE_SIZE, generator=g) * 8
    scores = torch.tensor([[2.0], [-1.0], [0.5]])
    encoded = []
    for model in (pair.ours, pair.ref):
        model.non_overlap_masks_for_mem_enc = True
        try:
            with torch.no_grad():
                encoded.append(model._encode_new_memory(feats, sizes, masks, scores, is_mask_from_pts=False))
        finally:
            model.non_overlap_masks_for_mem_enc = False
    assert_close(encoded[0][0], encoded[1][0], "maskmem_features")
    assert_close(encoded[0][1][0], encoded[1][1][0], "maskmem_pos_enc")
