"""DICOM frame geometry: each slice's position and orientation, stack checks and sorting.

Frames (classic single-slice files, or frames of an enhanced multi-frame file) are gathered
with their geometry, checked (same size/orientation/pixel spacing, no duplicate positions),
sorted by position along the slice normal `row_dir x col_dir` (as ITK/GDCM do), and checked
for non-uniform spacing, missing slices and gantry tilt; `regularize` resamples an irregular
stack onto a regular grid. Used by `scanio.dicom`, which re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scanio.dicom_checks import (
    _floats,
    _num_frames,
    _orientation,
    _rescale,
    _rows_columns,
    _spacing,
    check_pixel_budget,
)
from scanio.errors import (
    BadHeaderError,
    IrregularGeometryError,
    MixedSeriesError,
    NotAScanError,
    NotVolumeError,
)

# Relative tolerance on slice spacing, and in-plane drift (fraction of a pixel) counted as tilt.
SPACING_RTOL = 0.01
TILT_PIXEL_FRACTION = 0.1
# A gap wider than this many slice spacings is not interpolated over (two stacks in one series?).
MAX_GAP_SLICES = 10


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


def _frames_of_classic(path: Path, ds) -> list[_Frame]:
    """The one frame of a classic single-slice DICOM file."""
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
    """Distinct slice gaps with their counts, e.g. `2.5 (x10), 5 (x1)`."""
    values, counts = np.unique(np.round(gaps, 3), return_counts=True)
    return ", ".join(f"{v:g} (x{c})" for v, c in zip(values, counts))


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
