"""Plain-dataclass configs of the SAM 2, SAM 2.1 and MedSAM2 models (no hydra).

Values mirror the official yaml files of `sam2==1.1.0` (`sam2/configs/sam2*/`) plus the
overrides that the official video predictor builder applies (dynamic multimask via
stability, binarised memory masks on clicked frames, hole filling). MedSAM2 is SAM 2.1
tiny at 512 input (bowang-lab/MedSAM2 `sam2.1_hiera_t512`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class HieraConfig:
    """Hiera trunk size."""

    embed_dim: int
    num_heads: int
    stages: tuple[int, ...]
    global_att_blocks: tuple[int, ...]
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)

    @property
    def backbone_channel_list(self) -> tuple[int, ...]:
        """Channels of the stage outputs, lowest resolution first (what the FPN neck expects)."""
        return tuple(self.embed_dim * 2**i for i in range(len(self.stages)))[::-1]


@dataclass(frozen=True)
class Sam2Config:
    """Everything that defines a SAM 2 family model; field names follow the official SAM2Base arguments."""

    name: str
    trunk: HieraConfig
    image_size: int = 1024
    # Image encoder neck
    d_model: int = 256
    backbone_stride: int = 16
    scalp: int = 1
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    fpn_interp_model: str = "nearest"
    # Memory attention
    memory_attention_layers: int = 4
    memory_attention_ffn_dim: int = 2048
    rope_theta: float = 10000.0
    # Memory encoder
    mem_dim: int = 64
    # SAM2Base options
    num_maskmem: int = 7
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    binarize_mask_from_pts_for_mem_enc: bool = True  # official video predictor override
    use_mask_input_as_output_without_sam: bool = True
    max_cond_frames_in_attn: int = -1
    directly_add_no_mem_embed: bool = True
    use_high_res_features_in_sam: bool = True
    multimask_output_in_sam: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    multimask_output_for_tracking: bool = True
    use_multimask_token_for_obj_ptr: bool = True
    iou_prediction_use_sigmoid: bool = True
    memory_temporal_stride_for_eval: int = 1
    non_overlap_masks_for_mem_enc: bool = False
    use_obj_ptrs_in_encoder: bool = True
    max_obj_ptrs_in_encoder: int = 16
    add_tpos_enc_to_obj_ptrs: bool = True
    proj_tpos_enc_in_obj_ptrs: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = True
    only_obj_ptrs_in_the_past_for_eval: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    fixed_no_obj_ptr: bool = True
    soft_no_obj_ptr: bool = False
    use_mlp_for_obj_ptr_proj: bool = True
    no_obj_embed_spatial: bool = True
    # Mask decoder post-processing (official builder overrides)
    dynamic_multimask_via_stability: bool = True
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    # Predictor-level option of the official video predictor (holes up to this area in low-res masks are filled)
    fill_hole_area: int = 8

    def with_overrides(self, **overrides) -> "Sam2Config":
        """A copy with some fields replaced (e.g. `image_size=256` for fast tests)."""
        return replace(self, **overrides)


HIERA_TINY = HieraConfig(96, 1, (1, 2, 7, 2), (5, 7, 9), (7, 7))
HIERA_SMALL = HieraConfig(96, 1, (1, 2, 11, 2), (7, 10, 13), (7, 7))
HIERA_BASE_PLUS = HieraConfig(112, 2, (2, 3, 16, 3), (12, 16, 20), (14, 14))
HIERA_LARGE = HieraConfig(144, 2, (2, 6, 36, 4), (23, 33, 43), (7, 7), (8, 4, 16, 8))

# SAM 2 (July 2024) differs from SAM 2.1 in the memory: no spatial no-object embedding and
# no temporal encoding of object pointers.
_SAM2_MEMORY = dict(
    no_obj_embed_spatial=False,
    add_tpos_enc_to_obj_ptrs=False,
    proj_tpos_enc_in_obj_ptrs=False,
    use_signed_tpos_enc_to_obj_ptrs=False,
)

_SIZES = {"tiny": HIERA_TINY, "small": HIERA_SMALL, "base_plus": HIERA_BASE_PLUS, "large": HIERA_LARGE}


def _all_configs() -> dict[str, Sam2Config]:
    configs: dict[str, Sam2Config] = {}
    for size, trunk in _SIZES.items():
        configs[f"sam2.1_hiera_{size}"] = Sam2Config(name=f"sam2.1_hiera_{size}", trunk=trunk)
    for size, trunk in _SIZES.items():
        configs[f"sam2_hiera_{size}"] = Sam2Config(name=f"sam2_hiera_{size}", trunk=trunk, **_SAM2_MEMORY)
    configs["medsam2"] = Sam2Config(name="medsam2", trunk=HIERA_TINY, image_size=512)
    return configs


SAM2_CONFIGS: dict[str, Sam2Config] = _all_configs()

# The official yaml each config mirrors (relative to the `sam2` package), and its image-size override.
OFFICIAL_YAML: dict[str, tuple[str, int]] = {
    **{f"sam2.1_hiera_{s}": (f"configs/sam2.1/sam2.1_hiera_{a}.yaml", 1024) for s, a in
       [("tiny", "t"), ("small", "s"), ("base_plus", "b+"), ("large", "l")]},
    **{f"sam2_hiera_{s}": (f"configs/sam2/sam2_hiera_{a}.yaml", 1024) for s, a in
       [("tiny", "t"), ("small", "s"), ("base_plus", "b+"), ("large", "l")]},
    "medsam2": ("configs/sam2.1/sam2.1_hiera_t.yaml", 512),
}
