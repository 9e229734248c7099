"""SAM2Model: the SAM 2 / 2.1 image encoder, SAM heads and streaming memory, one frame at a time.

Same method names, arguments and output-dict keys as the official `SAM2Base`, so that a
video predictor written against the official semantics drives it unchanged:
`forward_image` -> `_prepare_backbone_features` -> `track_step(...)` per frame, with the
memory read from `output_dict = {"cond_frame_outputs": {idx: out}, "non_cond_frame_outputs": {idx: out}}`.
Inference-oriented (dropout layers are kept but nothing else is training-specific).

What a predictor uses (all as in the official class):
- `forward_image(images (B, 3, S, S))` -> backbone dict; `_prepare_backbone_features(dict)`
  -> (dict, vision_feats [(HW, B, C)] x3, vision_pos_embeds, feat_sizes).
- `track_step(frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds,
  feat_sizes, point_inputs, mask_inputs, output_dict, num_frames, track_in_reverse=False,
  run_mem_encoder=True, prev_sam_mask_logits=None)` -> {"point_inputs", "mask_inputs",
  "pred_masks", "pred_masks_high_res", "obj_ptr", "object_score_logits",
  "maskmem_features", "maskmem_pos_enc"}.
- `_encode_new_memory(...)`, `_apply_non_overlapping_constraints(masks)`, `_use_mask_as_output`,
  `_forward_sam_heads`, `_prepare_memory_conditioned_features` (the memory methods are
  inherited from `Sam2MemoryMixin` in `sam2_memory.py`).
- Attributes: `image_size`, `num_maskmem`, `hidden_dim`, `mem_dim`, `max_obj_ptrs_in_encoder`,
  `memory_temporal_stride_for_eval`, `non_overlap_masks_for_mem_enc`,
  `use_mask_input_as_output_without_sam`, `binarize_mask_from_pts_for_mem_enc`,
  `fill_hole_area`, `config` (the `Sam2Config`), `device`.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from sam2core.modeling.common import MLP, flat_to_map, map_to_flat
from sam2core.modeling.image_encoder import build_image_encoder
from sam2core.modeling.mask_decoder import MaskDecoder
from sam2core.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer, RoPEAttention
from sam2core.modeling.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from sam2core.modeling.position_encoding import PositionEmbeddingSine
from sam2core.modeling.prompt_encoder import PromptEncoder
from sam2core.modeling.sam2_memory import Sam2MemoryMixin
from sam2core.modeling.two_way_transformer import TwoWayTransformer

# Mask logit written where the object-score head says the object is absent.
NO_OBJ_SCORE = -1024.0
# Mask prompts used directly as output: logits = mask * 20 - 10 (sigmoid(-10) ~ 4.5e-5).
MASK_AS_OUTPUT_SCALE, MASK_AS_OUTPUT_BIAS = 20.0, -10.0

# Flags copied from the config onto the model under the official attribute names.
_OPTION_NAMES = (
    "num_maskmem",
    "image_size",
    "backbone_stride",
    "sigmoid_scale_for_mem_enc",
    "sigmoid_bias_for_mem_enc",
    "binarize_mask_from_pts_for_mem_enc",
    "use_mask_input_as_output_without_sam",
    "max_cond_frames_in_attn",
    "directly_add_no_mem_embed",
    "use_high_res_features_in_sam",
    "multimask_output_in_sam",
    "multimask_min_pt_num",
    "multimask_max_pt_num",
    "multimask_output_for_tracking",
    "use_multimask_token_for_obj_ptr",
    "iou_prediction_use_sigmoid",
    "memory_temporal_stride_for_eval",
    "non_overlap_masks_for_mem_enc",
    "use_obj_ptrs_in_encoder",
    "max_obj_ptrs_in_encoder",
    "add_tpos_enc_to_obj_ptrs",
    "proj_tpos_enc_in_obj_ptrs",
    "use_signed_tpos_enc_to_obj_ptrs",
    "only_obj_ptrs_in_the_past_for_eval",
    "pred_obj_scores",
    "pred_obj_scores_mlp",
    "fixed_no_obj_ptr",
    "soft_no_obj_ptr",
    "use_mlp_for_obj_ptr_proj",
    "fill_hole_area",
)


class SAM2Model(Sam2MemoryMixin, nn.Module):
    """SAM 2 / SAM 2.1 / MedSAM2 built from a `Sam2Config` (official `SAM2Base` state-dict keys).

    The memory read/write methods come from `Sam2MemoryMixin` (sam2_memory.py).
    """

    is_image_model = False

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        for name in _OPTION_NAMES:
            setattr(self, name, getattr(config, name))
        trunk = config.trunk
        self.hidden_dim = config.d_model
        self.mem_dim = config.mem_dim
        self.num_feature_levels = 3 if self.use_high_res_features_in_sam else 1
        feat_side = config.image_size // config.backbone_stride

        self.image_encoder = build_image_encoder(
            embed_dim=trunk.embed_dim,
            num_heads=trunk.num_heads,
            stages=trunk.stages,
            global_att_blocks=trunk.global_att_blocks,
            window_pos_embed_bkg_spatial_size=trunk.window_pos_embed_bkg_spatial_size,
            window_spec=trunk.window_spec,
            d_model=config.d_model,
            fpn_top_down_levels=config.fpn_top_down_levels,
            fpn_interp_model=config.fpn_interp_model,
            scalp=config.scalp,
        )
        self.memory_attention = self._build_memory_attention(config, feat_side)
        self.memory_encoder = self._build_memory_encoder(config)

        if self.use_obj_ptrs_in_encoder:
            # Downsamples a full-resolution mask prompt to the SAM mask-prompt size.
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(self.num_maskmem, 1, 1, self.mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, self.hidden_dim))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, self.hidden_dim))
        if self.pred_obj_scores and self.use_obj_ptrs_in_encoder:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, self.hidden_dim))
        self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, self.mem_dim)) if config.no_obj_embed_spatial else None
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc, getattr(self, "no_obj_ptr", None), self.no_obj_embed_spatial):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        self._build_sam_heads(config)

    # ----------------------------------------------------------------- construction
    @staticmethod
    def _build_memory_attention(config, feat_side: int) -> MemoryAttention:
        d = config.d_model

        def rope_attention(**extra) -> RoPEAttention:
            return RoPEAttention(
                d, 1, downsample_rate=1, dropout=0.1, rope_theta=config.rope_theta, feat_sizes=(feat_side, feat_side), **extra
            )

        def layer() -> MemoryAttentionLayer:
            return MemoryAttentionLayer(
                activation="relu",
                cross_attention=rope_attention(rope_k_repeat=True, kv_in_dim=config.mem_dim),
                d_model=d,
                dim_feedforward=config.memory_attention_ffn_dim,
                dropout=0.1,
                pos_enc_at_attn=False,
                pos_enc_at_cross_attn_keys=True,
                pos_enc_at_cross_attn_queries=False,
                self_attention=rope_attention(),
            )

        return MemoryAttention(d_model=d, pos_enc_at_input=True, layer_factory=layer, num_layers=config.memory_attention_layers)

    @staticmethod
    def _build_memory_encoder(config) -> MemoryEncoder:
        d = config.d_model
        return MemoryEncoder(
            out_dim=config.mem_dim,
            mask_downsampler=MaskDownSampler(embed_dim=d, kernel_size=3, stride=2, padding=1, total_stride=16),
            fuser=Fuser(lambda: CXBlock(d, kernel_size=7, padding=3, layer_scale_init_value=1e-6), num_layers=2),
            position_encoding=PositionEmbeddingSine(num_pos_feats=config.mem_dim),
            in_dim=d,
        )

    def _build_sam_heads(self, config) -> None:
        self.sam_prompt_embed_dim = self.hidden_dim
        self.sam_image_embedding_size = self.image_size // self.backbone_stride
        side = self.sam_image_embedding_size
        self.sam_prompt_encoder = PromptEncoder(
            embed_dim=self.sam_prompt_embed_dim,
            image_embedding_size=(side, side),
            input_image_size=(self.image_size, self.image_size),
            mask_in_chans=16,
        )
        self.sam_mask_decoder = MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=self.sam_prompt_embed_dim, mlp_dim=2048, num_heads=8),
            transformer_dim=self.sam_prompt_embed_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
            use_high_res_features=self.use_high_res_features_in_sam,
            iou_prediction_use_sigmoid=self.iou_prediction_use_sigmoid,
            pred_obj_scores=self.pred_obj_scores,
            pred_obj_scores_mlp=self.pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr=self.use_multimask_token_for_obj_ptr,
            dynamic_multimask_via_stability=config.dynamic_multimask_via_stability,
            dynamic_multimask_stability_delta=config.dynamic_multimask_stability_delta,
            dynamic_multimask_stability_thresh=config.dynamic_multimask_stability_thresh,
        )
        if self.use_obj_ptrs_in_encoder:
            if self.use_mlp_for_obj_ptr_proj:
                self.obj_ptr_proj = MLP(self.hidden_dim, self.hidden_dim, self.hidden_dim, 3)
            else:
                self.obj_ptr_proj = nn.Linear(self.hidden_dim, self.hidden_dim)
        else:
            self.obj_ptr_proj = nn.Identity()
        if self.proj_tpos_enc_in_obj_ptrs:
            self.obj_ptr_tpos_proj = nn.Linear(self.hidden_dim, self.mem_dim)
        else:
            self.obj_ptr_tpos_proj = nn.Identity()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, *args, **kwargs):
        raise NotImplementedError("SAM2Model is driven frame by frame: use sam2core.VideoPredictor (or track_step)")

    # ----------------------------------------------------------------- image features
    def forward_image(self, img_batch: torch.Tensor) -> dict:
        """(B, 3, S, S) normalised images -> backbone dict; the two high-res levels pre-projected for the decoder."""
        backbone_out = self.image_encoder(img_batch)
        if self.use_high_res_features_in_sam:
            fpn = list(backbone_out["backbone_fpn"])
            fpn[0] = self.sam_mask_decoder.conv_s0(fpn[0])
            fpn[1] = self.sam_mask_decoder.conv_s1(fpn[1])
            backbone_out["backbone_fpn"] = fpn
        return backbone_out

    def _prepare_backbone_features(self, backbone_out: dict):
        """-> (backbone_out, vision_feats, vision_pos_embeds, feat_sizes); feats sequence-first `(H*W, B, C)`."""
        backbone_out = backbone_out.copy()
        fpn, pos = backbone_out["backbone_fpn"], backbone_out["vision_pos_enc"]
        if len(fpn) != len(pos) or len(fpn) < self.num_feature_levels:
            raise ValueError("backbone_out needs as many position encodings as feature levels")
        feature_maps = fpn[-self.num_feature_levels :]
        pos_maps = pos[-self.num_feature_levels :]
        feat_sizes = [(x.shape[-2], x.shape[-1]) for x in pos_maps]
        vision_feats = [map_to_flat(x) for x in feature_maps]
        vision_pos_embeds = [map_to_flat(x) for x in pos_maps]
        return backbone_out, vision_feats, vision_pos_embeds, feat_sizes

    # ----------------------------------------------------------------- SAM heads
    def _forward_sam_heads(
        self,
        backbone_features: torch.Tensor,
        point_inputs: Optional[dict] = None,
        mask_inputs: Optional[torch.Tensor] = None,
        high_res_features: Optional[list[torch.Tensor]] = None,
        multimask_output: bool = False,
    ):
        """Prompt encoder + mask decoder on `(B, C, h, w)` features.

        point_inputs: {"point_coords": (B, P, 2) pixel (x, y) in model-input space,
        "point_labels": (B, P) int}; mask_inputs: (B, 1, H', W') logits/binary.
        Returns (low_res_multimasks, high_res_multimasks, ious, low_res_masks,
        high_res_masks, obj_ptr, object_score_logits) as the official model.
        """
        b = backbone_features.size(0)
        device = backbone_features.device
        side = self.sam_image_embedding_size
        if backbone_features.shape[1:] != (self.sam_prompt_embed_dim, side, side):
            raise ValueError(f"backbone features {tuple(backbone_features.shape)} do not fit this model")

        if point_inputs is not None:
            coords, labels = point_inputs["point_coords"], point_inputs["point_labels"]
            if coords.size(0) != b or labels.size(0) != b:
                raise ValueError("point_inputs batch differs from the features' batch")
        else:
            coords = torch.zeros(b, 1, 2, device=device)
            labels = -torch.ones(b, 1, dtype=torch.int32, device=device)

        mask_prompt = None
        if mask_inputs is not None:
            if mask_inputs.dim() != 4 or mask_inputs.shape[:2] != (b, 1):
                raise ValueError(f"mask_inputs must be (B, 1, H, W), got {tuple(mask_inputs.shape)}")
            mask_prompt = mask_inputs
            if mask_inputs.shape[-2:] != self.sam_prompt_encoder.mask_input_size:
                mask_prompt = F.interpolate(
                    mask_inputs.float(),
                    size=self.sam_prompt_encoder.mask_input_size,
                    align_corners=False,
                    mode="bilinear",
                    antialias=True,
                )

        sparse, dense = self.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=mask_prompt)
        low_res_multimasks, ious, sam_output_tokens, object_score_logits = self.sam_mask_decoder(
            image_embeddings=backbone_features,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=False,
            high_res_features=high_res_features,
        )
        if self.pred_obj_scores:
            is_obj_appearing = object_score_logits > 0  # (B, 1)
            low_res_multimasks = torch.where(is_obj_appearing[:, None, None], low_res_multimasks, NO_OBJ_SCORE)

        low_res_multimasks = low_res_multimasks.float()
        high_res_multimasks = F.interpolate(
            low_res_multimasks, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )

        sam_output_token = sam_output_tokens[:, 0]
        if multimask_output:
            best = torch.argmax(ious, dim=-1)
            rows = torch.arange(b, device=device)
            low_res_masks = low_res_multimasks[rows, best].unsqueeze(1)
            high_res_masks = high_res_multimasks[rows, best].unsqueeze(1)
            if sam_output_tokens.size(1) > 1:
                sam_output_token = sam_output_tokens[rows, best]
        else:
            low_res_masks, high_res_masks = low_res_multimasks, high_res_multimasks

        obj_ptr = self.obj_ptr_proj(sam_output_token)
        if self.pred_obj_scores:
            presence = object_score_logits.sigmoid() if self.soft_no_obj_ptr else is_obj_appearing.float()
            obj_ptr = self._blend_no_obj_ptr(obj_ptr, presence)
        return low_res_multimasks, high_res_multimasks, ious, low_res_masks, high_res_masks, obj_ptr, object_score_logits

    def _blend_no_obj_ptr(self, obj_ptr: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        """Move the pointer towards the learned no-object pointer as presence (B, 1) goes to 0."""
        if self.fixed_no_obj_ptr:
            obj_ptr = presence * obj_ptr
        return obj_ptr + (1 - presence) * self.no_obj_ptr

    def _use_mask_as_output(
        self, backbone_features: torch.Tensor, high_res_features: Optional[list], mask_inputs: torch.Tensor
    ):
        """Turn a binary mask prompt (B, 1, S, S) directly into output logits (same outputs as `_forward_sam_heads`)."""
        mask_float = mask_inputs.float()
        high_res_masks = mask_float * MASK_AS_OUTPUT_SCALE + MASK_AS_OUTPUT_BIAS
        low_res_masks = F.interpolate(
            high_res_masks,
            size=(high_res_masks.size(-2) // 4, high_res_masks.size(-1) // 4),
            align_corners=False,
            mode="bilinear",
            antialias=True,
        )
        ious = mask_inputs.new_ones(mask_inputs.size(0), 1).float()
        if self.use_obj_ptrs_in_encoder:
            obj_ptr = self._forward_sam_heads(
                backbone_features=backbone_features,
                mask_inputs=self.mask_downsample(mask_float),
                high_res_features=high_res_features,
            )[5]
        else:
            obj_ptr = torch.zeros(mask_inputs.size(0), self.hidden_dim, device=mask_inputs.device)
        presence = torch.any(mask_float.flatten(1) > 0.0, dim=1)[..., None].float()  # (B, 1)
        object_score_logits = MASK_AS_OUTPUT_SCALE * presence + MASK_AS_OUTPUT_BIAS
        if self.pred_obj_scores:
            obj_ptr = self._blend_no_obj_ptr(obj_ptr, presence)
        return low_res_masks, high_res_masks, ious, low_res_masks, high_res_masks, obj_ptr, object_score_logits

    # ----------------------------------------------------------------- one tracking step
    def _use_multimask(self, is_init_cond_frame: bool, point_inputs: Optional[dict]) -> bool:
        """Multimask output on the first click(s) of a conditioning frame (or while tracking, if enabled)."""
        num_pts = 0 if point_inputs is None else point_inputs["point_labels"].size(1)
        return bool(
            self.multimask_output_in_sam
            and (is_init_cond_frame or self.multimask_output_for_tracking)
            and self.multimask_min_pt_num <= num_pts <= self.multimask_max_pt_num
        )

    def track_step(
        self,
        frame_idx: int,
        is_init_cond_frame: bool,
        current_vision_feats: list[torch.Tensor],
        current_vision_pos_embeds: list[torch.Tensor],
        feat_sizes: list[tuple[int, int]],
        point_inputs: Optional[dict],
        mask_inputs: Optional[torch.Tensor],
        output_dict: dict,
        num_frames: Optional[int],
        track_in_reverse: bool = False,
        run_mem_encoder: bool = True,
        prev_sam_mask_logits: Optional[torch.Tensor] = None,
    ) -> dict:
        """Segment one frame from its prompts and the memory in `output_dict`; optionally encode its memory.

        Returns {"point_inputs", "mask_inputs", "pred_masks" (B, 1, S/4, S/4),
        "pred_masks_high_res" (B, 1, S, S), "obj_ptr" (B, C), "object_score_logits" (B, 1)
        (eval only), "maskmem_features", "maskmem_pos_enc"}.
        """
        current_out = {"point_inputs": point_inputs, "mask_inputs": mask_inputs}
        if len(current_vision_feats) > 1:
            high_res_features = [flat_to_map(x, tuple(s)) for x, s in zip(current_vision_feats[:-1], feat_sizes[:-1])]
        else:
            high_res_features = None
        if mask_inputs is not None and self.use_mask_input_as_output_without_sam:
            pix_feat = flat_to_map(current_vision_feats[-1], tuple(feat_sizes[-1]))
            sam_outputs = self._use_mask_as_output(pix_feat, high_res_features, mask_inputs)
        else:
            pix_feat = self._prepare_memory_conditioned_features(
                frame_idx=frame_idx,
                is_init_cond_frame=is_init_cond_frame,
                current_vision_feats=current_vision_feats[-1:],
                current_vision_pos_embeds=current_vision_pos_embeds[-1:],
                feat_sizes=feat_sizes[-1:],
                output_dict=output_dict,
                num_frames=num_frames,
                track_in_reverse=track_in_reverse,
            )
            if prev_sam_mask_logits is not None:
                # A correction click: the previous mask logits are the mask prompt.
                if point_inputs is None or mask_inputs is not None:
                    raise ValueError("prev_sam_mask_logits needs point_inputs and no mask_inputs")
                mask_inputs = prev_sam_mask_logits
            sam_outputs = self._forward_sam_heads(
                backbone_features=pix_feat,
                point_inputs=point_inputs,
                mask_inputs=mask_inputs,
                high_res_features=high_res_features,
                multimask_output=self._use_multimask(is_init_cond_frame, point_inputs),
            )
        _, _, _, low_res_masks, high_res_masks, obj_ptr, object_score_logits = sam_outputs
        current_out["pred_masks"] = low_res_masks
        current_out["pred_masks_high_res"] = high_res_masks
        current_out["obj_ptr"] = obj_ptr
        if not self.training:
            current_out["object_score_logits"] = object_score_logits
        features, pos_enc = None, None
        if run_mem_encoder and self.num_maskmem > 0:
            features, pos_enc = self._encode_new_memory(
                current_vision_feats=current_vision_feats,
                feat_sizes=feat_sizes,
                pred_masks_high_res=high_res_masks,
                object_score_logits=object_score_logits,
                is_mask_from_pts=point_inputs is not None,
            )
        current_out["maskmem_features"] = features  # (B, mem_dim, H, W) or None
        current_out["maskmem_pos_enc"] = pos_enc  # [(B, mem_dim, H, W)] or None
        return current_out
