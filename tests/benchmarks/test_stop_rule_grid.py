"""The vectorised stop-rule grid (benchmarks/stop_rule_grid.py) cuts exactly where the slice-by-slice rule does."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import fit_stop_rule  # noqa: E402
import stop_rule_grid  # noqa: E402


def _recorded_row(seed: int = 0) -> dict:
    """A synthetic recording: 40 slices, object on 12-28, signals noisy and weaker away from it."""
    rng = np.random.default_rng(seed)
    n, lo, hi, mid = 40, 12, 28, 20
    t_area = np.where((np.arange(n) >= lo) & (np.arange(n) <= hi), 100, 0)
    slices = {}
    for s in range(3, 37):
        inside = lo <= s <= hi
        quality = (0.9 if inside else 0.4) + rng.normal(0, 0.15)
        pred = int(rng.integers(0, 6)) if rng.random() < 0.1 else int(rng.integers(60, 140))
        slices[s] = {"inter": int(min(pred, t_area[s]) * (0.9 if inside else 0)), "pred": pred,
                     "signals": {"iou": quality, "expected_iou": np.nan if s == mid else 0.85, "overlap": 0.5 + quality / 2,
                                 "area_ratio": quality, "area_px": float(pred), "appearance": quality,
                                 "appearance_core": quality + rng.normal(0, 0.1), "likelihood": (quality - 0.9) * 5,
                                 "contrast": quality, "prompt_area": quality / 4,
                                 "region_overlap": 0.6 + quality / 3 + rng.normal(0, 0.05)}}
    return {"name": "synthetic", "seed": mid, "num_slices": n, "t_area": t_area, "slices": slices}


def test_grid_cuts_equal_slice_by_slice_cuts():
    grid = {"min_iou": [0.0, 0.6], "iou_drop": [0.1, 1.0], "min_area_ratio": [0.0, 0.5],
            "min_appearance": [0.0, 0.7], "min_appearance_core": [0.0, 0.7], "min_likelihood": [-np.inf, -1.0],
            "min_contrast": [0.0, 0.6], "min_prompt_area": [0.0, 0.2], "min_overlap": [0.0, 0.8],
            "min_region_overlap": [0.0, 0.85], "absent_slices": [1, 2, 3]}
    rules = stop_rule_grid.rules_of(grid)
    for seed in range(4):
        row = _recorded_row(seed)
        dice, first, last, error = stop_rule_grid.evaluate(row, rules)
        for i, rule in enumerate(rules):
            assert (int(first[i]), int(last[i])) == fit_stop_rule.cut_extent(row, rule), rule
            assert abs(dice[i] - fit_stop_rule.row_dice(row, int(first[i]), int(last[i]))) < 1e-12


def test_a_stricter_rule_never_keeps_more_slices():
    row = _recorded_row(1)
    loose = {"min_iou": 0.0, "iou_drop": 1.0, "min_area_ratio": 0.0, "min_appearance": 0.0, "min_appearance_core": 0.0,
             "min_likelihood": -np.inf, "min_contrast": 0.0, "absent_slices": 3}
    strict = {**loose, "min_appearance": 0.8, "absent_slices": 1}
    _, first, last, _ = stop_rule_grid.evaluate(row, [loose, strict])
    assert first[1] >= first[0] and last[1] <= last[0]
    assert (first[1], last[1]) != (first[0], last[0])


def test_signals_missing_from_a_recording_count_as_the_live_rule_counts_them():
    row = _recorded_row(2)
    for s, values in row["slices"].items():
        for k, name in enumerate(("appearance_core", "likelihood", "contrast", "prompt_area", "region_overlap")):
            if (s + k) % 3 == 0:  # each signal missing on a third of the slices, present on the others
                values["signals"].pop(name)
    grid = {"min_appearance_core": [0.0, 1.5], "min_likelihood": [-np.inf, -1.0, 0.5], "min_contrast": [0.0, 1.5],
            "min_prompt_area": [0.0, 0.2, 1.5], "min_region_overlap": [0.0, 0.9, 1.5], "absent_slices": [1, 3]}
    rules = stop_rule_grid.rules_of(grid)
    _, first, last, _ = stop_rule_grid.evaluate(row, rules)
    for i, rule in enumerate(rules):
        assert (int(first[i]), int(last[i])) == fit_stop_rule.cut_extent(row, rule), rule


def _with_skip_records(row: dict, seed: int) -> dict:
    """Add skip records (each slice carried from two back): other signals and overlap counts."""
    rng = np.random.default_rng(100 + seed)
    skip = {}
    for s, values in row["slices"].items():
        if abs(s - row["seed"]) >= 2:
            signals = {k: (v + rng.normal(0, 0.2) if isinstance(v, float) and k != "expected_iou" else v)
                       for k, v in values["signals"].items()}
            pred = int(rng.integers(0, 140))
            skip[s] = {"inter": min(pred, values["inter"] + int(rng.integers(0, 20))), "pred": pred,
                       "signals": {**signals, "area_px": float(pred)}}
    return {**row, "skip": skip}


def _grid_equals_walk(row: dict, rules: list[dict]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Assert the grid's cuts and Dice equal the slice-by-slice walk's on `row`; (first, last, any skip used)."""
    dice, first, last, _ = stop_rule_grid.evaluate(row, rules)
    replayed = False
    for i, rule in enumerate(rules):
        used: list = []
        assert (int(first[i]), int(last[i])) == fit_stop_rule.cut_extent(row, rule, used), rule
        assert abs(dice[i] - fit_stop_rule.row_dice(row, int(first[i]), int(last[i]), used)) < 1e-12, rule
        replayed |= bool(used)
    return first, last, replayed


def test_grid_replays_lookback_like_the_slice_by_slice_walk():
    grid = {"min_appearance": [0.0, 0.6, 0.8], "min_prompt_area": [0.0, 0.2], "min_overlap": [0.0, 0.8],
            "absent_slices": [1, 2, 3]}
    rules = stop_rule_grid.rules_of(grid)
    replayed_somewhere = False
    for seed in range(4):
        replayed_somewhere |= _grid_equals_walk(_with_skip_records(_recorded_row(seed), seed), rules)[2]
    assert replayed_somewhere  # the synthetic rows do exercise the skip records


def test_skip_records_equal_to_the_recording_change_nothing():
    row = _recorded_row(0)
    rules = [{"min_appearance": 0.6, "absent_slices": 2}]
    plain = stop_rule_grid.evaluate(row, rules)
    # skip records identical to the normal ones change nothing
    same = {**row, "skip": {s: v for s, v in row["slices"].items() if abs(s - row["seed"]) >= 2}}
    for a, b in zip(plain, stop_rule_grid.evaluate(same, rules)):
        assert np.array_equal(a, b)


def _hand_row(normal: dict, skipped: dict) -> dict:
    """Seed 10 of 21 slices (object on all); per slice appearance on its normal and skip record."""
    def record(appearance: float) -> dict:
        return {"inter": 50, "pred": 100, "signals": {"iou": 0.9, "expected_iou": np.nan, "overlap": 1.0,
                                                     "area_ratio": 1.0, "area_px": 100.0, "appearance": appearance}}
    slices = {s: record(normal.get(s, 0.9)) for s in range(21)}
    skip = {s: {**record(skipped.get(s, 0.9)), "inter": 90} for s in range(21) if abs(s - 10) >= 2}
    return {"name": "hand", "seed": 10, "num_slices": 21, "t_area": np.full(21, 100), "slices": slices, "skip": skip}


RULE = {**stop_rule_grid.OFF, "min_overlap": 0.0, "min_appearance": 0.5, "absent_slices": 2}


def _cut(row: dict, rule: dict) -> tuple[int, int, float, list]:
    dice, first, last, _ = stop_rule_grid.evaluate(row, [rule])
    used: list = []
    assert (int(first[0]), int(last[0])) == fit_stop_rule.cut_extent(row, rule, used)
    return int(first[0]), int(last[0]), float(dice[0]), sorted(used)


def test_a_slice_after_one_doubted_slice_is_judged_as_carried_from_two_back():
    # forward: 11 doubted; 12 absent as recorded (carried from 11) but present carried from 10
    # backward, mirrored: 9 doubted, 8 present only from 10
    row = _hand_row(normal={11: 0.2, 12: 0.2, 9: 0.2, 8: 0.2}, skipped={12: 0.9, 8: 0.9})
    first, last, dice, used = _cut(row, RULE)
    assert (first, last) == (0, 20) and used == [8, 12]
    plain = {**row, "skip": {}}
    assert _cut(plain, RULE)[:2] == (10, 10)  # without the replay both directions end at once
    # the kept skip records' overlap counts: 90 instead of 50 on slices 8 and 12
    assert dice == pytest.approx(2 * (21 * 50 + 2 * 40) / (21 * 100 + 21 * 100))


def test_after_two_doubted_slices_the_next_is_carried_from_the_last_one_as_recorded():
    rule = {**RULE, "absent_slices": 3}
    # 11 and 12 doubted (12 on its skip record too); 13 present only from two back: the session
    # has no present slice within lookback 2 there, so it carries 13 from 12 (the normal record)
    row = _hand_row(normal={11: 0.2, 12: 0.2, 13: 0.2}, skipped={12: 0.2, 13: 0.9})
    first, last, _, used = _cut(row, rule)
    assert last == 10 and used == []


def _tables(dice_by_rule: list[list[float]], error_by_rule: list[list[int]]) -> dict:
    """One variant; rows r0, r1, ...: (dice, first, last, end error) arrays over the rules."""
    dice, error = np.array(dice_by_rule, dtype=float).T, np.array(error_by_rule).T  # (rows, rules)
    zeros = np.zeros(dice.shape[1])
    return {"v": {f"r{i}": (dice[i], zeros, zeros, error[i]) for i in range(dice.shape[0])}}


def test_min_ends_share_picks_the_best_dice_among_rules_that_find_the_ends():
    # rule 0: best Dice, one end of two found; rule 1: both found, less Dice; rule 2: both found, least Dice
    tables = _tables([[0.9, 0.9], [0.8, 0.7], [0.6, 0.6]], [[0, 5], [2, 1], [0, 0]])
    assert fit_stop_rule.best_rule(tables, ["r0", "r1"])[1] == 0
    variant, index, mean = fit_stop_rule.best_rule(tables, ["r0", "r1"], min_ends_share=0.8)
    assert (variant, index, mean) == ("v", 1, pytest.approx(0.75))
    assert fit_stop_rule.best_rule(tables, ["r0"], min_ends_share=0.8)[1] == 0  # on r0 alone rule 0 finds the ends


def test_min_ends_share_no_rule_reaches_falls_back_to_the_best_dice():
    tables = _tables([[0.8, 0.7], [0.9, 0.9]], [[0, 5], [3, 4]])
    assert not fit_stop_rule.reaches_ends_share(tables, ["r0", "r1"], 1.0)
    assert fit_stop_rule.best_rule(tables, ["r0", "r1"], min_ends_share=1.0) == ("v", 1, pytest.approx(0.9))


def test_min_ends_share_holds_across_variants():
    # variant a: best Dice, no rule finds both ends; variant b: one rule does
    a = _tables([[0.9, 0.9]], [[5, 5]])["v"]
    b = _tables([[0.5, 0.5], [0.6, 0.6]], [[5, 5], [0, 1]])["v"]
    tables = {"a": a, "b": b}
    assert fit_stop_rule.best_rule(tables, ["r0", "r1"])[0] == "a"
    assert fit_stop_rule.best_rule(tables, ["r0", "r1"], min_ends_share=0.8) == ("b", 1, pytest.approx(0.6))


def test_grid_keeps_trimmed_ends_like_the_slice_by_slice_walk():
    grid = {"min_appearance": [0.0, 0.6, 0.8], "min_prompt_area": [0.0, 0.2], "min_overlap": [0.0, 0.8, 0.9],
            "absent_slices": [1, 2, 3], "keep_ends": ["none", "trimmed", "small"]}
    rules = stop_rule_grid.rules_of(grid)
    extended = False
    for seed in range(4):
        first, last, _ = _grid_equals_walk(_with_skip_records(_recorded_row(seed), seed), rules)
        # the grid's last key varies fastest: rules[0::3] keep no end, [1::3] trimmed ones, [2::3] small ones too
        for looser, stricter in ((1, 0), (2, 1)):
            assert (first[looser::3] <= first[stricter::3]).all() and (last[looser::3] >= last[stricter::3]).all()
            extended |= bool((first[looser::3] < first[stricter::3]).any() or (last[looser::3] > last[stricter::3]).any())
    assert extended  # the synthetic rows do end on slices failing on overlap only


def test_a_trimmed_end_is_kept_only_while_it_fails_on_overlap_alone():
    row = _hand_row({}, {})
    for s, overlap in ((14, 0.3), (15, 0.3), (16, 0.3)):  # trimmed by the gate: overlap under 0.5
        row["slices"][s]["signals"]["overlap"] = overlap
        row["skip"][s]["signals"]["overlap"] = overlap
    row["skip"][15]["signals"]["appearance"] = 0.2  # the second absent slice, carried from two back, looks unlike
    rule = {**RULE, "min_overlap": 0.5}
    assert _cut(row, rule)[:2] == (0, 13)
    assert _cut(row, {**rule, "keep_ends": "trimmed"})[:2] == (0, 14)  # 14 kept, 15 fails on appearance too


def test_a_small_end_is_kept_by_small_not_by_trimmed():
    row = _hand_row({}, {})
    for s in (14, 15):  # the object shrinks below 0.3 of the slice before: absent on area alone
        row["slices"][s]["signals"]["area_ratio"] = 0.2
        row["skip"][s]["signals"]["area_ratio"] = 0.2
    rule = {**RULE, "min_area_ratio": 0.3}
    assert _cut(row, {**rule, "keep_ends": "trimmed"})[:2] == (0, 13)
    assert _cut(row, {**rule, "keep_ends": "small"})[:2] == (0, 15)
