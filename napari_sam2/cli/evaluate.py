"""`napari-sam2 eval PRED REF [--label N]`: Dice per label between a predicted and a reference label volume."""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    """Register the `eval` subcommand."""
    parser = subparsers.add_parser(
        "eval", help="Dice per label between predicted and reference labels",
        description="Compare two label volumes voxel by voxel and print Dice per label. REF is "
                    "resampled onto PRED's grid (nearest neighbour) when the grids differ.")
    parser.add_argument("pred", metavar="PRED", help="predicted labels (any format scanio reads)")
    parser.add_argument("ref", metavar="REF", help="reference labels")
    parser.add_argument("--label", type=int, action="append", default=None, metavar="N",
                        help="label value to report (repeatable; default: every label in either)")
    parser.add_argument("--pred-label", type=int, default=None, metavar="P",
                        help="compare predicted label P against reference --label N (one --label)")
    parser.set_defaults(func=run)


def _same_grid(a, b) -> bool:
    import numpy as np

    return (a.array.shape == b.array.shape and np.allclose(a.spacing_mm, b.spacing_mm, atol=1e-3)
            and np.allclose(a.origin_mm, b.origin_mm, atol=1e-2)
            and np.allclose(a.direction, b.direction, atol=1e-4))


def _check_labels(scan, path, what: str) -> None:
    """Labels are whole numbers: a float volume with fractions (probabilities, an image) would be
    silently truncated, so it is refused."""
    import numpy as np

    import scanio

    array = np.asarray(scan.array)
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all() or not np.array_equal(array, np.round(array)):
            raise scanio.LabelsError(
                f"{path}: {what} holds non-integer or non-finite values ({array.dtype}); it is not a "
                "label volume (a probability map or an image?): threshold or convert it to integer "
                "labels first", path)


def run(args) -> int:
    """Print a Dice table; 0 ok, 2 bad arguments or input."""
    import numpy as np

    import scanio
    from volume.metrics import dice, per_object_metrics

    try:
        pred = scanio.read_scan(args.pred)
        ref = scanio.read_scan(args.ref)
        _check_labels(pred, args.pred, "PRED")
        _check_labels(ref, args.ref, "REF")
        if not _same_grid(pred, ref):
            ref = scanio.resample_like(ref, like=pred, is_label=True)
    except scanio.ScanIOError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.pred_label is not None:
        if not args.label or len(args.label) != 1:
            print("error: --pred-label needs exactly one --label (the reference label)", file=sys.stderr)
            return 2
        value = dice(pred.array == args.pred_label, ref.array == args.label[0])
        print(f"pred {args.pred_label} vs ref {args.label[0]}: dice {value:.4f}")
        return 0
    spacing = tuple(float(v) for v in pred.spacing_mm)
    rows = per_object_metrics(np.asarray(pred.array), np.asarray(ref.array), labels=args.label, spacing_mm=spacing)
    if not rows:
        print("error: both volumes are empty; nothing to compare", file=sys.stderr)
        return 2
    print(f"{'label':>6} {'dice':>7} {'pred ml':>9} {'ref ml':>9}")
    for label, row in rows.items():
        print(f"{label:>6} {row['dice']:>7.4f} {row['pred_ml']:>9.1f} {row['ref_ml']:>9.1f}")
    if len(rows) > 1:
        print(f"{'mean':>6} {np.mean([r['dice'] for r in rows.values()]):>7.4f}")
    return 0
