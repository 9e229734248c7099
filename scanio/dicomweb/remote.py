"""One call for each end of the round trip: read a remote series as a `Scan`, store a SEG back."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Optional, Union

from scanio.dicomweb.client import DicomWebServer, FetchResult, StoreResult
from scanio.dicomweb.config import SeriesLocation, is_dicomweb_url, parse_dicomweb_url
from scanio.dicomweb.errors import NotAVolumeSeriesError
from scanio.scan import Scan

REMOTE_KEY = "dicomweb"  # scan.metadata[REMOTE_KEY]: where the scan came from (server, UIDs)


def _location(where: Union[str, SeriesLocation]) -> SeriesLocation:
    return parse_dicomweb_url(where) if isinstance(where, str) else where


def fetch(where: Union[str, SeriesLocation], *, cache_dir=None,
          progress: Optional[Callable[[int, int], None]] = None,
          cancel: Optional[threading.Event] = None) -> FetchResult:
    """Fetch a remote series (a `dicomweb://` URL or a `SeriesLocation`) into the cache."""
    location = _location(where)
    return DicomWebServer(location.base_url).fetch_series(
        location.series_uid, location.study_uid, cache_dir=cache_dir, progress=progress,
        cancel=cancel)


def read_fetched(result: FetchResult, *, progress=None, cancel=None) -> Scan:
    """`read_scan` on a fetched series folder; remembers the server and UIDs in the metadata."""
    from scanio.errors import NotVolumeError
    from scanio.read import read_scan

    series, server = result.series, result.server
    try:
        scan = read_scan(result.folder, series_uid=series.series_uid, progress=progress,
                         cancel=cancel)
    except NotVolumeError as exc:
        if isinstance(exc, NotAVolumeSeriesError):
            raise
        raise NotAVolumeSeriesError(
            f"series {series.series_uid} ({series.modality} '{series.description}') is not a 3D "
            f"volume on {server}: {exc}; choose a series with several slices", server, exc.path) from None
    if scan.modality == "SEG":
        raise NotAVolumeSeriesError(
            f"series {series.series_uid} on {server} is a segmentation (DICOM SEG), not an "
            "image volume: choose the CT/MR series it refers to", server, result.folder)
    scan.metadata[REMOTE_KEY] = {"server": server, "study_uid": series.study_uid,
                                 "series_uid": series.series_uid}
    return scan


def read_series(where: Union[str, SeriesLocation], *, cache_dir=None,
                progress: Optional[Callable[[int, int], None]] = None,
                cancel: Optional[threading.Event] = None) -> Scan:
    """Fetch (resumably) and read a remote series: `read_series("dicomweb://host/dicom-web?series=UID")`.

    `progress(done, total)` counts instances fetched. The scan's `metadata["dicomweb"]` holds
    the server URL and the study and series UIDs, so its SEG can be stored back (`store_seg`).
    """
    location = _location(where)
    result = fetch(location, cache_dir=cache_dir, progress=progress, cancel=cancel)
    return read_fetched(result, cancel=cancel)


def remote_origin(scan: Scan) -> Optional[SeriesLocation]:
    """Where `scan` was fetched from (by `read_series`), or None for a local scan."""
    info = (scan.metadata or {}).get(REMOTE_KEY) or {}
    if not info.get("server"):
        return None
    return SeriesLocation(info["server"], info["series_uid"], info.get("study_uid"))


def store_seg(path: Union[str, Path], server: Union[str, SeriesLocation]) -> StoreResult:
    """Store the DICOM SEG at `path` on `server` (URL, `dicomweb://` URL or location) with STOW-RS.

    On failure `StoreFailedError` says why and the file stays where it is.
    """
    if isinstance(server, SeriesLocation):
        base = server.base_url
    elif is_dicomweb_url(server):
        base = parse_dicomweb_url(server).base_url
    else:
        base = server
    return DicomWebServer(base).store(path)
