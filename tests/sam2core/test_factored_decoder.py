"""The exported decoder graph (attention projections factored onto the prompt tokens) computes
what `MaskDecoder.predict_masks` computes, for every prompt layout the engines receive."""

from __future__ import annotations

import pytest
import torch

from sam2core.lite_medsam.engines.factored_decoder import FactoredDecoderGraph
from sam2core.lite_medsam.model import build_lite_medsam

RELATIVE_TOLERANCE = 1e-5  # × max |logit|: float rounding of a reordered sum, not an approximation


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_lite_medsam()  # random weights: the identity holds for any weights


def _reference(model, features, sparse, dense):
    batch = sparse.shape[0]
    image = features.expand(batch, -1, -1, -1)
    masks, iou, _, _ = model.mask_decoder.predict_masks(image, model.prompt_encoder.get_dense_pe(), sparse,
                                                        dense.expand(batch, -1, -1, -1), repeat_image=False)
    return masks, iou


def _prompts(model, batch: int, with_points: bool):
    boxes = torch.tensor([[40.0, 50.0, 160.0, 200.0]]).repeat(batch, 1) + 6.0 * torch.arange(batch)[:, None]
    points = None
    if with_points:
        coords = torch.tensor([[[100.0, 120.0], [30.0, 30.0]]]).repeat(batch, 1, 1)
        points = (coords, torch.tensor([[1, 0]]).repeat(batch, 1))
    return model.prompt_encoder(points=points, boxes=boxes[:, None], masks=None)


@pytest.mark.parametrize("batch", [1, 3, 15])
@pytest.mark.parametrize("with_points", [False, True], ids=["boxes", "boxes+points"])
def test_factored_graph_equals_predict_masks_with_one_shared_dense_embedding(model, batch, with_points):
    features = torch.randn(1, 256, 64, 64)
    sparse, dense = _prompts(model, batch, with_points)
    graph = FactoredDecoderGraph(model.mask_decoder, model.prompt_encoder.get_dense_pe()).eval()
    with torch.no_grad():
        masks, iou = graph(features, sparse, dense[:1])
        ref_masks, ref_iou = _reference(model, features, sparse, dense[:1])
    assert masks.shape == ref_masks.shape == (batch, 4, 256, 256)
    assert (masks - ref_masks).abs().max() <= RELATIVE_TOLERANCE * ref_masks.abs().max()
    assert (iou - ref_iou).abs().max() <= RELATIVE_TOLERANCE * max(ref_iou.abs().max(), 1.0)


def test_factored_graph_equals_predict_masks_with_a_dense_embedding_per_prompt(model):
    """Mask prompts give each prompt its own dense embedding: the image tokens differ from the first layer on."""
    features = torch.randn(1, 256, 64, 64)
    sparse, _ = _prompts(model, 3, with_points=False)
    dense = 0.5 * torch.randn(3, 256, 64, 64)
    graph = FactoredDecoderGraph(model.mask_decoder, model.prompt_encoder.get_dense_pe()).eval()
    with torch.no_grad():
        masks, iou = graph(features, sparse, dense)
        ref_masks, ref_iou = _reference(model, features, sparse, dense)
    assert (masks - ref_masks).abs().max() <= RELATIVE_TOLERANCE * ref_masks.abs().max()
    assert (iou - ref_iou).abs().max() <= RELATIVE_TOLERANCE * max(ref_iou.abs().max(), 1.0)


def test_factored_graph_refuses_decoders_with_high_resolution_features(model):
    decoder = model.mask_decoder
    decoder.use_high_res_features = True
    try:
        with pytest.raises(ValueError, match="high-resolution"):
            FactoredDecoderGraph(decoder, model.prompt_encoder.get_dense_pe())
    finally:
        decoder.use_high_res_features = False


@pytest.mark.parametrize("tokens", [1, 4, 9])
def test_exported_graph_equals_predict_masks_for_points_and_mask_prompts(model, tmp_path, tokens):
    """The ONNX graph the engines run (ONNX Runtime here): dynamic prompts, tokens and dense batch."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'napari-sam2[fast]')")
    import numpy as np

    from sam2core.lite_medsam.engines.export import export_decoder

    path = tmp_path / "decoder.onnx"
    export_decoder(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    features = torch.randn(1, 256, 64, 64)
    batch = 3
    coords = torch.rand(batch, tokens, 2) * 256
    labels = torch.randint(0, 2, (batch, tokens))
    masks_in = torch.randn(batch, 1, 256, 256)
    sparse, dense = model.prompt_encoder(points=(coords, labels), boxes=None, masks=masks_in)  # dense: (B, ...)
    with torch.no_grad():
        ref_masks, ref_iou = _reference(model, features, sparse, dense)
    masks, iou = session.run(None, {"features": features.numpy(), "sparse": sparse.detach().numpy(),
                                    "dense": dense.detach().numpy()})
    scale = float(ref_masks.abs().max())
    assert masks.shape == tuple(ref_masks.shape)
    assert np.abs(masks - ref_masks.numpy()).max() <= 1e-4 * scale
    assert np.abs(iou - ref_iou.numpy()).max() <= 1e-4 * max(float(ref_iou.abs().max()), 1.0)


@pytest.mark.parametrize("prompt", ["boxes", "points", "box+mask", "box multimask"])
def test_torch_decoding_with_the_factored_graph_equals_the_decoder_as_written(model, prompt):
    from sam2core.lite_medsam.model import ImageEmbedding

    torch.manual_seed(1)
    frame = torch.rand(3, 96, 128)
    embedding = model.encode_image(frame)
    embedding = ImageEmbedding(torch.randn_like(embedding.features), embedding.geometry)  # features of any image

    def run():
        if prompt == "boxes":
            return model.decode_batch(embedding, [[10, 12, 60, 70], [20, 5, 120, 90], [0, 0, 127, 95]])
        if prompt == "points":
            return model.decode(embedding, points=[[30, 40], [90, 20]], labels=[1, 0])
        if prompt == "box+mask":
            mask = torch.zeros(96, 128)
            mask[20:60, 30:90] = 8.0
            return model.decode(embedding, box=[25, 15, 95, 65], mask_input=mask - 4.0)
        return model.decode(embedding, box=[25, 15, 95, 65], multimask=True)

    assert model.factored_decoder  # the default
    with torch.no_grad():
        logits, iou = run()
        model.factored_decoder = False
        try:
            ref_logits, ref_iou = run()
        finally:
            model.factored_decoder = True
    assert logits.shape == ref_logits.shape and iou.shape == ref_iou.shape
    assert (logits - ref_logits).abs().max() <= RELATIVE_TOLERANCE * ref_logits.abs().max()
    assert (iou - ref_iou).abs().max() <= RELATIVE_TOLERANCE * max(ref_iou.abs().max(), 1.0)
