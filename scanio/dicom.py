"""DICOM reading: a series folder or a DICOM file to a `Scan` with geometry.

Series discovery lives in `scanio.dicom_series`, frame geometry (checks, sorting along the
slice normal, regularization) in `scanio.dicom_frames`; this module decodes the pixels and
assembles the `Scan`, and re-exports the names of both so `scanio.dicom.X` keeps working.
Pixels are decoded by pydicom (SimpleITK/GDCM when pydicom lacks a codec) and the modality
rescale (slope/intercept) of each slice or frame is applied to that slice or frame.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from scanio.dicom_checks import _guarded, _num_frames, damaged_header_guard
from scanio.dicom_frames import (  # noqa: F401  (re-exported)
    MAX_GAP_SLICES,
    SPACING_RTOL,
    TILT_PIXEL_FRACTION,
    _describe,
    _Frame,
    _frames_of_classic,
    _frames_of_enhanced,
    _group_item,
    _StackGeometry,
    check_and_sort,
    frames_of,
    regularize,
)
from scanio.dicom_series import (  # noqa: F401  (re-exported)
    _DICOM_NAME_SUFFIXES,
    _SKIP_NAMES,
    _claims_image,
    _is_image,
    _walk_files,
    is_dicom_file,
    list_series,
    read_header,
    scan_folder,
    series_info,
)
from scanio.errors import (
    CorruptFileError,
    IrregularGeometryError,
    MultipleSeriesError,
    NotAScanError,
    NotVolumeError,
    ReadCancelledError,
    SeriesNotFoundError,
)
from scanio.limits import check_regular_file, check_size
from scanio.scan import DicomSource, Scan


@dataclass
class ReadOptions:
    """How to read: irregular geometry policy, progress callback `(done, total)`, cancel event."""

    irregular: str = "resample"
    progress: Optional[Callable[[int, int], None]] = None
    cancel: Optional[object] = None  # anything with is_set(), e.g. threading.Event

    def step(self, done: int, total: int, where) -> None:
        """Report progress; raise `ReadCancelledError` when cancelled."""
        if self.cancel is not None and self.cancel.is_set():
            raise ReadCancelledError(f"{where}: reading cancelled", where)
        if self.progress is not None:
            self.progress(done, total)


# ----------------------------------------------------------------------------- pixels

def _decode_file(path: str) -> tuple[np.ndarray, bool]:
    """Stored pixel values `(frames, rows, cols)` and whether they are already rescaled.

    pydicom gives stored values; when it lacks a codec, SimpleITK/GDCM decodes (and applies
    the rescale itself).
    """
    import pydicom

    check_regular_file(path, "DICOM file")
    try:
        ds = pydicom.dcmread(path, force=True)  # the header was checked already
        arr = ds.pixel_array
        return (arr[None] if arr.ndim == 2 else arr), False
    except MemoryError:
        raise
    except Exception as pydicom_exc:
        if not _pydicom_lacks_codec(path):
            # never fall back on a reader that may return an unwritten buffer for a damaged file
            raise CorruptFileError(
                f"{path}: pixel data cannot be decoded (truncated or damaged file?): "
                f"{type(pydicom_exc).__name__}: {_short(pydicom_exc)}", path) from pydicom_exc
        import SimpleITK as sitk

        try:
            arr = sitk.GetArrayFromImage(sitk.ReadImage(path))
        except Exception:
            raise CorruptFileError(
                f"{path}: pixel data cannot be decoded (truncated or damaged file?): "
                f"{_short(pydicom_exc)}", path) from pydicom_exc
        return (arr[None] if arr.ndim == 2 else arr), True


def _short(exc: Exception) -> str:
    """The exception message on one line, at most 300 characters."""
    text = " ".join(str(exc).split())
    return text[:300]


def _pydicom_lacks_codec(path: str) -> bool:
    """True only when the file is compressed in a transfer syntax pydicom has no decoder for
    here (then GDCM, through SimpleITK, decodes it)."""
    import pydicom

    try:
        syntax = pydicom.dcmread(path, stop_before_pixels=True, force=True).file_meta.TransferSyntaxUID
        if not syntax.is_compressed:
            return False
        from pydicom.pixels import get_decoder

        return not get_decoder(syntax).is_available
    except Exception:
        return False


def load_pixels(frames: list[_Frame], opts: Optional[ReadOptions] = None) -> np.ndarray:
    """Pixel stack `(n, rows, cols)` in modality units (HU for CT), frame k from frames[k]."""
    integral = all(float(f.slope).is_integer() and float(f.intercept).is_integer() for f in frames)
    out = np.empty((len(frames), frames[0].rows, frames[0].cols),
                   dtype=np.int32 if integral else np.float32)
    cache: dict[str, tuple[np.ndarray, bool]] = {}
    opts = opts or ReadOptions()
    for k, fr in enumerate(frames):
        opts.step(k, len(frames), fr.file)
        if fr.file not in cache:
            # keep multi-frame files (their frames may interleave), drop single slices
            cache = {f: v for f, v in cache.items() if v[0].shape[0] > 1}
            cache[fr.file] = _decode_file(fr.file)
        data, rescaled = cache[fr.file]
        if data.ndim != 3 or data.shape[1:] != (fr.rows, fr.cols) or fr.frame >= data.shape[0]:
            raise NotAScanError(
                f"{fr.file}: pixel data of shape {data.shape} does not match Rows/Columns/"
                f"NumberOfFrames (colour image?)", fr.file)
        plane = data[fr.frame]
        if rescaled or (fr.slope == 1.0 and fr.intercept == 0.0):
            out[k] = plane
        elif integral:
            out[k] = plane.astype(np.int32) * int(fr.slope) + int(fr.intercept)
        else:
            out[k] = plane.astype(np.float64) * fr.slope + fr.intercept
    opts.step(len(frames), len(frames), frames[-1].file)
    if integral:
        lo, hi = (int(out.min()), int(out.max())) if out.size else (0, 0)
        for dtype in (np.int16, np.uint16):
            info = np.iinfo(dtype)
            if info.min <= lo and hi <= info.max:
                return out.astype(dtype)
    return out


# ----------------------------------------------------------------------------- read

def _metadata(ds, path: Path, uid: str, num_files: int) -> dict:
    """Non-identifying metadata of the series (first file's header)."""
    def first_value(v):
        if v is None or v == "":
            return None
        try:
            return float(v[0]) if hasattr(v, "__len__") and not isinstance(v, str) else float(v)
        except (TypeError, ValueError):
            return None

    meta = {
        "source": str(path),
        "format": "dicom",
        "series_uid": uid,
        "series_description": str(ds.get("SeriesDescription", "") or ""),
        "study_uid": str(ds.get("StudyInstanceUID", "") or ""),
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "") or ""),
        "sop_class_uid": str(ds.get("SOPClassUID", "") or ""),
        "manufacturer": str(ds.get("Manufacturer", "") or ""),
        "body_part": str(ds.get("BodyPartExamined", "") or ""),
        "num_files": num_files,
        "window_center": first_value(ds.get("WindowCenter", None)),
        "window_width": first_value(ds.get("WindowWidth", None)),
        "warnings": [],
    }
    return meta


def read_frames(where: Path, members: Sequence[tuple[Path, object]], uid: str,
                opts: Optional[ReadOptions] = None) -> Scan:
    """A Scan from the DICOM files `members` (one series, or one multi-frame file)."""
    opts = opts or ReadOptions()
    frames: list[_Frame] = []
    for path, ds in members:
        with damaged_header_guard(path):
            frames.extend(frames_of(path, ds))
    geo = check_and_sort(frames, where)
    check_size(where, (len(geo.frames), geo.frames[0].rows, geo.frames[0].cols), 4, "DICOM series")
    first_ds = members[0][1]
    meta = _metadata(first_ds, where, uid, len(members))
    if geo.problems and opts.irregular == "error":
        raise IrregularGeometryError(
            f"{where}: irregular slice geometry: {'; '.join(geo.problems)}. Read with "
            "irregular='resample' to resample onto a regular grid", where)
    stack = load_pixels(geo.frames, opts)
    first = geo.frames[0]
    regularized = bool(geo.problems)
    if regularized:
        stack = regularize(stack, geo)
        for problem in geo.problems:
            message = f"{where}: {problem}; resampled onto a regular grid of {geo.spacing_z:.4g} mm"
            meta["warnings"].append(message)
            warnings.warn(message, stacklevel=4)  # the caller of read_scan
    meta["gantry_tilt_deg"] = round(geo.tilt_deg, 4)
    direction = np.stack([first.row_dir, first.col_dir, geo.normal], axis=1)
    modality = str(first_ds.get("Modality", "") or "OT")
    return Scan(
        array=stack,
        spacing_mm=(geo.spacing_z, first.spacing_yx[0], first.spacing_yx[1]),
        origin_mm=tuple(geo.positions[0]),
        direction=direction,
        modality=modality,
        metadata=meta,
        dicom_source=DicomSource(
            files=tuple(f.file for f in geo.frames),
            frames=tuple(f.frame for f in geo.frames),
            regularized=regularized,
        ),
    )


@_guarded
def read_dicom_folder(folder: Path, series_uid: Optional[str] = None,
                      opts: Optional[ReadOptions] = None) -> Scan:
    """Read one DICOM series from a folder (the only one, or `series_uid`)."""
    groups, ignored = scan_folder(folder)
    if series_uid is None:
        if len(groups) > 1:
            infos = sorted((series_info(u, m) for u, m in groups.items()),
                           key=lambda s: -s.num_slices)
            listing = "\n  ".join(str(s) for s in infos)
            raise MultipleSeriesError(
                f"{folder}: {len(groups)} DICOM series in this folder; choose one with "
                f"series_uid=...:\n  {listing}", folder, infos)
        uid = next(iter(groups))
    else:
        if series_uid not in groups:
            listing = ", ".join(repr(u) for u in groups)
            raise SeriesNotFoundError(
                f"{folder}: no series with SeriesInstanceUID {series_uid!r}; found {listing}", folder)
        uid = series_uid
    members = groups[uid]
    if len(members) == 1 and members[0][1].get("Modality", "") == "SEG":
        from scanio.dicom_seg import read_seg

        return read_seg(members[0][0])
    scan = read_frames(folder, members, uid, opts)
    if ignored:
        scan.metadata["ignored_files"] = ignored
        scan.metadata["warnings"].append(
            f"{folder}: {ignored} file(s) that are not DICOM images (or not regular files) were "
            "ignored")
    return scan


@_guarded
def read_dicom_file(path: Path, ds, opts: Optional[ReadOptions] = None) -> Scan:
    """Read a DICOM file: multi-frame as its own volume, a single slice with its series siblings."""
    if str(ds.get("Modality", "")) == "SEG":
        from scanio.dicom_seg import read_seg

        return read_seg(path)
    if not _is_image(ds):
        if _claims_image(ds):
            raise CorruptFileError(
                f"{path}: DICOM image file without Rows/Columns: truncated or damaged", path)
        raise NotAScanError(
            f"{path}: DICOM file without an image (modality {ds.get('Modality', '?')}, "
            f"SOP class {ds.get('SOPClassUID', '?')})", path)
    uid = str(ds.get("SeriesInstanceUID", "") or "")
    if _num_frames(ds) > 1:
        return read_frames(path, [(path, ds)], uid, opts)
    siblings = []
    for other in sorted(path.parent.iterdir()):
        if other.is_file() and not other.name.startswith(".") and other.name not in _SKIP_NAMES:
            other_ds = ds if other == path else read_header(other)
            if other_ds is not None and _is_image(other_ds) and \
                    str(other_ds.get("SeriesInstanceUID", "") or "") == uid:
                siblings.append((other, other_ds))
    if len(siblings) < 2:
        raise NotVolumeError(
            f"{path}: a single 2D DICOM slice with no other slices of its series beside it; "
            "a 3D volume is needed", path)
    scan = read_frames(path.parent, siblings, uid, opts)
    scan.metadata["warnings"].append(
        f"{path} is one slice: read its whole series ({len(siblings)} files) from {path.parent}")
    return scan
