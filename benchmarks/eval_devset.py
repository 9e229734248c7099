"""3D Dice on the dev set (`shared/data/devset/cases.csv`) as a user would get it, with baselines.

Every row is one structure; it is prompted with tight boxes from the reference label and
propagated by `volume.Session` with default settings (LiteMedSAM, CPU). In the same run and
with the same model:
- `ours`: the default carrying rule (`CarryConfig()`, window per object);
- `plain`: plain box carrying (`CarryConfig.plain()`: previous mask's box, no margin, no stop);
- `ceiling`: the reference box on every slice holding the structure (what the model can do).

Protocols: `one-box` (a box on the middle slice of the structure's extent), `extent` (that
box plus the reference's first and last slice as `Session.set_extent`), `three-boxes`
(boxes on the slices at 25 %, 50 % and 75 % of the extent).

    python benchmarks/eval_devset.py [--protocol one-box|extent|three-boxes|all] [--only CASE ...]
        [--methods ours plain ceiling] [--engine auto] [--precision auto] [--no-cache]

Prints one table per protocol (Dice, slices predicted vs holding the structure, error at each
end in slices, seconds) and summary lines per group (mean, median, minimum; rows below 0.70).
Slice embeddings are cached on disk by frame content (`--cache`), so methods share encodes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from devset import DEVSET, box_on_slice, load_cases, load_eval_model, protocol_slices, read_case, slices_holding  # noqa: E402

PROTOCOLS = ("one-box", "extent", "three-boxes")
CACHE = Path.home() / ".cache" / "napari-sam2-devset"


def run_method(item, model, method: str, protocol: str) -> dict:
    """Segment one row with `method` ("ours" or "plain") under `protocol`; Dice, extents, seconds."""
    from sam2core.predictor.carry_rule import CarryConfig
    from volume import Session, dice

    scan, target = read_case(item)
    options = {"predictor_options": {"config": CarryConfig.plain()}} if method == "plain" else {}
    session = Session(scan, model, **options)
    axis = session.slicing_axis
    held = slices_holding(target, axis)
    started = time.perf_counter()
    for s in protocol_slices(target, axis, protocol):
        session.add_box(1, s, box_on_slice(target, axis, s))
    if protocol == "extent":
        session.set_extent(1, int(held[0]), int(held[-1]))
    labels = session.propagate()
    seconds = time.perf_counter() - started
    pred = labels == 1
    zs = slices_holding(pred, axis)
    first, last = (int(zs[0]), int(zs[-1])) if zs.size else (None, None)
    return {"dice": dice(pred, target), "first": first, "last": last, "seconds": seconds,
            "window": session.object_windows[1].name, "encoded": session.slices_encoded}


def run_ceiling(item, model) -> dict:
    """The reference box on every slice holding the structure, nothing elsewhere."""
    from volume import Session, dice

    scan, target = read_case(item)
    session = Session(scan, model, cleanup=False)
    axis = session.slicing_axis
    pred = np.zeros_like(target)
    started = time.perf_counter()
    held = slices_holding(target, axis)
    seed = protocol_slices(target, axis, "one-box")[0]
    session.add_box(1, seed, box_on_slice(target, axis, seed))  # the object's window, as in `ours`
    for s in held:
        index = [slice(None)] * 3
        index[axis] = int(s)
        pred[tuple(index)] = session.add_box(1, int(s), box_on_slice(target, axis, int(s)))
    return {"dice": dice(pred, target), "first": int(held[0]), "last": int(held[-1]),
            "seconds": time.perf_counter() - started}


def end_errors(result: dict, ref_first: int, ref_last: int) -> tuple:
    if result.get("first") is None:
        return (None, None)
    return (result["first"] - ref_first, result["last"] - ref_last)


def summarise(rows: list[dict], method: str) -> list[str]:
    lines = []
    groups = sorted({r["group"] for r in rows})
    for group in ["all", "organs", "lesions", *groups]:
        values = [r[method]["dice"] for r in rows if group == "all" or r["group"] == group
                  or r["group"].split()[0] == group]
        if values:
            lines.append(f"| {method} | {group} | {len(values)} | {np.mean(values):.3f} | {np.median(values):.3f} | "
                         f"{np.min(values):.3f} |")
    return lines


def print_protocol(protocol: str, rows: list[dict], methods: list[str]) -> None:
    print(f"\n### protocol: {protocol}\n")
    head = "| row | group | window | ref slices |"
    sep = "| --- | --- | --- | --- |"
    for m in methods:
        head += f" {m} Dice |"
        sep += " --- |"
        if m != "ceiling":
            head += f" {m} slices | {m} end err |"
            sep += " --- | --- |"
    head += " ours s |"
    sep += " --- |"
    print(head)
    print(sep)
    for r in rows:
        line = f"| {r['name']} | {r['group']} | {r.get('ours', {}).get('window', '')} | {r['ref_first']}-{r['ref_last']} |"
        for m in methods:
            res = r[m]
            line += f" {res['dice']:.3f} |"
            if m != "ceiling":
                err = end_errors(res, r["ref_first"], r["ref_last"])
                rng = f"{res['first']}-{res['last']}" if res["first"] is not None else "-"
                line += f" {rng} | {err[0]:+d}/{err[1]:+d} |" if err[0] is not None else f" {rng} | - |"
        line += f" {r['ours']['seconds']:.1f} |" if "ours" in r else " |"
        print(line)
    print("\n| method | group | rows | mean | median | min |")
    print("| --- | --- | --- | --- | --- | --- |")
    for m in methods:
        for line in summarise(rows, m):
            print(line)
    if "ours" in methods:
        low = [f"{r['name']} {r['ours']['dice']:.3f}" for r in rows if r["ours"]["dice"] < 0.70]
        print(f"\nrows below 0.70 (ours): {', '.join(low) or 'none'}")
        within = [r for r in rows if r["ours"]["first"] is not None
                  and max(abs(e) for e in end_errors(r["ours"], r["ref_first"], r["ref_last"])) <= 2]
        print(f"both ends within 2 slices (ours): {len(within)}/{len(rows)} = {len(within) / len(rows):.0%}")
        if "plain" in methods:
            diff = [r["ours"]["dice"] - r["plain"]["dice"] for r in rows]
            worse = [f"{r['name']} {d:+.3f}" for r, d in zip(rows, diff) if d < -0.02]
            print(f"ours - plain: mean {np.mean(diff):+.3f}; rows worse than plain - 0.02: {', '.join(worse) or 'none'}")
        if "ceiling" in methods:
            gap = [f"{r['name']} {r['ours']['dice']:.3f} vs {r['ceiling']['dice']:.3f}" for r in rows
                   if r["ours"]["dice"] < 0.60 and r["ceiling"]["dice"] >= 0.80]
            print(f"rows below 0.60 whose ceiling is >= 0.80: {', '.join(gap) or 'none'}")
            far = [f"{r['name']} {r['ceiling']['dice'] - r['ours']['dice']:.3f}" for r in rows
                   if r["ceiling"]["dice"] - r["ours"]["dice"] > 0.08]
            print(f"rows more than 0.08 below their ceiling: {', '.join(far) or 'none'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devset", type=Path, default=DEVSET)
    parser.add_argument("--protocol", default="one-box", choices=[*PROTOCOLS, "all"])
    parser.add_argument("--only", nargs="*", default=None, help="rows `case/structure` or case prefixes")
    parser.add_argument("--methods", nargs="+", default=["ours", "plain", "ceiling"],
                        choices=["ours", "plain", "ceiling"])
    parser.add_argument("--engine", default="auto", choices=["auto", "torch", "onnxruntime", "openvino"],
                        help="what runs LiteMedSAM (auto: what the CLI and Session pick on this machine)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                        help="encoder precision (auto: bf16 only where the CPU runs it natively)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--no-cache", action="store_true", help="encode every slice (no disk cache)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.devset / "cases.csv").exists():
        print(f"dev set not found at {args.devset} (expected cases.csv there)")
        return 2
    from sam2core.lite_medsam.engines import cpu_model_and_flags

    model, described = load_eval_model(None if args.no_cache else args.cache, args.engine, args.precision)
    print(f"LiteMedSAM on {described} (asked {args.engine}/{args.precision}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, CPU {cpu_model_and_flags()[0]}")
    protocols = PROTOCOLS if args.protocol == "all" else (args.protocol,)
    cases = load_cases(args.devset, args.only)
    ceilings = {}
    for protocol in protocols:
        rows = []
        for item in cases:
            scan, target = read_case(item)
            from volume.slicing import slicing_axis

            axis = slicing_axis("axial", np.asarray(scan.direction))
            held = slices_holding(target, axis)
            row = {"name": item.name, "group": item.group, "source": item.source,
                   "ref_first": int(held[0]), "ref_last": int(held[-1])}
            for method in args.methods:
                if method == "ceiling":
                    if item.name not in ceilings:
                        ceilings[item.name] = run_ceiling(item, model)
                    row[method] = ceilings[item.name]
                else:
                    row[method] = run_method(item, model, method, protocol)
            rows.append(row)
            print(f"  {protocol} {item.name}: " + ", ".join(f"{m} {row[m]['dice']:.3f}" for m in args.methods),
                  file=sys.stderr, flush=True)
        print_protocol(protocol, rows, args.methods)
    return 0


if __name__ == "__main__":
    sys.exit(main())
