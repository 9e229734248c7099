"""`napari-sam2 info SCAN`: print a scan's geometry (shape, spacing, origin, direction, modality)."""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    """Register the `info` subcommand."""
    parser = subparsers.add_parser(
        "info", help="print a scan's shape, spacing, origin, direction and modality",
        description="Read a scan (DICOM folder or file, NIfTI, NRRD, MetaImage) and print its "
                    "geometry. SCAN may be 'sample' for the bundled CT.")
    parser.add_argument("scan", metavar="SCAN", nargs="?", default=None,
                        help="path to a scan, 'sample', or dicomweb://HOST[:PORT]/PATH?series=UID")
    parser.add_argument("--series-uid", default=None,
                        help="SeriesInstanceUID to read when a folder holds several series")
    from napari_sam2.cli.remote import add_pacs_arguments

    add_pacs_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    """Print the geometry of `args.scan`; 0 on success, 2 with the error message on bad input."""
    import numpy as np

    import scanio

    path = args.scan
    if path == "sample":
        from sample_data import sample_ct_path

        path = sample_ct_path()
    from napari_sam2.cli import remote
    from scanio.dicomweb import DicomWebError

    try:
        location = remote.remote_location(args, path)
        if location is None and path is None:
            print("error: give SCAN (a path, 'sample' or a dicomweb:// URL) or --server and --series",
                  file=sys.stderr)
            return 2
        if location is not None:
            scan = remote.read_remote(location, args, quiet=True)
        else:
            scan = scanio.read_scan(path, series_uid=args.series_uid)
    except DicomWebError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return remote.exit_code(exc)
    except scanio.ScanIOError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fmt = lambda values: "(" + ", ".join(f"{v:.6g}" for v in values) + ")"  # noqa: E731
    rows = [
        ("scan", str(scan.metadata.get("source", path))),
        ("shape (z, y, x)", f"{scan.shape} {scan.array.dtype}"),
        ("spacing mm (z, y, x)", fmt(scan.spacing_mm)),
        ("origin mm (LPS x, y, z)", fmt(scan.origin_mm)),
        ("direction (columns i, j, k)", "  ".join(fmt(c) for c in np.asarray(scan.direction).T)),
        ("modality", scan.modality),
        ("series description", repr(scan.metadata.get("series_description", ""))),
        ("values", f"{scan.array.min()} .. {scan.array.max()}"),
    ] + [("warning", w) for w in scan.metadata.get("warnings", [])]
    for name, value in rows:
        print(f"{name + ':':29s}{value}")
    return 0
