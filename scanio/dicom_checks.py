"""Checks of DICOM header values before any pixel is decoded: finite geometry, sane sizes and
rescale, the frame count and pixel bytes a file claims, and typed errors for values pydicom
cannot parse (it parses lazily, on first access). Used by `scanio.dicom`."""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import numpy as np

from scanio.errors import BadHeaderError, CorruptFileError, NotAScanError, ScanIOError
from scanio.limits import check_size

MAX_ROWS_COLUMNS = 65535  # Rows/Columns are US (16-bit) in DICOM


@contextlib.contextmanager
def damaged_header_guard(path):
    """Turn the assorted errors pydicom raises on damaged elements (parsed lazily, on first
    access) into a `CorruptFileError` naming the file; scanio's own errors pass through."""
    try:
        yield
    except (ScanIOError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on damaged values
        raise CorruptFileError(
            f"{path}: damaged DICOM header ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})",
            Path(path)) from exc


def _guarded(function):
    """Decorator: `damaged_header_guard` around a reader whose first argument is the path."""
    @functools.wraps(function)
    def wrapper(path, *args, **kwargs):
        with damaged_header_guard(path):
            return function(path, *args, **kwargs)
    return wrapper


def _num_frames(ds) -> int:
    """NumberOfFrames (1 when absent); a damaged value is an error naming the file, never repaired."""
    value = ds.get("NumberOfFrames", None)
    if value is None or value == "":
        return 1
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (number >= 1 and number == int(number)):
        raise BadHeaderError(f"{getattr(ds, 'filename', None) or 'a DICOM file'}: NumberOfFrames {str(value)[:40]!r} "
                             "is not a positive integer; the file is damaged (re-export it)")
    return int(number)


def _floats(value, n: int, what: str, path) -> np.ndarray:
    """`n` finite numbers of a DICOM attribute, or a typed error naming the file."""
    try:
        values = [value] if not hasattr(value, "__len__") or isinstance(value, (str, bytes)) else value
        arr = np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NotAScanError(f"{path}: unreadable {what} ({value!r})", path) from exc
    if arr.shape != (n,):
        raise NotAScanError(f"{path}: {what} must have {n} values, got {value!r}", path)
    if not np.all(np.isfinite(arr)):
        raise BadHeaderError(f"{path}: {what} {arr.tolist()} is not finite; the file is damaged", path)
    return arr


def _spacing(value, path) -> tuple[float, float]:
    """PixelSpacing (row, column) in mm: finite and > 0."""
    arr = _floats(value, 2, "PixelSpacing", path)
    if np.any(arr <= 0):
        raise BadHeaderError(
            f"{path}: PixelSpacing {arr.tolist()} must be > 0 mm; the file is damaged", path)
    return float(arr[0]), float(arr[1])


def _orientation(iop: np.ndarray, path=None) -> tuple[np.ndarray, np.ndarray]:
    """Row and column directions made exactly orthonormal (DS strings round them)."""
    row_norm, col_norm = np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])
    if row_norm < 1e-3 or col_norm < 1e-3 or \
            np.linalg.norm(np.cross(iop[:3] / row_norm, iop[3:] / col_norm)) < 1e-2:
        raise BadHeaderError(
            f"{path}: ImageOrientationPatient {iop.tolist()} has a zero or parallel row/column "
            "direction; the file is damaged", path)
    row = iop[:3] / row_norm
    col = iop[3:] - (iop[3:] @ row) * row
    return row, col / np.linalg.norm(col)


def _rescale(item, path=None) -> tuple[float, float]:
    slope = item.get("RescaleSlope", None)
    intercept = item.get("RescaleIntercept", None)
    try:
        values = (float(slope) if slope not in (None, "") else 1.0,
                  float(intercept) if intercept not in (None, "") else 0.0)
    except (TypeError, ValueError):
        raise BadHeaderError(f"{path}: unreadable RescaleSlope/Intercept ({slope!r}, {intercept!r})",
                             path) from None
    if not all(np.isfinite(values)) or values[0] == 0:
        raise BadHeaderError(
            f"{path}: RescaleSlope {values[0]} / RescaleIntercept {values[1]} must be finite (and the "
            "slope non-zero); the file is damaged", path)
    return values


def _rows_columns(ds, path) -> tuple[int, int]:
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (TypeError, ValueError):
        raise BadHeaderError(f"{path}: unreadable Rows/Columns", path) from None
    if not (1 <= rows <= MAX_ROWS_COLUMNS and 1 <= cols <= MAX_ROWS_COLUMNS):
        raise BadHeaderError(f"{path}: Rows x Columns = {rows} x {cols} must lie in 1..65535", path)
    return rows, cols


def check_pixel_budget(path: Path, ds) -> None:
    """Before any frame is looked at: the size cap, and (uncompressed) that the file holds the
    pixel bytes Rows x Columns x frames claim."""
    rows, cols = _rows_columns(ds, path)
    frames = _num_frames(ds)
    try:
        bits = int(ds.get("BitsAllocated", 16) or 16)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
    except (TypeError, ValueError):
        raise BadHeaderError(f"{path}: unreadable BitsAllocated/SamplesPerPixel", path) from None
    if bits not in (1, 8, 16, 32, 64) or not 1 <= samples <= 4:
        raise BadHeaderError(f"{path}: BitsAllocated {bits} / SamplesPerPixel {samples} is not valid", path)
    check_size(path, (frames, rows, cols, samples), 4, "DICOM image")  # decoded as 32-bit values
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and not syntax.is_compressed:
        need = (frames * rows * cols * samples * bits + 7) // 8
        have = os.stat(path).st_size
        if have < need:
            raise CorruptFileError(
                f"{path}: Rows x Columns x frames = {rows} x {cols} x {frames} need {need:,} bytes of "
                f"pixel data, the file holds {have:,}: truncated or damaged", path)
