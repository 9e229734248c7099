"""bf16 autocast runs our SAM 2 model end to end (device-agnostic) and stays close to float32."""

from __future__ import annotations

import torch

from sam2core.sam2_build import build_sam2
from tests.sam2core.sam2_oracle import random_weights

IMAGE_SIZE = 128


def _two_frames(model, image: torch.Tensor) -> tuple[dict, dict]:
    """A clicked conditioning frame, then a tracked frame that reads its memory."""
    with torch.no_grad():
        _, feats, pos, sizes = model._prepare_backbone_features(model.forward_image(image))
        output_dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        clicks = {"point_coords": torch.tensor([[[60.0, 70.0]]]), "point_labels": torch.tensor([[1]], dtype=torch.int32)}
        cond = model.track_step(0, True, feats, pos, sizes, clicks, None, output_dict, num_frames=2)
        output_dict["cond_frame_outputs"][0] = cond
        tracked = model.track_step(1, False, feats, pos, sizes, None, None, output_dict, num_frames=2)
    return cond, tracked


def test_bf16_autocast_masks_agree_with_float32():
    model = build_sam2("sam2.1_hiera_tiny", image_size=IMAGE_SIZE)
    state = random_weights(model, seed=3)
    state["sam_mask_decoder.pred_obj_score_head.layers.2.bias"].fill_(3.0)
    model.load_state_dict(state)
    image = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(3))

    reference = _two_frames(model, image)
    with torch.autocast(device_type=image.device.type, dtype=torch.bfloat16):
        low_precision = _two_frames(model, image)

    for ref, out in zip(reference, low_precision):
        masks = out["pred_masks_high_res"].float()
        assert torch.isfinite(masks).all()
        assert torch.isfinite(out["maskmem_features"].float()).all()
        agree = ((masks > 0) == (ref["pred_masks_high_res"] > 0)).float().mean().item()
        assert agree >= 0.97, f"bf16 masks agree with float32 on only {agree:.3%} of pixels"
