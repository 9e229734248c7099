"""DICOM series and multi-frame reading: headers with pydicom, slices sorted along the normal.

Slices (or frames of an enhanced multi-frame file) are gathered with their geometry, checked
(same size/orientation, no duplicate positions), sorted by position along the slice normal
`row_dir x col_dir` (as ITK/GDCM do), and checked for non-uniform spacing, missing slices and
gantry tilt. Pixels are decoded by pydicom (SimpleITK/GDCM when pydicom lacks a codec) and the
modality rescale (slope/intercept) of each slice or frame is applied to that slice or frame.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from scanio.errors import (
    BadHeaderError,
    CorruptFileError,
    EmptyFolderError,
    IrregularGeometryError,
    MixedSeriesError,
    MultipleSeriesError,
    NotAScanError,
    NotVolumeError,
    ReadCancelledError,
    SeriesNotFoundError,
)
from scanio.dicom_checks import (
    _floats,
    _guarded,
    _num_frames,
    _orientation,
    _rescale,
    _rows_columns,
    _spacing,
    check_pixel_budget,
    damaged_header_guard,
)
from scanio.limits import check_regular_file, check_size, is_regular_file
from scanio.scan import DicomSource, Scan, SeriesInfo

# Relative tolerance on slice spacing, and in-plane drift (fraction of a pixel) counted as tilt.
SPACING_RTOL = 0.01
TILT_PIXEL_FRACTION = 0.1
# A gap wider than this many slice spacings is not interpolated over (two stacks in one series?).
MAX_GAP_SLICES = 10
_SKIP_NAMES = {"DICOMDIR"}
_DICOM_NAME_SUFFIXES = (".dcm", ".dicom", ".ima")


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


@dataclass
class _Frame:
    """One 2D slice of a DICOM series: where it lies and how its values are rescaled."""

    file: str
    frame: int  # 0-based frame number within the file
    position: np.ndarray  # ImagePositionPatient (3,), LPS mm of the first pixel's centre
    row_dir: np.ndarray  # direction of increasing column index (array x)
    col_dir: np.ndarray  # direction of increasing row index (array y)
    spacing_yx: tuple[float, float]  # PixelSpacing: (between rows, between columns)
    rows: int
    cols: int
    slope: float = 1.0
    intercept: float = 0.0


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


# ----------------------------------------------------------------------------- frame geometry

def _frames_of_classic(path: Path, ds) -> list[_Frame]:
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        if tag not in ds:
            raise NotAScanError(
                f"{path}: DICOM image without {tag}: no 3D geometry (a secondary capture or "
                "a 2D image?)", path)
    iop = _floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient", path)
    slope, intercept = _rescale(ds, path)
    row_dir, col_dir = _orientation(iop, path)
    rows, cols = _rows_columns(ds, path)
    return [_Frame(
        file=str(path), frame=0,
        position=_floats(ds.ImagePositionPatient, 3, "ImagePositionPatient", path),
        row_dir=row_dir, col_dir=col_dir,
        spacing_yx=_spacing(ds.PixelSpacing, path),
        rows=rows, cols=cols, slope=slope, intercept=intercept,
    )]


def _group_item(ds, k: int, sequence: str):
    """Item of functional-group `sequence` for frame k: per-frame first, then shared."""
    for groups_name, index in (("PerFrameFunctionalGroupsSequence", k),
                               ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(groups_name, None)
        if groups is not None and len(groups) > index and sequence in groups[index]:
            seq = getattr(groups[index], sequence)
            if len(seq):
                return seq[0]
    return None


def _frames_of_enhanced(path: Path, ds) -> list[_Frame]:
    n = _num_frames(ds)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", None)
    if n > 1 and (per_frame is None or len(per_frame) != n):
        raise BadHeaderError(
            f"{path}: NumberOfFrames is {n} but the per-frame functional groups describe "
            f"{0 if per_frame is None else len(per_frame)} frame(s); the file is damaged", path)
    rows, cols = _rows_columns(ds, path)
    frames = []
    for k in range(n):
        pos = _group_item(ds, k, "PlanePositionSequence")
        ori = _group_item(ds, k, "PlaneOrientationSequence")
        meas = _group_item(ds, k, "PixelMeasuresSequence")
        if pos is None or ori is None or meas is None:
            raise NotAScanError(
                f"{path}: multi-frame DICOM without plane position/orientation/pixel measures "
                f"for frame {k + 1}: no 3D geometry", path)
        iop = _floats(ori.get("ImageOrientationPatient"), 6, "ImageOrientationPatient", path)
        trans = _group_item(ds, k, "PixelValueTransformationSequence")
        slope, intercept = _rescale(trans if trans is not None else ds, path)
        row_dir, col_dir = _orientation(iop, path)
        frames.append(_Frame(
            file=str(path), frame=k,
            position=_floats(pos.get("ImagePositionPatient"), 3, "ImagePositionPatient", path),
            row_dir=row_dir, col_dir=col_dir,
            spacing_yx=_spacing(meas.get("PixelSpacing"), path),
            rows=rows, cols=cols, slope=slope, intercept=intercept,
        ))
    return frames


def frames_of(path: Path, ds) -> list[_Frame]:
    """The 2D frames of one DICOM file with their geometry."""
    check_pixel_budget(path, ds)
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        return _frames_of_enhanced(path, ds)
    if _num_frames(ds) > 1:
        raise NotAScanError(
            f"{path}: multi-frame DICOM without functional groups (per-frame geometry) "
            "is not supported", path)
    return _frames_of_classic(path, ds)


@dataclass
class _StackGeometry:
    """Sorted frames plus what is irregular about them."""

    frames: list[_Frame]
    positions: np.ndarray  # (n, 3) sorted along the normal
    normal: np.ndarray
    distances: np.ndarray  # (n,) position along the normal
    problems: list[str]
    tilt_deg: float
    spacing_z: float  # uniform slice spacing (when regular) or the smallest gap


def check_and_sort(frames: list[_Frame], where: Path) -> _StackGeometry:
    """Check that frames form one stack, sort them along the normal, find irregularities."""
    if len(frames) < 2:
        raise NotVolumeError(
            f"{where}: a single 2D slice, not a 3D volume; point to the folder holding the "
            "whole series", where)
    first = frames[0]
    for fr in frames[1:]:
        if (fr.rows, fr.cols) != (first.rows, first.cols):
            raise MixedSeriesError(
                f"{where}: slices of different sizes ({first.rows}x{first.cols} in "
                f"{first.file}, {fr.rows}x{fr.cols} in {fr.file}); one series must have one size",
                where)
        if not (np.allclose(fr.row_dir, first.row_dir, atol=1e-4)
                and np.allclose(fr.col_dir, first.col_dir, atol=1e-4)):
            raise MixedSeriesError(
                f"{where}: slices with different orientations ({first.file} and {fr.file}); "
                "localizers or several stacks mixed in one series?", where)
        if not np.allclose(fr.spacing_yx, first.spacing_yx, rtol=1e-4, atol=1e-6):
            raise MixedSeriesError(
                f"{where}: slices with different pixel spacing ({first.file} and {fr.file})", where)
    normal = np.cross(first.row_dir, first.col_dir)
    normal /= np.linalg.norm(normal)
    dist = np.array([fr.position @ normal for fr in frames])
    order = np.argsort(dist, kind="stable")
    frames = [frames[i] for i in order]
    dist = dist[order]
    positions = np.stack([fr.position for fr in frames])
    gaps = np.diff(dist)
    if np.any(gaps < 1e-3):
        k = int(np.argmin(gaps))
        raise MixedSeriesError(
            f"{where}: several slices at the same position ({frames[k].file} and "
            f"{frames[k + 1].file}): several acquisitions, echoes or phases in one series? "
            "Split them into separate folders", where)
    problems = []
    mean_gap = (dist[-1] - dist[0]) / (len(dist) - 1)
    tol = SPACING_RTOL * float(np.median(gaps)) + 1e-4
    if np.max(np.abs(gaps - mean_gap)) > tol:
        small = float(np.min(gaps))
        multiples = gaps / small
        if np.allclose(multiples, np.round(multiples), atol=0.05):
            missing = int(np.sum(np.round(multiples) - 1))
            problems.append(
                f"{missing} missing slice(s): slice gaps {_describe(gaps)} mm where "
                f"{small:.4g} mm is expected")
        else:
            problems.append(f"non-uniform slice spacing: gaps {_describe(gaps)} mm")
        spacing_z = small
        if np.max(gaps) > MAX_GAP_SLICES * small:
            raise IrregularGeometryError(
                f"{where}: a gap of {np.max(gaps):.4g} mm between slices spaced {small:.4g} mm: "
                "too wide to fill by interpolation (several stacks in one series?)", where)
    else:
        spacing_z = float(mean_gap)
    drift = positions - positions[0]
    inplane = np.stack([drift @ first.row_dir, drift @ first.col_dir], axis=1)
    max_drift = float(np.max(np.abs(inplane)))
    tilt_deg = float(np.degrees(np.arctan2(np.linalg.norm(inplane[-1]), dist[-1] - dist[0])))
    if max_drift > TILT_PIXEL_FRACTION * min(first.spacing_yx):
        problems.append(
            f"gantry tilt: slices shear by {tilt_deg:.2f} degrees ({max_drift:.2f} mm in-plane "
            "over the stack)")
    return _StackGeometry(frames, positions, normal, dist, problems, tilt_deg, spacing_z)


def _describe(gaps: np.ndarray) -> str:
    values, counts = np.unique(np.round(gaps, 3), return_counts=True)
    return ", ".join(f"{v:g} (x{c})" for v, c in zip(values, counts))


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


# ----------------------------------------------------------------------------- regularization

def regularize(stack: np.ndarray, geo: _StackGeometry) -> np.ndarray:
    """Resample an irregular or tilted stack onto a regular orthogonal grid (linear).

    The grid has slice 0 at the first slice, steps `geo.spacing_z` along the normal, and the
    first slice's in-plane grid; values outside the data get the stack's minimum.
    """
    from scipy import ndimage

    first = geo.frames[0]
    n_out = int(round((geo.distances[-1] - geo.distances[0]) / geo.spacing_z)) + 1
    d_out = geo.distances[0] + geo.spacing_z * np.arange(n_out)
    t = np.interp(d_out, geo.distances, np.arange(len(geo.distances)))
    fill = float(stack.min())
    out = np.empty((n_out,) + stack.shape[1:], dtype=np.float32)
    origin = geo.positions[0]
    sy, sx = first.spacing_yx
    for k, tk in enumerate(t):
        i0 = int(np.floor(tk))
        i1 = min(i0 + 1, stack.shape[0] - 1)
        f = tk - i0
        plane = (1 - f) * stack[i0].astype(np.float32) + f * stack[i1].astype(np.float32)
        p = (1 - f) * geo.positions[i0] + f * geo.positions[i1]
        off = p - origin
        shift_yx = (off @ first.col_dir / sy, off @ first.row_dir / sx)
        if max(abs(shift_yx[0]), abs(shift_yx[1])) > 1e-3:
            plane = ndimage.shift(plane, shift_yx, order=1, mode="constant", cval=fill)
        out[k] = plane
    if np.issubdtype(stack.dtype, np.integer):
        return np.round(out).astype(stack.dtype)
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
