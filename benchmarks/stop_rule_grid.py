"""Every stop rule of a grid applied at once to one recorded dev-set row: 3D Dice and end error per rule.

A recorded row (`fit_stop_rule.py record`) holds, for each slice carried from the seed with
the stop rule off, the stop rule's signals and the overlap counts with the reference. A stop
rule keeps a slice when every criterion holds (`carry_rule.presence_score` > 0) and ends a
direction at its first run of `absent_slices` slices that fail, keeping that run's leading
slices that fail only on the criteria its `keep_ends` loosens (`carry_rule.kept_at_end`; a rule
without the key keeps none). Evaluating the grid as
`(rules, slices)` boolean arrays makes leave-one-source-out fits over tens of thousands of
rules take seconds; `fit_stop_rule.cut_extent` is the slice-by-slice reference it must equal.
A row may hold `skip` records (each slice carried from two back): a slice whose predecessor is
absent and the one before present is judged on its skip record, as the session's `lookback`
does, to first order (the slices after it keep the recorded path).
"""

from __future__ import annotations

import itertools
from typing import Iterable

import numpy as np

# criterion -> (signal, how the threshold applies); every criterion is "signal > threshold"
CRITERIA = ("min_iou", "iou_drop", "min_overlap", "min_area_ratio", "min_appearance", "min_appearance_core",
            "min_likelihood", "min_contrast", "min_prompt_area", "min_region_overlap")
SIGNAL_OF = {"min_area_ratio": "area_ratio", "min_appearance": "appearance",
             "min_appearance_core": "appearance_core", "min_likelihood": "likelihood", "min_contrast": "contrast",
             "min_prompt_area": "prompt_area", "min_region_overlap": "region_overlap"}
OFF = {"min_iou": 0.0, "iou_drop": 1.0, "min_area_ratio": 0.0, "min_appearance": 0.0, "min_appearance_core": 0.0,
       "min_likelihood": -np.inf, "min_contrast": 0.0, "min_prompt_area": 0.0,
       "min_region_overlap": 0.0}  # each criterion's "off" value
# a signal missing from a recording counts as `presence_score` counts it (appearance, area_ratio: always there)
MISSING = {"appearance_core": 1.0, "likelihood": 0.0, "contrast": 1.0, "prompt_area": 1.0, "region_overlap": 1.0}
SKIPPED_WHEN_OFF = ("min_prompt_area", "min_region_overlap")
MIN_OVERLAP = 0.5  # CarryConfig.min_overlap's default, where a rule does not give one
MIN_AREA_PX = 4  # CarryConfig.min_area_px (not fitted)


def rules_of(grid: dict) -> list[dict]:
    """All combinations of the grid's values (keys: CRITERIA and "absent_slices")."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def _direction(row: dict, step: int) -> list[int]:
    """Recorded slices from the seed outward (exclusive) in one direction, until the first gap."""
    out, s = [], row["seed"] + step
    while 0 <= s < row["num_slices"] and s in row["slices"]:
        out.append(s)
        s += step
    return out


def _per_rule(keys: list, kept_by) -> np.ndarray:
    """`(rules, slices)` bool: `kept_by(key)` worked out once per distinct key, spread to every rule holding it."""
    distinct, which = np.unique(np.asarray(keys, dtype=np.float64), axis=0, return_inverse=True)
    return np.stack([kept_by(key) for key in distinct])[which.reshape(-1)]


def _present(row: dict, slices: list[int], rules: list[dict]) -> np.ndarray:
    """`(rules, len(slices))` bool: each slice kept by each rule (one comparison per distinct threshold)."""
    def signal(name: str, default: float) -> np.ndarray:
        return np.array([row["slices"][s]["signals"].get(name, default) for s in slices], dtype=np.float64)

    pred = np.array([row["slices"][s]["pred"] for s in slices])
    area = signal("area_px", 0.0)
    base = (pred > 0) & (area - MIN_AREA_PX > 0)
    keep = np.repeat(base[None, :], len(rules), axis=0)
    iou, expected = signal("iou", 1.0), signal("expected_iou", np.nan)
    pairs = [(r.get("min_iou", OFF["min_iou"]), r.get("iou_drop", OFF["iou_drop"])) for r in rules]
    keep &= _per_rule(pairs, lambda k: iou > np.where(np.isnan(expected), k[0], np.maximum(k[0], expected - k[1])))
    overlap = signal("overlap", 1.0)
    keep &= _per_rule([r.get("min_overlap", MIN_OVERLAP) for r in rules], lambda t: overlap > t)
    for criterion, name in SIGNAL_OF.items():
        values = signal(name, MISSING.get(name, np.inf))
        # `presence_score` compares every criterion (a -inf threshold always holds) but skips
        # min_prompt_area and min_region_overlap when they are off (<= 0)
        off = (lambda t: t == -np.inf or t <= 0) if criterion in SKIPPED_WHEN_OFF else (lambda t: t == -np.inf)
        keep &= _per_rule([r.get(criterion, OFF[criterion]) for r in rules],
                          lambda t: np.ones_like(base) if off(t) else values > t)
    return keep


def _kept_count(present: np.ndarray, absent_slices: np.ndarray, end_ok: np.ndarray | None = None) -> np.ndarray:
    """Per rule: how many slices from the start of the direction are kept (up to the last present
    slice before the first run of `absent_slices` absent ones; where `end_ok` is given, that run's
    leading slices it holds are kept too, as the session's `keep_ends`)."""
    rules, length = present.shape
    if length == 0:
        return np.zeros(rules, dtype=int)
    absent = ~present
    # run[r, j]: consecutive absent slices ending at j
    run = np.zeros((rules, length), dtype=int)
    run[:, 0] = absent[:, 0]
    for j in range(1, length):
        run[:, j] = np.where(absent[:, j], run[:, j - 1] + 1, 0)
    stopped = run >= absent_slices[:, None]
    stop_at = np.where(stopped.any(axis=1), stopped.argmax(axis=1), length)  # first slice that ends the walk
    index = np.arange(length)[None, :]
    kept = present & (index < stop_at[:, None])
    last = np.where(kept.any(axis=1), length - 1 - np.argmax(kept[:, ::-1], axis=1), -1)
    count = last + 1
    if end_ok is not None:  # the run that ended the walk is slices count..stop_at
        going = stop_at < length
        for j in range(int(absent_slices.max())):
            at = np.minimum(count, length - 1)
            going &= (count <= stop_at) & (count < length) & end_ok[np.arange(rules), at]
            count = count + going
    return count


def _replayed(row: dict, slices: list[int], rules: list[dict], present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(present, used)` with the session's `lookback` replayed where the recording has skip records.

    The session carries a slice whose predecessor was doubted from the slice before that (when
    that one was present): `row["skip"][s]` records slice s carried so. Used when slice s-1
    (in the direction of travel) is absent and s-2 present (or the seed); the slices after it
    keep the recording's values (first-order: they were carried from s's other mask)."""
    skip = row.get("skip") or {}
    has_skip = np.array([s in skip for s in slices], dtype=bool)
    if not has_skip.any():
        return present, np.zeros_like(present)
    skip_present = _present(_on_skip_records(row, slices), slices, rules)
    out, used = present.copy(), np.zeros_like(present)
    before, before2 = np.ones(len(rules), dtype=bool), np.ones(len(rules), dtype=bool)  # the seed is present
    for j in range(len(slices)):
        if has_skip[j]:
            use = ~before & before2
            used[:, j] = use
            out[:, j] = np.where(use, skip_present[:, j], present[:, j])
        before2, before = before, out[:, j]
    return out, used


def _on_skip_records(row: dict, slices: list[int]) -> dict:
    """`row` with each of `slices` judged on its skip record where it has one."""
    skip = row.get("skip") or {}
    return {**row, "slices": {s: skip.get(s, row["slices"][s]) for s in slices}}


def _end_ok(row: dict, slices: list[int], rules: list[dict], used: np.ndarray) -> np.ndarray:
    """`(rules, slices)` bool: each slice kept by the rule without the criteria its `keep_ends` loosens,
    judged on the record the walk used there (`carry_rule.kept_at_end`); False for rules keeping no end."""
    from sam2core.predictor.carry_rule import END_LOOSENED

    ok = np.zeros((len(rules), len(slices)), dtype=bool)
    which = [i for i, r in enumerate(rules) if END_LOOSENED[r.get("keep_ends", "none")] is not None]
    if not which:
        return ok
    loose = [{**rules[i], **{name: 0.0 for name in END_LOOSENED[rules[i]["keep_ends"]]}} for i in which]
    ok[which] = _present(row, slices, loose)
    if used.any():
        ok[which] = np.where(used[which], _present(_on_skip_records(row, slices), slices, loose), ok[which])
    return ok


def evaluate(row: dict, rules: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per rule: (3D Dice, first kept slice, last kept slice, max end error in slices)."""
    absent = np.array([r["absent_slices"] for r in rules])
    ends = []
    correction_inter = np.zeros(len(rules))
    correction_pred = np.zeros(len(rules))
    keeps_ends = any(r.get("keep_ends", "none") != "none" for r in rules)
    for step in (-1, 1):
        slices = _direction(row, step)
        present, used = _replayed(row, slices, rules, _present(row, slices, rules))
        end_ok = _end_ok(row, slices, rules, used) if keeps_ends else None
        count = _kept_count(present, absent, end_ok)
        ends.append(row["seed"] + step * count)
        if used.any():  # kept slices carried from two back count the skip record's overlap
            kept_used = used & (np.arange(len(slices))[None, :] < count[:, None])
            skip = row["skip"]
            diff_inter = np.array([skip[s]["inter"] - row["slices"][s]["inter"] if s in skip else 0 for s in slices])
            diff_pred = np.array([skip[s]["pred"] - row["slices"][s]["pred"] if s in skip else 0 for s in slices])
            correction_inter += kept_used @ diff_inter
            correction_pred += kept_used @ diff_pred
    first, last = ends
    n = row["num_slices"]
    inter = np.zeros(n + 1)
    pred = np.zeros(n + 1)
    for s, values in row["slices"].items():
        inter[s + 1] = values["inter"]
        pred[s + 1] = values["pred"]
    inter, pred = np.cumsum(inter), np.cumsum(pred)
    total = float(np.asarray(row["t_area"]).sum())
    got_inter = inter[last + 1] - inter[first] + correction_inter
    got_pred = pred[last + 1] - pred[first] + correction_pred
    dice = 2.0 * got_inter / np.maximum(got_pred + total, 1.0)
    held = np.flatnonzero(np.asarray(row["t_area"]) > 0)
    error = np.maximum(np.abs(first - held[0]), np.abs(last - held[-1]))
    return dice, first, last, error


def table(rows: Iterable[dict], rules: list[dict]) -> dict:
    """name -> (dice, first, last, end error) arrays over `rules`."""
    return {row["name"]: evaluate(row, rules) for row in rows}
