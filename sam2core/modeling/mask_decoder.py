"""The SAM mask decoder: output tokens + image embedding -> mask logits, IoU, object score.

SAM 2 extras (all optional, off gives the SAM 1 decoder that LiteMedSAM uses):
high-resolution skip features, an object-score token/head, sigmoid IoU, and the
stability-based fallback to the best multimask output when a single mask is asked for.
"""

from __future__ import annotations

from typing import Optional, Type

import torch
from torch import nn

from sam2core.modeling.common import MLP, LayerNorm2d

# Object-score logit reported when the model has no object-score head: "surely present".
DEFAULT_OBJECT_SCORE_LOGIT = 10.0


class MaskDecoder(nn.Module):
    """Predicts masks from image and prompt embeddings with a two-way transformer."""

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: nn.Module,
        num_multimask_outputs: int = 3,
        activation: Type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        use_high_res_features: bool = False,
        iou_prediction_use_sigmoid: bool = False,
        dynamic_multimask_via_stability: bool = False,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
        pred_obj_scores: bool = False,
        pred_obj_scores_mlp: bool = False,
        use_multimask_token_for_obj_ptr: bool = False,
    ) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, transformer_dim)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr

        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            activation(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            # Projections of the stride-4 and stride-8 backbone maps, applied in SAM2Model.forward_image.
            self.conv_s0 = nn.Conv2d(transformer_dim, transformer_dim // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(transformer_dim, transformer_dim // 4, kernel_size=1)

        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            transformer_dim,
            iou_head_hidden_dim,
            self.num_mask_tokens,
            iou_head_depth,
            sigmoid_output=iou_prediction_use_sigmoid,
        )
        if pred_obj_scores:
            if pred_obj_scores_mlp:
                self.pred_obj_score_head = MLP(transformer_dim, transformer_dim, 1, 3)
            else:
                self.pred_obj_score_head = nn.Linear(transformer_dim, 1)

        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        repeat_image: Optional[bool] = None,
        high_res_features: Optional[list[torch.Tensor]] = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masks `(B, M, 4h, 4w)`, IoU `(B, M)`, SAM output tokens `(B, 1|3, C)`, object logits `(B, 1)`.

        M is 3 with `multimask_output`, else 1. `repeat_image=None` repeats the image
        embedding only when its batch differs from the prompts' (SAM 1 behaviour).
        """
        masks, iou_pred, mask_tokens_out, object_score_logits = self.predict_masks(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, repeat_image, high_res_features
        )
        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou_pred = self._dynamic_multimask_via_stability(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, 0:1], iou_pred[:, 0:1]

        if multimask_output and self.use_multimask_token_for_obj_ptr:
            sam_tokens_out = mask_tokens_out[:, 1:]
        else:
            # The single-mask token is the object-memory token (also after a 1-click multimask output).
            sam_tokens_out = mask_tokens_out[:, 0:1]
        return masks, iou_pred, sam_tokens_out, object_score_logits

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        repeat_image: Optional[bool] = None,
        high_res_features: Optional[list[torch.Tensor]] = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """All `num_mask_tokens` masks and IoUs, the mask tokens and the object-score logits."""
        batch = sparse_prompt_embeddings.size(0)
        tokens = torch.cat((self.output_tokens(batch), sparse_prompt_embeddings), dim=1)

        if repeat_image is None:
            repeat_image = image_embeddings.shape[0] != batch
        if repeat_image:
            src = torch.repeat_interleave(image_embeddings, batch, dim=0)
        else:
            if image_embeddings.shape[0] != batch:
                raise ValueError(
                    f"image batch {image_embeddings.shape[0]} differs from prompt batch {batch}; pass repeat_image=True"
                )
            src = image_embeddings
        src = src + dense_prompt_embeddings
        if image_pe.size(0) != 1:
            raise ValueError("image_pe must have batch size 1 (from PromptEncoder.get_dense_pe())")
        pos_src = image_pe.expand(batch, -1, -1, -1)
        hs, src_tokens = self.transformer(src, pos_src, tokens)
        return self.predict_from_tokens(hs, src_tokens, src.shape[-2:], high_res_features)

    def output_tokens(self, batch: int) -> torch.Tensor:
        """The learnt output tokens (object score, IoU, masks) for `batch` prompts: `(B, 1 + M [+ 1], C)`."""
        token_weights = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            token_weights.insert(0, self.obj_score_token.weight)
        return torch.cat(token_weights, dim=0).unsqueeze(0).expand(batch, -1, -1)

    def predict_from_tokens(
        self,
        hs: torch.Tensor,
        src_tokens: torch.Tensor,
        size_hw: tuple[int, int],
        high_res_features: Optional[list[torch.Tensor]] = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The heads on the transformer's output: tokens `hs` `(B, T, C)`, image tokens `(B, h*w, C)`."""
        first_mask_token = 2 if self.pred_obj_scores else 1  # index of the IoU token + 1
        iou_token_out = hs[:, first_mask_token - 1]
        mask_tokens_out = hs[:, first_mask_token : first_mask_token + self.num_mask_tokens]

        b, _, c = src_tokens.shape
        h, w = size_hw
        src = src_tokens.transpose(1, 2).reshape(b, c, h, w)
        if self.use_high_res_features:
            if high_res_features is None:
                raise ValueError("this decoder uses high-resolution features; pass high_res_features=[s0, s1]")
            dc1, ln1, act1, dc2, act2 = self.output_upscaling
            feat_s0, feat_s1 = high_res_features
            upscaled = act1(ln1(dc1(src) + feat_s1))
            upscaled = act2(dc2(upscaled) + feat_s0)
        else:
            upscaled = self.output_upscaling(src)

        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )  # (B, num_mask_tokens, C/8)
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, c, h * w)).reshape(b, -1, h, w)

        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0])
        else:
            object_score_logits = DEFAULT_OBJECT_SCORE_LOGIT * iou_pred.new_ones(iou_pred.shape[0], 1)
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def _stability_scores(self, mask_logits: torch.Tensor) -> torch.Tensor:
        """IoU between the masks thresholded at +delta and -delta, per mask."""
        flat = mask_logits.flatten(-2)
        delta = self.dynamic_multimask_stability_delta
        area_inner = torch.sum(flat > delta, dim=-1).float()
        area_outer = torch.sum(flat > -delta, dim=-1).float()
        return torch.where(area_outer > 0, area_inner / area_outer, 1.0)

    def _dynamic_multimask_via_stability(
        self, all_mask_logits: torch.Tensor, all_iou_scores: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Single mask, or the best multimask output when the single mask is unstable."""
        multi_logits, multi_iou = all_mask_logits[:, 1:], all_iou_scores[:, 1:]
        best = torch.argmax(multi_iou, dim=-1)
        rows = torch.arange(multi_iou.size(0), device=all_iou_scores.device)
        best_logits = multi_logits[rows, best].unsqueeze(1)
        best_iou = multi_iou[rows, best].unsqueeze(1)

        single_logits, single_iou = all_mask_logits[:, 0:1], all_iou_scores[:, 0:1]
        is_stable = self._stability_scores(single_logits) >= self.dynamic_multimask_stability_thresh  # (B, 1)
        mask_logits = torch.where(is_stable[..., None, None], single_logits, best_logits)
        iou_scores = torch.where(is_stable, single_iou, best_iou)
        return mask_logits, iou_scores
