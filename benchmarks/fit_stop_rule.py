"""Choose the carrying rule's stop thresholds by leave-one-source-out cross-validation on the dev set.

Step 1, `record`: every dev-set row is carried from one tight reference box on its middle
slice with the stop rule OFF (`CarryConfig(stop=False)`), through the real `Session`, to the
volume's ends. For every carried slice it keeps the stop rule's signals and the overlap
counts of the carried mask with the reference (|P ∩ T|, |P|, |T|), plus the ceiling (the
reference box on every slice). Slice embeddings are cached on disk (`--cache`).

Step 2, `fit`: a stop rule (thresholds + `absent_slices`) cuts each direction at its first
run of `absent_slices` absent slices; 3D Dice follows from the counts. Thresholds are chosen
on a grid to maximise the mean Dice over rows, once on all rows (in-sample) and once per
left-out source on the three others (cross-validated); both are printed.

    python benchmarks/fit_stop_rule.py record [--variant default] [--only CASE ...]
    python benchmarks/fit_stop_rule.py fit [--variant default]
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from devset import DEVSET, CachedEncoder, box_on_slice, load_cases, protocol_slices, read_case, slices_holding  # noqa: E402

CACHE = Path.home() / ".cache" / "napari-sam2-devset"
# bf16 autocast encoder: what precision "auto" runs on a CPU with native bf16 (AMX / AVX-512 BF16)
PRECISION = "bf16"

VARIANTS = {
    "default": {},
    "no_gate": {"appearance_gate": 0.0},
    "previous": {"margin_ratios": (0.0, 0.12, 0.25), "appearance_gate": 0.0},
    "plain": None,
}

# The grid the stop rule is chosen on.
GRID = {
    "min_iou": [0.0, 0.4, 0.5, 0.6, 0.7, 0.8],
    "iou_drop": [0.05, 0.08, 0.12, 0.2, 1.0],
    "min_area_ratio": [0.0, 0.15, 0.3, 0.5],
    "min_appearance": [0.0, 0.5, 0.6, 0.7, 0.8, 0.9],
    "absent_slices": [1, 2, 3],
}


def carry_config(variant: str):
    from sam2core.predictor.carry_rule import CarryConfig

    options = VARIANTS[variant]
    if options is None:
        return CarryConfig.plain()
    return replace(CarryConfig(), stop=False, **options)


def record_row(item, model, variant: str) -> dict:
    """Carry one row with the stop rule off; per slice: signals and overlap counts."""
    from volume import Session

    scan, target = read_case(item)
    session = Session(scan, model, predictor_options={"config": carry_config(variant)}, cleanup=False)
    axis = session.slicing_axis
    seed = protocol_slices(target, axis, "one-box")[0]
    box = box_on_slice(target, axis, seed)
    session.add_box(1, seed, box)
    held = slices_holding(target, axis)
    pad = max(8, int(round(0.3 * len(held))))  # recorded this far past the reference's ends (see fit)
    cap = (max(0, int(held[0]) - pad), min(session.num_slices - 1, int(held[-1]) + pad))
    session.set_extent(1, *cap)
    window = session.object_windows[1].name
    started = time.perf_counter()
    session.propagate()
    seconds = time.perf_counter() - started
    outputs = session.predictor_state(1)["outputs"][1]
    n = session.num_slices
    t_area = np.array([int(np.take(target, s, axis=axis).sum()) for s in range(n)])
    rows = {}
    for s, out in outputs.items():
        pred = (out.full_logits() > 0).numpy()
        t = np.take(target, s, axis=axis)
        rows[s] = {"inter": int((pred & t).sum()), "pred": int(pred.sum()), "signals": dict(out.signals)}
    return {"name": item.name, "source": item.source, "group": item.group, "seed": seed, "window": window, "cap": cap,
            "t_area": t_area, "slices": rows, "seconds": seconds, "num_slices": n}


def record_ceiling(item, model) -> dict:
    """The reference box on every slice holding the structure: overlap counts per slice."""
    from volume import Session

    scan, target = read_case(item)
    session = Session(scan, model, cleanup=False)
    axis = session.slicing_axis
    seed = protocol_slices(target, axis, "one-box")[0]
    session.add_box(1, seed, box_on_slice(target, axis, seed))
    rows = {}
    for s in slices_holding(target, axis):
        mask = session.add_box(2, int(s), box_on_slice(target, axis, int(s)))
        t = np.take(target, int(s), axis=axis)
        rows[int(s)] = {"inter": int((mask & t).sum()), "pred": int(mask.sum())}
    return rows


def load_model(cache: Path):
    from sam2core.build import load_model as load

    model = load("lite_medsam", device="cpu")
    model.set_precision(PRECISION)
    return CachedEncoder(model, cache / "embeddings", f"lite_medsam-{PRECISION}")


def cmd_record(args) -> int:
    model = load_model(args.cache)
    out = args.cache / f"record-{args.variant}.pkl"
    done = pickle.loads(out.read_bytes()) if out.exists() else {}
    for item in load_cases(args.devset, args.only):
        if item.name in done and not args.redo:
            continue
        started = time.perf_counter()
        row = record_row(item, model, args.variant)
        if args.ceiling or "ceiling" not in (done.get(item.name) or {}):
            row["ceiling"] = record_ceiling(item, model)
        done[item.name] = row
        out.write_bytes(pickle.dumps(done))
        print(f"{item.name}: {time.perf_counter() - started:.0f} s, window {row['window']}, "
              f"cache hits {model.hits} misses {model.misses}", flush=True)
    return 0


# ------------------------------------------------------------------------ fitting
def cut_extent(row: dict, rule: dict) -> tuple[int, int]:
    """First and last slice kept when `rule` stops each direction at its first absent run."""
    from sam2core.predictor.carry_rule import CarryConfig, presence_score

    config = replace(CarryConfig(), **{k: v for k, v in rule.items() if k != "absent_slices"})
    seed, n, k = row["seed"], row["num_slices"], rule["absent_slices"]
    ends = []
    for step in (-1, 1):
        last_kept, run, s = seed, 0, seed + step
        while 0 <= s < n and s in row["slices"]:
            slice_row = row["slices"][s]
            present = slice_row["pred"] > 0 and presence_score(slice_row["signals"], config) > 0
            if present:
                last_kept, run = s, 0
            else:
                run += 1
                if run >= k:
                    break
            s += step
        ends.append(last_kept)
    return ends[0], ends[1]


def row_dice(row: dict, first: int, last: int) -> float:
    inter = sum(row["slices"][s]["inter"] for s in range(first, last + 1) if s in row["slices"])
    pred = sum(row["slices"][s]["pred"] for s in range(first, last + 1) if s in row["slices"])
    total = int(row["t_area"].sum())
    return 2.0 * inter / max(pred + total, 1)


def ceiling_dice(row: dict) -> float:
    c = row["ceiling"]
    return 2.0 * sum(v["inter"] for v in c.values()) / max(sum(v["pred"] for v in c.values())
                                                           + int(row["t_area"].sum()), 1)


def grid():
    keys = list(GRID)
    for values in itertools.product(*(GRID[k] for k in keys)):
        yield dict(zip(keys, values))


def objective(rows: list[dict], rule: dict) -> float:
    return float(np.mean([row_dice(r, *cut_extent(r, rule)) for r in rows]))


def best_rule(rows: list[dict]) -> tuple[dict, float]:
    best = None
    for rule in grid():
        value = objective(rows, rule)
        if best is None or value > best[1] + 1e-9:
            best = (rule, value)
    return best


def cmd_fit(args) -> int:
    data = pickle.loads((args.cache / f"record-{args.variant}.pkl").read_bytes())
    rows = list(data.values())
    rule, value = best_rule(rows)
    print(f"in-sample best rule ({len(rows)} rows): {rule} mean Dice {value:.3f}")
    sources = sorted({r["source"] for r in rows})
    cv = {}
    for source in sources:
        train = [r for r in rows if r["source"] != source]
        test = [r for r in rows if r["source"] == source]
        fold_rule, _ = best_rule(train)
        for r in test:
            cv[r["name"]] = (row_dice(r, *cut_extent(r, fold_rule)), fold_rule)
        print(f"left out {source}: rule {fold_rule}")
    print("\n| row | group | in-sample Dice | cross-validated Dice | no stop | ceiling |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        full = row_dice(r, 0, r["num_slices"] - 1)
        print(f"| {r['name']} | {r['group']} | {row_dice(r, *cut_extent(r, rule)):.3f} | {cv[r['name']][0]:.3f} | "
              f"{full:.3f} | {ceiling_dice(r) if 'ceiling' in r else float('nan'):.3f} |")
    ins = np.mean([row_dice(r, *cut_extent(r, rule)) for r in rows])
    print(f"\nmean Dice in-sample {ins:.3f}, cross-validated {np.mean([v[0] for v in cv.values()]):.3f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["record", "fit"])
    parser.add_argument("--variant", default="default", choices=list(VARIANTS))
    parser.add_argument("--devset", type=Path, default=DEVSET)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--redo", action="store_true")
    parser.add_argument("--ceiling", action="store_true", help="record the ceiling again")
    args = parser.parse_args(argv)
    return cmd_record(args) if args.command == "record" else cmd_fit(args)


if __name__ == "__main__":
    sys.exit(main())
