"""`napari-sam2 segment SCAN -o OUT --box z,y0,x0,y1,x1 ...`: prompt a slice, propagate, write 3D labels.

Coordinates are voxel indices of the scan array `(z, y, x)` (as `napari-sam2 info` and
napari show them). `--box s,r0,c0,r1,c1` is a slice index along the propagation axis and a
2D box on that slice in the two other array axes, in `(z, y, x)` order: for the axial view
of a usual axial scan that is `z,y0,x0,y1,x1`.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def add_parser(subparsers) -> None:
    """Register the `segment` subcommand."""
    parser = subparsers.add_parser(
        "segment", help="segment objects in 3D from a box/points on one slice",
        description="Read a scan, prompt one slice per object, propagate through the volume and "
                    "write a label volume with the scan's geometry. Coordinates are voxel indices "
                    "(z, y, x) of the scan array. SCAN may be 'sample' for the bundled CT.")
    parser.add_argument("scan", metavar="SCAN", nargs="?", default=None,
                        help="DICOM folder/file, NIfTI, NRRD, MHA, 'sample', or "
                             "dicomweb://HOST[:PORT]/PATH?series=UID")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="label file to write (.nii.gz, .nrrd, .mha, or .dcm for DICOM SEG)")
    parser.add_argument("--model", default="lite_medsam", help="model name (default lite_medsam)")
    parser.add_argument("--checkpoint", default=None, help="weights file instead of the model store's")
    parser.add_argument("--engine", default="auto", choices=["auto", "torch", "onnxruntime", "openvino"],
                        help="what runs LiteMedSAM on the CPU (default auto: the fastest installed engine for "
                             "the encoder and for the decoder, measured once per machine; torch on GPUs)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                        help="LiteMedSAM encoder precision (default auto: fp32; bf16 (fast where the CPU "
                             "computes it natively) and int8 (onnxruntime) are opt-in: they change propagated masks)")
    parser.add_argument("--box", action="append", default=[], metavar="z,y0,x0,y1,x1[,id]",
                        help="box on slice z (inclusive voxel indices); each --box is a new object "
                             "(ids 1, 2, ... unless given as a 6th number)")
    parser.add_argument("--point", action="append", default=[], metavar="z,y,x[,label[,id]]",
                        help="point prompt, label 1 positive (default) or 0 negative, for object id "
                             "(default 1); repeat for more points")
    parser.add_argument("--prompts", default=None, metavar="JSON",
                        help='prompts file: {"objects": [{"id": 1, "box": [z,y0,x0,y1,x1], '
                             '"points": [[z,y,x,label], ...]}]}')
    parser.add_argument("--axis", default="axial", choices=["axial", "coronal", "sagittal"],
                        help="view to propagate along, chosen by the scan's direction (default axial)")
    parser.add_argument("--window", default="auto",
                        help="auto, soft_tissue, liver, lung, bone, brain, percentile or LEVEL,WIDTH")
    parser.add_argument("--extent", action="append", default=[], metavar="OBJ:FIRST:LAST",
                        help="object OBJ lies on slices FIRST..LAST (inclusive): propagation never goes "
                             "past them and does not stop inside them; repeat per object")
    parser.add_argument("--absent-slices", type=int, default=None,
                        help="stop after the object is absent on this many slices (default: the "
                             "carrying rule's, chosen with its thresholds on the dev set)")
    parser.add_argument("--no-cleanup", action="store_true",
                        help="keep raw propagated masks (no 3D component / hole clean-up)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    parser.add_argument("--series-uid", default=None, help="series to read when a folder holds several")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    from napari_sam2.cli.remote import add_pacs_arguments

    add_pacs_arguments(parser, push=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    """Segment and write; 0 ok, 2 bad arguments or input, 1 other failure."""
    import time

    import numpy as np

    import scanio
    from sam2core.errors import Sam2CoreError, UnknownModelError
    from volume import Session, VolumeError
    from volume.prompts import PromptSpecError as BadArguments
    from volume.prompts import apply_extents, apply_prompts, collect_prompts, parse_extents

    from napari_sam2.cli import remote
    from scanio.dicomweb import DicomWebError

    started = time.perf_counter()
    try:
        objects = collect_prompts(args.box, args.point, args.prompts)
        extents = parse_extents(args.extent)
        if args.absent_slices is not None and args.absent_slices < 1:
            raise BadArguments(f"--absent-slices must be >= 1; got {args.absent_slices}")
        path = args.scan
        if path == "sample":
            from sample_data import sample_ct_path

            path = sample_ct_path()
        out = Path(args.output).expanduser()
        if out.exists() and not args.overwrite:
            raise BadArguments(f"{out} exists; choose another name or pass --overwrite")
        from napari_sam2.cli.common import (
            BadInputError,
            check_device,
            check_model_name,
            check_output_file,
            check_window_text,
        )

        try:
            check_output_file(out)
            check_device(args.device)
            check_window_text(args.window)
            if args.checkpoint is None:
                check_model_name(args.model)
        except BadInputError as exc:
            raise BadArguments(str(exc)) from None
        location = remote.remote_location(args, path)
        remote.check_push(args, location, out)
        if location is not None:
            scan = remote.read_remote(location, args, quiet=args.quiet)
        elif path is None:
            raise BadArguments("give SCAN (a path, 'sample' or a dicomweb:// URL) or --server and --series")
        else:
            scan = scanio.read_scan(path, series_uid=args.series_uid)
        for warning in scan.metadata.get("warnings", []):
            print(f"warning: {warning}", file=sys.stderr)
        from sam2core.build import load_model

        model = load_model(args.model, checkpoint=args.checkpoint, device=args.device,
                           engine=args.engine, precision=args.precision)
        session = Session(scan, model, axis=args.axis, window=args.window, device=args.device,
                          checkpoint=args.checkpoint, absent_slices=args.absent_slices,
                          cleanup=not args.no_cleanup)
        apply_prompts(session, objects)
        apply_extents(session, extents)
    except DicomWebError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return remote.exit_code(exc)
    except (BadArguments, scanio.ScanIOError, VolumeError, UnknownModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Sam2CoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(exc, ValueError) else EXIT_FAILED

    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="slice", desc="propagating", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    try:
        labels = session.propagate(progress=progress)
    finally:
        if bar is not None:
            bar.close()
    try:
        written = scanio.write_labels(out, labels, like=scan, overwrite=args.overwrite)
    except scanio.ScanIOError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    seconds = time.perf_counter() - started
    voxel_ml = float(np.prod(scan.spacing_mm)) / 1000.0
    counts = {obj_id: int((labels == obj_id).sum()) for obj_id in session.object_ids}
    windows = session.object_windows
    per_object = ", ".join(f"{k}: {v} voxels {v * voxel_ml:.1f} ml, window {windows[k].name}"
                           for k, v in counts.items())
    print(f"segmented {len(counts)} object(s) ({per_object}); {sum(counts.values())} voxels, "
          f"{sum(counts.values()) * voxel_ml:.1f} ml; {session.slices_encoded} slices encoded "
          f"({', '.join(f'{n} {w}' for w, n in session.slices_encoded_per_window.items())}); "
          f"{seconds:.1f} s -> {written}")
    if getattr(args, "push", False):
        try:  # the SEG is on disk already: a failed store loses nothing
            stored = remote.push_seg(written, location)
        except DicomWebError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"stored SEG {stored.sop_uid} (series {stored.series_uid}) on {location.base_url}")
    return EXIT_OK
