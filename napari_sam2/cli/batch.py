"""`napari-sam2 batch MANIFEST -o OUTDIR`: segment a cohort on Dask (local cluster or any scheduler)."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    """Register the `batch` subcommand."""
    p = subparsers.add_parser(
        "batch",
        help="segment every scan of a manifest (CSV or JSON lines) on Dask",
        description=(
            "Segment a cohort: one Dask task per scan (all its objects in one session), the model "
            "loaded once per worker, each result written atomically as OUTDIR/<scan>.nii.gz plus a "
            "row in OUTDIR/summary.csv. Re-running the same command skips finished scans. "
            "Manifest columns: scan, object_id, object_name, box (z,y0,x0,y1,x1), "
            "points (z,y,x[,label];...), axis, window, model."
        ),
    )
    p.add_argument("manifest", help="manifest file (.csv with a header, or .jsonl)")
    p.add_argument("-o", "--output", "--out-dir", dest="out_dir", required=True, help="output folder")
    p.add_argument("--model", default=None, help="model for rows without one (default lite_medsam)")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: cores / threads)")
    p.add_argument("--threads-per-worker", type=int, default=1, help="torch threads per local worker (default 1)")
    p.add_argument(
        "--scheduler", default=None, metavar="ADDRESS",
        help="run on an existing Dask cluster, e.g. tcp://host:8786 (its workers need napari-sam2 installed)",
    )
    p.add_argument(
        "--format", dest="output_format", choices=["nifti", "seg"], default="nifti",
        help="nifti (default), or seg: DICOM-SEG .dcm for DICOM input (other input stays NIfTI)",
    )
    p.add_argument("--device", default=None, help="torch device on the workers (default: cuda, mps, cpu)")
    p.add_argument("--engine", default="auto", choices=["auto", "torch", "onnxruntime", "openvino"],
                   help="what runs LiteMedSAM on the workers' CPUs (default auto: fastest installed, measured)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                   help="LiteMedSAM encoder precision (default auto: fp32; bf16 and int8 opt-in)")
    p.add_argument("--retries", type=int, default=2, help="Dask retries of a task that raised (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--push", action="store_true",
        help="with --format seg: store each new SEG of a dicomweb:// scan back on its server "
             "(credentials from NAPARI_SAM2_DICOMWEB_* or the config file); SEGs stay in OUTDIR",
    )
    p.add_argument(
        "--segmenter", default=None, metavar="MODULE:NAME",
        help="advanced: your own per-scan function or class (called as f(scan, job) -> "
             "volume.batch.Segmentation; a class is instantiated without arguments) instead of "
             "the model session; the module must be importable on every worker",
    )
    p.set_defaults(func=run)


class SegmenterSpecError(ValueError):
    """`--segmenter` does not name an importable callable."""


def load_segmenter(spec: str):
    """`package.module:name` -> the callable (a class is instantiated without arguments)."""
    import importlib
    import inspect

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SegmenterSpecError(f"--segmenter {spec!r} must look like package.module:name")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SegmenterSpecError(f"--segmenter {spec!r} cannot be imported: {exc}") from None
    if inspect.isclass(obj):
        obj = obj()
    if not callable(obj):
        raise SegmenterSpecError(f"--segmenter {spec!r} is not callable")
    return obj


def run(args: argparse.Namespace) -> int:
    """Run the batch; 0 when every scan is done, 1 when some failed, 2 for a bad manifest or options."""
    from volume.batch import BatchError, ManifestError, segment_cohort

    if (args.workers is not None and args.workers < 1) or args.threads_per_worker < 1:
        print("error: --workers and --threads-per-worker must be >= 1", file=sys.stderr)
        return 2
    from pathlib import Path

    from napari_sam2.cli.common import BATCH_EXTRA_HINT, BadInputError, check_device

    import importlib.util

    missing = [m for m in ("dask", "distributed") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"error: napari-sam2 batch needs {' and '.join(missing)} (the batch extra): "
              f"{BATCH_EXTRA_HINT}", file=sys.stderr)
        return 1
    out_dir = Path(args.out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        print(f"error: -o {out_dir} is a file, not a folder; give a folder for the results", file=sys.stderr)
        return 2
    try:
        check_device(args.device)
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.retries < 0:
        print("error: --retries must be >= 0", file=sys.stderr)
        return 2
    if getattr(args, "push", False) and args.output_format != "seg":
        print("error: --push stores DICOM SEGs: add --format seg", file=sys.stderr)
        return 2
    if args.scheduler and args.workers is not None:
        print("note: --workers is ignored with --scheduler (the cluster has its own workers)", file=sys.stderr)
    try:
        segmenter = load_segmenter(args.segmenter) if args.segmenter else None
        report = segment_cohort(
            args.manifest,
            args.out_dir,
            scheduler=args.scheduler,
            model=args.model,
            output_format=args.output_format,
            workers=args.workers,
            threads_per_worker=args.threads_per_worker,
            device=args.device,
            engine=args.engine,
            precision=args.precision,
            retries=args.retries,
            progress=not args.no_progress,
            segmenter=segmenter,
        )
    except (ManifestError, BatchError, SegmenterSpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, TimeoutError, ValueError) as exc:
        if not args.scheduler:
            raise
        print(f"error: cannot use the Dask scheduler {args.scheduler!r} ({type(exc).__name__}: "
              f"{' '.join(str(exc).split())[:300]}); check the address (e.g. tcp://host:8786) and that "
              "the scheduler is running", file=sys.stderr)
        return 2
    failed = report.failed
    print(
        f"{len(report.ok)} scan(s) ok, {len(failed)} failed, {len(report.skipped)} already done "
        f"({report.seconds:.1f} s); summary: {report.out_dir / 'summary.csv'}"
    )
    for row in failed:
        print(f"  failed: {row.scan}: {row.error}", file=sys.stderr)
    if getattr(args, "push", False):
        from napari_sam2.cli.remote import push_batch_results

        if push_batch_results(args.manifest, report.ok, report.out_dir):
            return 1
    return 1 if failed else 0
