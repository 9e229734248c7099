"""Our dataclass configs carry the same values as the official hydra yaml files (+ builder overrides)."""

from __future__ import annotations

import pytest

from sam2core.errors import UnknownModelError
from sam2core.modeling.sam2_model import _OPTION_NAMES
from sam2core.sam2_build import build_sam2, get_config
from sam2core.sam2_configs import SAM2_CONFIGS
from tests.sam2core.sam2_oracle import official_available, official_overrides

needs_official = pytest.mark.skipif(not official_available(), reason="official sam2 package not installed")


def _official_model_cfg(name: str) -> dict:
    import sam2  # noqa: F401  (initialises hydra)
    from hydra import compose
    from omegaconf import OmegaConf

    yaml_path, overrides = official_overrides(name, video=True)
    cfg = compose(config_name=yaml_path, overrides=overrides)
    return OmegaConf.to_container(cfg.model, resolve=True)


@needs_official
@pytest.mark.parametrize("name", list(SAM2_CONFIGS))
def test_config_values_equal_official_yaml(name):
    ours = get_config(name)
    ref = _official_model_cfg(name)
    # The video predictor builder's overrides live in our config too.
    ref.setdefault("binarize_mask_from_pts_for_mem_enc", True)
    ref.setdefault("fill_hole_area", 8)
    for option in _OPTION_NAMES:
        if option in ref:
            assert getattr(ours, option) == ref[option], option
    defaults_false = ("no_obj_embed_spatial", "proj_tpos_enc_in_obj_ptrs", "use_signed_tpos_enc_to_obj_ptrs")
    for option in defaults_false:
        assert getattr(ours, option) == ref.get(option, False), option

    trunk = ref["image_encoder"]["trunk"]
    assert ours.trunk.embed_dim == trunk["embed_dim"]
    assert ours.trunk.num_heads == trunk["num_heads"]
    assert list(ours.trunk.stages) == list(trunk.get("stages", [2, 3, 16, 3]))
    assert list(ours.trunk.global_att_blocks) == list(trunk.get("global_att_blocks", [12, 16, 20]))
    assert list(ours.trunk.window_pos_embed_bkg_spatial_size) == list(trunk.get("window_pos_embed_bkg_spatial_size", [14, 14]))
    assert list(ours.trunk.window_spec) == list(trunk.get("window_spec", [8, 4, 14, 7]))
    neck = ref["image_encoder"]["neck"]
    assert list(ours.trunk.backbone_channel_list) == list(neck["backbone_channel_list"])
    assert list(ours.fpn_top_down_levels) == list(neck["fpn_top_down_levels"])
    assert ours.fpn_interp_model == neck["fpn_interp_model"]
    assert ours.scalp == ref["image_encoder"]["scalp"]
    assert ours.mem_dim == ref["memory_encoder"]["out_dim"]
    assert ours.memory_attention_layers == ref["memory_attention"]["num_layers"]


def test_medsam2_is_sam21_tiny_at_512():
    medsam2, tiny = get_config("medsam2"), get_config("sam2.1_hiera_tiny")
    assert medsam2.image_size == 512
    assert medsam2.with_overrides(name=tiny.name, image_size=1024) == tiny


def test_image_size_override_sets_every_derived_size():
    model = build_sam2("sam2.1_hiera_tiny", image_size=256)
    assert model.image_size == 256
    assert model.sam_image_embedding_size == 16
    assert model.sam_prompt_encoder.mask_input_size == (64, 64)
    assert model.sam_prompt_encoder.input_image_size == (256, 256)


def test_unknown_name_raises_typed_error_listing_known_models():
    with pytest.raises(UnknownModelError, match="sam2.1_hiera_tiny"):
        get_config("sam3_hiera_huge")
