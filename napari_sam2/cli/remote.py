"""PACS options shared by the `info` and `segment` commands: a scan from a DICOMweb server.

SCAN may be `dicomweb://HOST[:PORT]/PATH?series=UID` (`dicomweb+http://` without TLS), or
`--server URL --series UID` name the series. Credentials come from the environment
(`NAPARI_SAM2_DICOMWEB_USER`/`_PASSWORD`, or `_TOKEN`) or the config file, never from the
command line. Not a subcommand: `napari_sam2.cli` only loads the modules it lists.
"""

from __future__ import annotations

import sys
from typing import Optional

PACS_HELP = (
    "SCAN may also be a series on a PACS: dicomweb://HOST[:PORT]/PATH?series=UID "
    "(dicomweb+http:// for a server without TLS), or use --server and --series. The series is "
    "fetched (resumably) into a cache folder named after its SeriesInstanceUID. Log in with "
    "NAPARI_SAM2_DICOMWEB_USER and NAPARI_SAM2_DICOMWEB_PASSWORD (or NAPARI_SAM2_DICOMWEB_TOKEN) "
    "in the environment, or a config file (see scanio.dicomweb.config); never on the command line."
)


def add_pacs_arguments(parser, *, push: bool = False) -> None:
    """`--server`, `--series`, `--study`, `--cache` (and `--push`) in a "PACS" group."""
    group = parser.add_argument_group("PACS (DICOMweb)", PACS_HELP)
    group.add_argument("--server", default=None, metavar="URL",
                       help="DICOMweb root URL, e.g. https://pacs.example.org/dicom-web")
    group.add_argument("--series", default=None, metavar="UID",
                       help="SeriesInstanceUID of the series on --server")
    group.add_argument("--study", default=None, metavar="UID",
                       help="StudyInstanceUID (optional: found by searching otherwise)")
    group.add_argument("--cache", default=None, metavar="DIR",
                       help="cache folder for fetched series (default $NAPARI_SAM2_DICOMWEB_CACHE "
                            "or the user cache folder)")
    if push:
        group.add_argument("--push", action="store_true",
                           help="store the DICOM SEG (-o OUT.dcm) back on the server the series "
                                "came from (STOW-RS); the file stays on disk if that fails")


def remote_location(args, scan: Optional[str]):
    """The `SeriesLocation` the arguments name, or None for a local scan."""
    from scanio.dicomweb import series_location

    return series_location(scan or "", getattr(args, "server", None), getattr(args, "series", None),
                           getattr(args, "study", None))


def read_remote(location, args, *, quiet: bool = False):
    """Fetch (with a progress bar on stderr) and read the remote series as a `Scan`."""
    try:
        import dicomweb_client  # noqa: F401
    except ImportError:
        from scanio.dicomweb import DicomWebURLError

        raise DicomWebURLError(
            "reading from a PACS needs dicomweb-client: pip install 'napari-sam2[pacs]'",
            location.base_url) from None
    from scanio.dicomweb import DicomWebServer, read_fetched

    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="instance", desc="fetching", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total, bar.n = total, done
            bar.refresh()

    try:
        result = DicomWebServer(location.base_url).fetch_series(
            location.series_uid, location.study_uid, cache_dir=getattr(args, "cache", None),
            progress=progress)
    finally:
        if bar is not None:
            bar.close()
    return read_fetched(result)


def exit_code(exc: Exception) -> int:
    """2 for what the user can fix in the command (URL, UID, series choice), 1 otherwise."""
    from scanio.dicomweb import (
        DicomWebURLError,
        InvalidInstanceError,
        NotAVolumeSeriesError,
        RemoteSeriesNotFoundError,
    )

    user_fixable = (DicomWebURLError, RemoteSeriesNotFoundError, NotAVolumeSeriesError)
    return 2 if isinstance(exc, user_fixable) and not isinstance(exc, InvalidInstanceError) else 1


def check_push(args, location, out) -> None:
    """Before any work: `--push` needs a remote series and a DICOM SEG output (`-o OUT.dcm`)."""
    from scanio.dicomweb import DicomWebURLError

    if not getattr(args, "push", False):
        return
    if location is None:
        raise DicomWebURLError("--push stores the SEG on the server the series came from: give "
                               "SCAN as dicomweb://HOST/PATH?series=UID, or --server and --series", "")
    if not str(out).lower().endswith(".dcm"):
        from scanio.read import suffix_of

        stem = out.name[: len(out.name) - len(suffix_of(out))] or out.name
        raise DicomWebURLError(f"--push stores a DICOM SEG: name the output -o {stem}.dcm "
                               f"(not {out.name})", location.base_url)


def push_seg(path, location):
    """Store the written SEG on `location`'s server (STOW-RS, then checked by QIDO-RS)."""
    from scanio.dicomweb import store_seg

    return store_seg(path, location)


def remote_scans_of_manifest(manifest) -> dict:
    """`{cache folder: SeriesLocation}` for the manifest's `dicomweb://` scans (for `batch --push`)."""
    from pathlib import Path

    from scanio.dicomweb import is_dicomweb_url, parse_dicomweb_url, series_folder
    from volume.batch.manifest import _normalise_keys, _read_rows

    found = {}
    for raw in _read_rows(Path(manifest)):
        scan = _normalise_keys(raw).get("scan")
        if is_dicomweb_url(scan):
            location = parse_dicomweb_url(scan)
            found[str(series_folder(location.series_uid))] = location
    return found


def push_batch_results(manifest, results, out_dir) -> int:
    """Store each new SEG of a `dicomweb://` scan on its server; prints each; returns failures."""
    import os

    remote = {os.path.abspath(k): v for k, v in remote_scans_of_manifest(manifest).items()}
    failures = 0
    for row in results:
        location = remote.get(os.path.abspath(row.scan))
        if location is None:
            continue
        if not str(row.output).lower().endswith(".dcm"):
            print(f"  not pushed: {row.output} is not a DICOM SEG", file=sys.stderr)
            failures += 1
            continue
        try:
            stored = push_seg(os.path.join(out_dir, row.output), location)
        except Exception as exc:  # DicomWebError; the SEG stays in the output folder
            print(f"  push failed: {exc}", file=sys.stderr)
            failures += 1
            continue
        print(f"  stored {os.path.basename(row.output)} as SEG series {stored.series_uid} on "
              f"{location.base_url}")
    return failures
