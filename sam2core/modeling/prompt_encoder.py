"""The SAM prompt encoder: points and boxes -> sparse tokens, a mask -> a dense embedding."""

from __future__ import annotations

from typing import Optional, Type

import torch
from torch import nn

from sam2core.modeling.common import LayerNorm2d
from sam2core.modeling.position_encoding import PositionEmbeddingRandom

# Point labels: -1 padding ("not a point"), 0 negative, 1 positive, 2 box top-left, 3 box bottom-right.
NOT_A_POINT = -1


class PromptEncoder(nn.Module):
    """Encodes prompts for the mask decoder (same keys for SAM 1 and SAM 2 checkpoints)."""

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
        activation: Type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = tuple(input_image_size)  # (h, w) of the padded model input
        self.image_embedding_size = tuple(image_embedding_size)  # (h, w) of the image embedding
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.num_point_embeddings = 4  # negative, positive, box corner 1, box corner 2
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(self.num_point_embeddings))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            activation(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image embedding grid, `(1, C, h, w)`."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """(B, N, 2) pixel (x, y) points and (B, N) labels -> (B, N [+1], C)."""
        points = points + 0.5  # pixel centres
        if pad:
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), NOT_A_POINT)], dim=1)
        pe = self.pe_layer.forward_with_coords(points, self.input_image_size)
        # Row k+1 of the table is the embedding added for label k (row 0: padding).
        table = torch.cat([self.not_a_point_embed.weight, *(e.weight for e in self.point_embeddings)], dim=0)
        labels = labels.long()
        known = (labels >= NOT_A_POINT) & (labels < self.num_point_embeddings)
        label_embed = table[(labels + 1).clamp(0, self.num_point_embeddings)]
        pe = torch.where((labels == NOT_A_POINT).unsqueeze(-1), torch.zeros_like(pe), pe)
        return torch.where(known.unsqueeze(-1), pe + label_embed, pe)

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """(B, 4) or (B, 1, 4) boxes (x0, y0, x1, y1) -> (B, 2, C) corner tokens."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        pe = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_embed = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight], dim=0)
        return pe + corner_embed

    def _embed_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, 1, 4h, 4w) mask logits -> (B, C, h, w)."""
        return self.mask_downscaling(masks)

    @staticmethod
    def _batch_size(points, boxes, masks) -> int:
        if points is not None:
            return points[0].shape[0]
        if boxes is not None:
            return boxes.shape[0]
        if masks is not None:
            return masks.shape[0]
        return 1

    def forward(
        self,
        points: Optional[tuple[torch.Tensor, torch.Tensor]],
        boxes: Optional[torch.Tensor],
        masks: Optional[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse `(B, N, C)` tokens for points/boxes and dense `(B, C, h, w)` embedding for the mask."""
        bs = self._batch_size(points, boxes, masks)
        device = self.point_embeddings[0].weight.device
        sparse = torch.empty((bs, 0, self.embed_dim), device=device)
        if points is not None:
            coords, labels = points
            sparse = torch.cat([sparse, self._embed_points(coords, labels, pad=boxes is None)], dim=1)
        if boxes is not None:
            sparse = torch.cat([sparse, self._embed_boxes(boxes)], dim=1)
        if masks is not None:
            dense = self._embed_masks(masks)
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(bs, -1, h, w)
        return sparse, dense
