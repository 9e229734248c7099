"""`write_labels`: save a label volume with a scan's geometry, atomically."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from scanio.errors import LabelsError, OutputExistsError, ScanNotFoundError, UnknownFormatError
from scanio.read import suffix_of
from scanio.scan import Scan

WRITE_FORMATS = (".nii.gz", ".nii", ".nrrd", ".mha", ".dcm")


def as_label_array(labels, like: Scan, path: Path) -> np.ndarray:
    """Labels as uint8/uint16 `(z, y, x)` of `like`'s shape, converted losslessly, or `LabelsError`."""
    labels = np.asarray(labels)
    if labels.shape != like.shape:
        raise LabelsError(
            f"{path}: labels of shape {labels.shape} do not match the scan's (z, y, x) shape "
            f"{like.shape}; resample them first (scanio.resample_like)", path)
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if labels.dtype in (np.uint8, np.uint16):
        return labels
    if not np.issubdtype(labels.dtype, np.integer):
        raise LabelsError(
            f"{path}: labels must be integers (uint8/uint16), got {labels.dtype}", path)
    lo, hi = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if lo < 0 or hi > 65535:
        raise LabelsError(
            f"{path}: label values must lie in 0..65535 (uint16), got {lo}..{hi}", path)
    return labels.astype(np.uint8 if hi <= 255 else np.uint16)


def write_labels(path, labels, like: Scan, overwrite: bool = False,
                 segment_names: Optional[Mapping[int, str]] = None) -> Path:
    """Write `labels` `(z, y, x)` with `like`'s geometry to `.nii.gz`/`.nii`/`.nrrd`/`.mha`,
    or `.dcm` as a DICOM Segmentation referencing `like`'s DICOM source.

    The file is written beside its destination and renamed into place (a crash never leaves
    half a file); an existing file is kept (`OutputExistsError`) unless `overwrite=True`.
    `segment_names` (label value -> name) is used for DICOM SEG segment labels. Returns the path.
    """
    path = Path(path).expanduser()
    suffix = suffix_of(path)
    if suffix not in WRITE_FORMATS:
        raise UnknownFormatError(
            f"{path}: cannot write labels as '{suffix}'; use one of {', '.join(WRITE_FORMATS)}",
            path)
    if not path.parent.is_dir():
        raise ScanNotFoundError(f"{path}: the folder {path.parent} does not exist", path)
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path}: file exists; choose another name or pass overwrite=True", path)
    _check_geometry_writable(like, path)
    array = as_label_array(labels, like, path)
    if suffix == ".dcm":
        from scanio.dicom_seg import check_seg_possible

        check_seg_possible(like, path)

    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{suffix}"
    try:
        if suffix == ".dcm":
            from scanio.dicom_seg import write_seg

            write_seg(tmp, array, like, segment_names)
        else:
            _write_sitk(tmp, array, like)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        _move_into_place(tmp, path, overwrite)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _check_geometry_writable(like: Scan, path: Path) -> None:
    """Never write a file whose geometry readers would refuse (NaN origin, zero spacing, ...)."""
    spacing = np.asarray(like.spacing_mm, dtype=np.float64)
    origin = np.asarray(like.origin_mm, dtype=np.float64)
    direction = np.asarray(like.direction, dtype=np.float64)
    if not (np.all(np.isfinite(spacing)) and np.all(spacing > 0) and np.all(np.isfinite(origin))
            and np.all(np.isfinite(direction)) and abs(np.linalg.det(direction)) > 1e-3):
        raise LabelsError(
            f"{path}: the scan's geometry is not valid (spacing {tuple(spacing)}, origin "
            f"{tuple(origin)}); labels cannot be written with it", path)


def _write_sitk(tmp: Path, array: np.ndarray, like: Scan) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(reversed(like.spacing_mm)))
    image.SetOrigin(like.origin_mm)
    image.SetDirection(tuple(like.direction.ravel()))
    sitk.WriteImage(image, str(tmp), useCompression=not str(tmp).endswith(".nii"))


def _move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename `tmp` to `path`; without `overwrite`, never replace a file that appeared meanwhile."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic, fails if path exists
    except FileExistsError:
        raise OutputExistsError(
            f"{path}: file exists; choose another name or pass overwrite=True", path) from None
    except OSError:  # no hard links on this file system
        if path.exists():
            raise OutputExistsError(
                f"{path}: file exists; choose another name or pass overwrite=True", path)
        os.replace(tmp, path)
