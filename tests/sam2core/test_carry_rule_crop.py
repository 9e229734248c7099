"""`carry_mask` worked out in the previous mask's neighbourhood equals the full-frame rule (frozen oracle), bit for bit."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
from scipy import ndimage

from sam2core.predictor.carry_rule import AppearanceModel, CarryConfig, carry_mask, kept_at_end, presence_score
from tests.sam2core import _carry_rule_reference as reference


class _FixedModel:
    """`decode_batch` returns the first B of fixed candidate logits; `decode` (multimask / mask prompt) the rest."""

    def __init__(self, logits: torch.Tensor, iou: torch.Tensor):
        self.logits, self.iou = logits, iou

    def decode_batch(self, embedding, boxes):
        return self.logits[:len(boxes)], self.iou[:len(boxes)]

    def decode(self, embedding, box=None, mask_input=None, multimask=False):
        if multimask:
            return self.logits[-3:], self.iou[-3:]
        return self.logits[-1:], self.iou[-1:]


def _blob(shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float], rng) -> np.ndarray:
    """An irregular blob: an ellipse with a noisy edge."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    dist = np.sqrt(((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0) * 1.5
    return dist + noise * 0.15 < 1.0


def _case(shape, centre, radii, seed: int, n_candidates: int = 6):
    """Plane in [0, 1] (object bright, a neighbour mid-grey, noise), prompted mask, prev mask, candidate logits."""
    rng = np.random.default_rng(seed)
    obj = _blob(shape, centre, radii, rng)
    plane = 0.25 + 0.05 * rng.standard_normal(shape)
    plane[obj] = 0.65 + 0.05 * rng.standard_normal(int(obj.sum()))
    neighbour = _blob(shape, (centre[0] + radii[0] * 0.3, centre[1] + radii[1] * 1.6), radii, rng) & ~obj
    plane[neighbour] = 0.45
    plane = np.clip(plane, -0.1, 1.1).astype(np.float32)  # values outside [0, 1] too (clamped by the rule)
    prev = _blob(shape, centre, (radii[0] * 0.95, radii[1] * 0.95), rng)
    candidates = []
    for k in range(n_candidates):
        field = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0) * 30.0
        grown = ndimage.distance_transform_edt(~obj) - ndimage.distance_transform_edt(obj)  # signed distance
        logits = (-grown * (1.0 + 0.3 * k) + field).astype(np.float32)
        logits[rng.random(shape) > 0.999] = 5.0  # stray positive pixels far from the object
        if k == 2:
            logits[neighbour] = 9.0  # a leak into the neighbour
        candidates.append(logits)
    iou = torch.from_numpy(rng.uniform(0.6, 0.95, n_candidates).astype(np.float32))
    return torch.from_numpy(plane), torch.from_numpy(obj), torch.from_numpy(prev), _FixedModel(
        torch.from_numpy(np.stack(candidates)), iou)


CASES = {
    "middle": ((160, 200), (80, 95), (30, 35), 0),
    "left_edge": ((160, 200), (60, 10), (25, 30), 1),
    "bottom_right_corner": ((150, 170), (140, 160), (30, 28), 2),
    "large_object": ((256, 256), (128, 128), (90, 100), 3),
    "few_pixels": ((120, 140), (60, 70), (2.2, 2.6), 4),
}
CONFIGS = {
    "default": CarryConfig(),  # gate_all=True
    "gate_new_pixels": CarryConfig(gate_all=False),
    "signals_before_gate": CarryConfig(signals_before_gate=True, gate_all=False),
    "gate_all_signals_before_gate": CarryConfig(gate_all=True, signals_before_gate=True),
    "appearance_weight": CarryConfig(appearance_weight=0.7, margin_ratios=(0.0, 0.1, 0.2, 0.3)),
    "multimask_mask_prompt": CarryConfig(multimask=True, mask_prompt=True),
    "no_dilation": CarryConfig(dilation_ratio=None),
    "zero_dilation": CarryConfig(dilation_ratio=0.0, min_dilation_px=0),
    "strong_gate": CarryConfig(appearance_gate=0.6, dilation_ratio=0.3),
    "plain": CarryConfig.plain(),
}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small masks: a second intra-op thread only waits on a busy machine (~10x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _same(actual, expected) -> None:
    assert actual.logits.shape == expected.logits.shape and actual.logits.dtype == expected.logits.dtype
    assert torch.equal(actual.logits, expected.logits)
    assert actual.iou == expected.iou
    assert actual.score == expected.score or (math.isnan(actual.score) and math.isnan(expected.score))
    assert actual.signals.keys() - {"region_overlap"} == expected.signals.keys()  # the oracle predates it
    for key, value in expected.signals.items():
        got = actual.signals[key]
        assert got == value or (math.isnan(got) and math.isnan(value)), (key, got, value)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_carry_mask_equals_the_full_frame_rule(case, config):
    plane, obj, prev, model = _case(*CASES[case])
    appearance = AppearanceModel.learn(plane, obj)
    assert appearance is not None
    oracle_appearance = reference.AppearanceModel(**asdict(appearance))
    cfg = CONFIGS[config]
    for expected_iou in (None, 0.9):
        for with_appearance in (True, False):
            got = carry_mask(model, None, prev, cfg, expected_iou=expected_iou, plane=plane,
                             appearance=appearance if with_appearance else None)
            want = reference.carry_mask(model, None, prev, cfg, expected_iou=expected_iou, plane=plane,
                                        appearance=oracle_appearance if with_appearance else None)
            _same(got, want)
            # region_overlap (newer than the oracle): the share before the gate, so never below overlap
            assert got.signals["region_overlap"] >= want.signals["overlap"]
            if not with_appearance or cfg.appearance_gate == 0:
                assert got.signals["region_overlap"] == want.signals["overlap"]


def test_a_mask_filling_the_frame_and_candidates_empty_inside_the_allowed_region():
    plane, obj, prev, model = _case((64, 80), (32, 40), (12, 14), 5, n_candidates=3)
    appearance = AppearanceModel.learn(plane, obj)
    oracle_appearance = reference.AppearanceModel(**asdict(appearance))
    full = torch.ones_like(prev)
    empty_inside = model.logits.clone()
    empty_inside[:, 10:60, 10:70] = -5.0  # nothing near the object: the carried mask is empty
    for prev_mask, logits in ((full, model.logits), (prev, empty_inside), (full, empty_inside)):
        fixed = _FixedModel(logits, model.iou)
        for cfg in (CarryConfig(gate_all=False), CarryConfig(signals_before_gate=True), CarryConfig(gate_all=True)):
            _same(carry_mask(fixed, None, prev_mask, cfg, plane=plane, appearance=appearance),
                  reference.carry_mask(fixed, None, prev_mask, cfg, plane=plane, appearance=oracle_appearance))



def test_region_overlap_counts_the_raw_mask_inside_the_dilated_previous_mask_before_the_gate():
    # previous mask: a 10x10 square; the model's mask: that square (bright) plus a 10x10 leak far away (bright)
    # and a 10x1 column next to it inside the allowed region but dark (the appearance gate drops it)
    plane = torch.full((64, 64), 0.2)
    prev = torch.zeros((64, 64), dtype=torch.bool)
    prev[20:30, 20:30] = True
    plane[20:30, 20:30] = 0.8
    appearance = AppearanceModel.learn(plane, prev)
    logits = torch.full((64, 64), -10.0)
    logits[20:30, 20:31] = 10.0  # the object and one dark column inside the dilated region (radius 2)
    logits[45:55, 45:55] = 10.0  # a leak outside it
    model = _FixedModel(logits[None].repeat(3, 1, 1), torch.full((3,), 0.9))
    signals = carry_mask(model, None, prev, CarryConfig(), plane=plane, appearance=appearance).signals
    raw = 110 + 100
    assert signals["region_overlap"] == pytest.approx(110 / raw)  # inside the region, gated or not
    assert signals["overlap"] == pytest.approx(100 / raw)  # kept: the dark column is gated away too
    assert signals["region_overlap"] > signals["overlap"]


def test_min_region_overlap_is_off_by_default_and_judges_absent_below_it():
    signals = {"iou": 0.9, "overlap": 0.6, "region_overlap": 0.6, "area_ratio": 1.0, "appearance": 1.0,
               "area_px": 100.0, "prompt_area": 1.0}
    assert presence_score(signals, CarryConfig()) > 0
    assert presence_score({**signals, "region_overlap": float("nan")}, CarryConfig()) > 0  # off: not even read
    assert presence_score(signals, CarryConfig(min_region_overlap=0.75)) < 0
    assert presence_score({**signals, "region_overlap": 0.8}, CarryConfig(min_region_overlap=0.75)) > 0


TRIMMED = {"iou": 0.9, "overlap": 0.3, "region_overlap": 0.9, "area_ratio": 0.8, "appearance": 0.9,
           "area_px": 100.0, "prompt_area": 0.5}  # absent on overlap alone: the gate dropped most of the model's mask


def test_an_end_failing_on_overlap_alone_is_kept_when_asked():
    assert presence_score(TRIMMED, CarryConfig()) < 0
    assert kept_at_end(TRIMMED, CarryConfig())  # the default keeps trimmed ends
    assert not kept_at_end(TRIMMED, CarryConfig(keep_ends="none"))
    assert not kept_at_end(TRIMMED, CarryConfig.plain())  # no stop rule, nothing to keep


def test_an_end_failing_on_anything_else_is_not_kept():
    config = CarryConfig(keep_ends="trimmed")
    assert not kept_at_end({**TRIMMED, "appearance": 0.3}, config)
    assert not kept_at_end({**TRIMMED, "prompt_area": 0.01}, config)
    assert kept_at_end({**TRIMMED, "prompt_area": 0.01}, CarryConfig(keep_ends="small"))  # small ends are
    assert not kept_at_end({**TRIMMED, "area_px": 0.0, "overlap": 0.0}, config)


def test_an_unknown_keep_ends_is_refused_when_the_config_is_made():
    with pytest.raises(ValueError, match="keep_ends"):
        CarryConfig(keep_ends="tiny")
