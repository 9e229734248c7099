"""DICOM series discovery: which files are DICOM images, and how they group into series.

Headers are read with pydicom (without pixel data); FIFOs, sockets, devices and dangling links
are never opened. Files are grouped by SeriesInstanceUID; `list_series` summarises the groups.
Used by `scanio.dicom`, which re-exports these names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from scanio.dicom_checks import _guarded, _num_frames, damaged_header_guard
from scanio.errors import CorruptFileError, EmptyFolderError, NotAScanError
from scanio.limits import check_regular_file, is_regular_file
from scanio.scan import SeriesInfo

_SKIP_NAMES = {"DICOMDIR"}
_DICOM_NAME_SUFFIXES = (".dcm", ".dicom", ".ima")


def is_dicom_file(path: Path) -> bool:
    """True when the file has the DICOM preamble (`DICM` at byte 128)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_header(path: Path):
    """pydicom dataset without pixel data, or None when the file is not DICOM.

    A file with the DICOM preamble that cannot be parsed raises `CorruptFileError`.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    check_regular_file(path, "DICOM file")  # never open a FIFO or a device
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except InvalidDicomError:
        if is_dicom_file(path):
            raise CorruptFileError(f"{path}: DICOM file that cannot be parsed (damaged?)", path)
        if path.suffix.lower() in _DICOM_NAME_SUFFIXES:  # old files without the 128-byte preamble
            try:
                ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
                if "SOPClassUID" in ds and "Rows" in ds:
                    return ds
            except Exception:
                pass
            raise CorruptFileError(
                f"{path}: named like a DICOM file but not readable as one (truncated or damaged?); "
                "repair or remove it", path)
        return None
    except Exception as exc:  # truncated headers raise assorted errors
        if is_dicom_file(path):
            raise CorruptFileError(
                f"{path}: DICOM file is truncated or damaged ({type(exc).__name__}: {exc})", path
            ) from exc
        return None
    if not (ds.get("SOPClassUID", "") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", "")):
        raise CorruptFileError(
            f"{path}: DICOM file without a SOP class (its header is cut short: truncated?)", path)
    return ds


def _is_image(ds) -> bool:
    """True when the header describes an image (has Rows and Columns)."""
    return "Rows" in ds and "Columns" in ds


def _claims_image(ds) -> bool:
    """True when the file meta says an image storage SOP class (so the header must have Rows)."""
    from pydicom.uid import UID

    sop_class = ds.get("SOPClassUID", "") or getattr(ds, "file_meta", {}).get(
        "MediaStorageSOPClassUID", "")
    return "Image Storage" in UID(str(sop_class)).name if sop_class else False


def _walk_files(folder: Path, special: Optional[list] = None) -> list[Path]:
    """Regular files under `folder` (sorted; hidden ones skipped); FIFOs, sockets, devices and
    dangling links are appended to `special` instead, never opened."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or name in _SKIP_NAMES:
                continue
            path = Path(root) / name
            if is_regular_file(path):
                files.append(path)
            elif special is not None:
                special.append(path)
    return files


def scan_folder(folder: Path) -> tuple[dict[str, list[tuple[Path, object]]], int]:
    """Group the DICOM image files under `folder` by SeriesInstanceUID.

    Returns `({series_uid: [(path, header), ...]}, number of non-DICOM or non-image files)`.
    """
    special: list[Path] = []
    files = _walk_files(folder, special)
    if not files:
        if special:
            raise NotAScanError(
                f"{folder}: no regular files, only {len(special)} FIFO/socket/device/broken link(s) "
                f"(e.g. {special[0]}); scanio reads only regular files", folder)
        raise EmptyFolderError(f"{folder}: the folder is empty; point to a DICOM series folder", folder)
    groups: dict[str, list[tuple[Path, object]]] = {}
    ignored = len(special)
    for path in files:
        ds = read_header(path)
        with damaged_header_guard(path):
            if ds is None or not _is_image(ds):
                if ds is not None and _claims_image(ds):
                    raise CorruptFileError(
                        f"{path}: DICOM image file without Rows/Columns: truncated or damaged", path)
                ignored += 1
                continue
            groups.setdefault(str(ds.get("SeriesInstanceUID", "") or ""), []).append((path, ds))
    if not groups:
        raise NotAScanError(
            f"{folder}: no DICOM image files found among {len(files)} file(s); "
            "point to a folder holding one DICOM series, or to an image file", folder)
    return groups, ignored


def series_info(uid: str, members: Sequence[tuple[Path, object]]) -> SeriesInfo:
    """Summary of one series for `list_series` and error messages."""
    first = members[0][1]
    slices = sum(_num_frames(ds) for _, ds in members)
    return SeriesInfo(
        series_uid=uid,
        description=str(first.get("SeriesDescription", "") or ""),
        modality=str(first.get("Modality", "") or "OT"),
        num_slices=slices,
        size_xyz=(int(first.Columns), int(first.Rows), slices),
        num_files=len(members),
        example_file=str(members[0][0]),
    )


@_guarded
def list_series(folder) -> list[SeriesInfo]:
    """The DICOM image series under `folder` (searched recursively), largest first."""
    folder = Path(folder)
    groups, _ = scan_folder(folder)
    infos = [series_info(uid, members) for uid, members in groups.items()]
    return sorted(infos, key=lambda s: (-s.num_slices, s.series_uid))
