"""LiteMedSAM: TinyViT encoder + SAM prompt encoder + SAM mask decoder, 256 input.

Image-model API (docs/interfaces.md): `encode_image(frame)` once per slice, then any number
of cheap `decode(embedding, points=..., box=..., mask_input=...)` calls.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Literal, Optional, Protocol, Sequence, Union

import numpy as np
import torch
from torch import nn

from sam2core.errors import PromptError
from sam2core.lite_medsam.preprocess import (
    DEFAULT_RESIZE_MODE,
    RESIZE_MODES,
    FrameGeometry,
    ResizeMode,
    box_to_input,
    mask_to_input,
    points_to_input,
    postprocess_logits,
    preprocess_frame,
)
from sam2core.lite_medsam.tiny_vit import LITE_MEDSAM_TINY_VIT, TinyViT, TinyViTConfig
from sam2core.modeling.mask_decoder import MaskDecoder
from sam2core.modeling.prompt_encoder import PromptEncoder
from sam2core.modeling.two_way_transformer import TwoWayTransformer

Precision = Literal["fp32", "bf16"]
PRECISIONS = ("fp32", "bf16")
ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float], Sequence[Sequence[float]]]


class InferenceBackend(Protocol):
    """Runs the encoder and mask decoder outside PyTorch (see `sam2core.lite_medsam.engines`)."""

    name: str  # engine name, e.g. "onnxruntime"
    precision: str  # encoder precision, e.g. "fp32", "bf16", "int8"

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """`(1, 3, 256, 256)` input → `(1, 256, 64, 64)` float32 embedding (cpu)."""

    def decode(self, features: torch.Tensor, sparse: torch.Tensor,
               dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding, `(B, N, 256)` sparse and `(B|1, 256, 64, 64)` dense prompts → all 4 masks `(B, 4, 256, 256)`, IoU `(B, 4)`."""


@dataclass(frozen=True)
class LiteMedSAMConfig:
    """Architecture and inference options of LiteMedSAM."""

    image_size: int = 256
    encoder: TinyViTConfig = field(default_factory=lambda: LITE_MEDSAM_TINY_VIT)
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    num_multimask_outputs: int = 3
    resize_mode: ResizeMode = DEFAULT_RESIZE_MODE


@dataclass
class ImageEmbedding:
    """One encoded frame: the `(1, 256, 64, 64)` embedding and how the frame maps onto the input."""

    features: torch.Tensor
    geometry: FrameGeometry

    @property
    def original_size(self) -> tuple[int, int]:
        return self.geometry.original_size

    @property
    def resized_size(self) -> tuple[int, int]:
        return self.geometry.resized_size


class LiteMedSAM(nn.Module):
    """LiteMedSAM with the image-model API.

    `precision` is the encoder's autocast dtype ("fp32" default: exact, and bf16 runs ~50x
    slower on CPUs without AVX-512 BF16 / AMX). `channels_last` (default) runs the encoder's
    convolutions channels-last with 1×1 convs as GEMMs: same numbers, ~2x faster on CPU.
    """

    is_image_model = True

    def __init__(self, config: LiteMedSAMConfig = LiteMedSAMConfig(), precision: Precision = "fp32",
                 channels_last: bool = True, use_sdpa: bool = True) -> None:
        super().__init__()
        if config.resize_mode not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {config.resize_mode!r}; expected one of {RESIZE_MODES}")
        self.config = config
        self.image_size = config.image_size
        self.image_encoder = TinyViT(config.encoder, use_sdpa=use_sdpa)
        embed_side = config.encoder.stage_resolutions()[-1]
        self.prompt_encoder = PromptEncoder(
            embed_dim=config.prompt_embed_dim,
            image_embedding_size=(embed_side, embed_side),
            input_image_size=(config.image_size, config.image_size),
            mask_in_chans=config.mask_in_chans,
        )
        self.mask_decoder = MaskDecoder(
            transformer_dim=config.prompt_embed_dim,
            transformer=TwoWayTransformer(
                depth=config.decoder_depth,
                embedding_dim=config.prompt_embed_dim,
                mlp_dim=config.decoder_mlp_dim,
                num_heads=config.decoder_heads,
                sam1_mlp_names=True,
            ),
            num_multimask_outputs=config.num_multimask_outputs,
        )
        self.precision: Precision = "fp32"
        self.set_precision(precision)
        self.backend: Optional[InferenceBackend] = None
        self.factored_decoder = True  # torch decodes with the factored graph (False: `mask_decoder` as written)
        self._factored_graph: dict = {}  # (device, PE buffer) -> FactoredDecoderGraph (a dict: not a submodule, not in state_dict)
        self.channels_last = False
        self.set_channels_last(channels_last)

    @property
    def device(self) -> torch.device:
        return self.prompt_encoder.no_mask_embed.weight.device

    @property
    def engine(self) -> str:
        """What runs the encoder (and so makes the embeddings): "torch", or the backend's engine name."""
        return "torch" if self.backend is None else self.backend.name

    @property
    def decoder_engine(self) -> str:
        """What runs the mask decoder: the encoder's engine unless the backend splits them."""
        return getattr(self.backend, "decoder_name", self.engine)

    @property
    def engine_precision(self) -> str:
        """The encoder's compute precision under the current engine ("fp32", "bf16" or "int8")."""
        return self.precision if self.backend is None else self.backend.precision

    def set_backend(self, backend: Optional[InferenceBackend]) -> None:
        """Run encoder and decoder with `backend` (an exported engine), or in PyTorch with None."""
        self.backend = backend

    def set_precision(self, precision: Precision) -> None:
        """Encoder compute precision in PyTorch: `"fp32"` (exact) or `"bf16"` (autocast)."""
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
        self.precision = precision

    def set_channels_last(self, enabled: bool) -> None:
        """Run the encoder's convolutions in channels-last memory layout."""
        self.channels_last = bool(enabled)
        fmt = torch.channels_last if enabled else torch.contiguous_format
        self.image_encoder.to(memory_format=fmt)

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def encode_input(self, images: torch.Tensor) -> torch.Tensor:
        """`(B, 3, 256, 256)` preprocessed input → `(B, 256, 64, 64)` float32 embedding."""
        if self.backend is not None:
            return torch.cat([self.backend.encode(image[None]) for image in images]).to(images.device)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            features = self.image_encoder(images)
        return features.float().contiguous()

    @torch.no_grad()
    def encode_image(self, frame: Union[np.ndarray, torch.Tensor]) -> ImageEmbedding:
        """Encode one `(3, H, W)` frame in [0, 1] (any size; resized/normalised/padded here)."""
        frame_t = torch.as_tensor(np.asarray(frame) if not isinstance(frame, torch.Tensor) else frame)
        x, geometry = preprocess_frame(frame_t.to(self.device, torch.float32), self.image_size,
                                       self.config.resize_mode)
        return ImageEmbedding(self.encode_input(x), geometry)

    @torch.no_grad()
    def decode(
        self,
        embedding: ImageEmbedding,
        points: Optional[ArrayLike] = None,
        labels: Optional[ArrayLike] = None,
        box: Optional[ArrayLike] = None,
        mask_input: Optional[Union[np.ndarray, torch.Tensor]] = None,
        multimask: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits `(K, H, W)` at frame resolution and predicted IoU `(K,)`; K = 3 if multimask else 1.

        Prompts are in frame pixels: points `(N, 2)` as `(x, y)` with labels `(N,)` (1 positive,
        0 negative), box `(x0, y0, x1, y1)`, mask_input `(H, W)` logits (or bool).
        """
        geometry = embedding.geometry
        device = self.device
        point_prompt = None
        if points is not None:
            coords = torch.as_tensor(np.asarray(points, dtype=np.float32) if not isinstance(points, torch.Tensor)
                                     else points, dtype=torch.float32, device=device).reshape(-1, 2)
            if labels is None:
                raise PromptError("points need labels (1 positive, 0 negative), one per point")
            labels_t = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels,
                                       device=device).reshape(-1).long()
            if labels_t.numel() != coords.shape[0]:
                raise PromptError(f"got {coords.shape[0]} points but {labels_t.numel()} labels")
            point_prompt = (points_to_input(coords, geometry)[None], labels_t[None])
        box_prompt = None
        if box is not None:
            box_prompt = box_to_input(self._check_boxes(box, single=True), geometry).reshape(1, 1, 4)
        mask_prompt = None
        if mask_input is not None:
            mask_t = torch.as_tensor(np.asarray(mask_input) if not isinstance(mask_input, torch.Tensor)
                                     else mask_input, device=device)
            mask_prompt = mask_to_input(mask_t, geometry, self.prompt_encoder.mask_input_size[0])
        if point_prompt is None and box_prompt is None and mask_prompt is None:
            raise PromptError("decode needs at least one prompt: points, box or mask_input")

        low_res, iou = self.decode_input(embedding.features, point_prompt, box_prompt, mask_prompt, multimask)
        logits = postprocess_logits(low_res, geometry)
        return logits[0], iou[0]

    @torch.no_grad()
    def decode_batch(self, embedding: ImageEmbedding, boxes: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
        """B box prompts on one embedding in one decoder call: logits `(B, H, W)` and IoU `(B,)`.

        `boxes` is `(B, 4)` `(x0, y0, x1, y1)` in frame pixels (inclusive, as in `decode`); the
        result equals B single-mask `decode(embedding, box=boxes[i])` calls.
        """
        boxes_t = self._check_boxes(boxes, single=False)
        if boxes_t.shape[0] == 0:
            h, w = embedding.geometry.original_size
            return torch.zeros((0, h, w), device=self.device), torch.zeros((0,), device=self.device)
        box_prompt = box_to_input(boxes_t, embedding.geometry)[:, None]  # (B, 1, 4)
        low_res, iou = self.decode_input(embedding.features, None, box_prompt, None, False)
        return postprocess_logits(low_res, embedding.geometry)[:, 0], iou[:, 0]

    def _check_boxes(self, boxes: ArrayLike, single: bool) -> torch.Tensor:
        """Boxes as a float32 tensor on the model's device: `(4,)` if `single`, else `(B, 4)`."""
        boxes_t = torch.as_tensor(np.asarray(boxes, dtype=np.float32) if not isinstance(boxes, torch.Tensor)
                                  else boxes, dtype=torch.float32, device=self.device)
        if single:
            boxes_t = boxes_t.reshape(-1)
            if boxes_t.numel() != 4:
                raise PromptError(f"box must be (x0, y0, x1, y1); got {boxes_t.numel()} numbers")
            rows = boxes_t[None]
        else:
            if boxes_t.ndim != 2 or boxes_t.shape[-1] != 4:
                raise PromptError(f"boxes must be (B, 4) rows of (x0, y0, x1, y1); got shape {tuple(boxes_t.shape)}")
            rows = boxes_t
        bad = ~((rows[:, 2] >= rows[:, 0]) & (rows[:, 3] >= rows[:, 1]))
        if bool(bad.any()):
            raise PromptError(f"box must have x0 <= x1 and y0 <= y1; got {rows[bad][0].tolist()}")
        return boxes_t

    @torch.no_grad()
    def decode_input(
        self,
        features: torch.Tensor,
        points: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
        boxes: Optional[torch.Tensor] = None,
        masks: Optional[torch.Tensor] = None,
        multimask: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts in model-input pixels → low-res logits `(B, K, 256, 256)` and IoU `(B, K)`."""
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=masks)
        if self.backend is not None:
            if masks is None:
                dense = dense[:1]  # the same "no mask" embedding for every prompt: broadcast in the graph
            all_masks, all_iou = self.backend.decode(features, sparse, dense)
            keep = slice(1, None) if multimask else slice(0, 1)
            return all_masks[:, keep], all_iou[:, keep]
        if self.factored_decoder and not self.mask_decoder.dynamic_multimask_via_stability \
                and features.shape[0] in (1, sparse.shape[0]):  # else the decoder as written repeats prompts
            from sam2core.lite_medsam.engines.factored_decoder import FactoredDecoderGraph

            # the engines' decoder graph, in torch: the same function with the image-side projections
            # moved onto the prompt tokens (1.1x faster at 1 prompt, 1.5x at 3, 3x at 15 on a 2-core CPU)
            # built once (it holds a copy of the positional encoding): again if the encoding's
            # buffer moved or was written (weights loaded) since
            pe_source = next(self.prompt_encoder.pe_layer.buffers())
            key = (features.device, pe_source.data_ptr(), pe_source._version)
            graph = self._factored_graph.get(key)
            if graph is None:
                graph = FactoredDecoderGraph(self.mask_decoder, self.prompt_encoder.get_dense_pe())
                self._factored_graph = {key: graph}
            all_masks, all_iou = graph(features, sparse, dense[:1] if masks is None else dense)
            keep = slice(1, None) if multimask else slice(0, 1)
            return all_masks[:, keep], all_iou[:, keep]
        masks_out, iou, _, _ = self.mask_decoder(
            image_embeddings=features,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        return masks_out, iou


def build_lite_medsam(precision: Precision = "fp32", channels_last: bool = True,
                      resize_mode: ResizeMode = DEFAULT_RESIZE_MODE) -> LiteMedSAM:
    """LiteMedSAM architecture (parameters not loaded), in eval mode."""
    model = LiteMedSAM(LiteMedSAMConfig(resize_mode=resize_mode), precision=precision, channels_last=channels_last)
    return model.eval()
