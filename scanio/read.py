"""`read_scan`: one entry point for DICOM folders/files, NIfTI, NRRD and MetaImage."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from scanio.errors import (
    CorruptFileError,
    NotAScanError,
    NotVolumeError,
    ScanNotFoundError,
    UnknownFormatError,
)
from scanio.scan import Scan

# Extension -> format name, for files SimpleITK reads.
IMAGE_FORMATS = {
    ".nii.gz": "NIfTI", ".nii": "NIfTI",
    ".nrrd": "NRRD", ".nhdr": "NRRD",
    ".mha": "MetaImage", ".mhd": "MetaImage",
}
DICOM_SUFFIXES = {".dcm", ".dicom", ".ima", ""}
SUPPORTED = "a DICOM series folder, a DICOM file, .nii/.nii.gz, .nrrd/.nhdr, .mha/.mhd"


def suffix_of(path: Path) -> str:
    """Lower-case extension, with `.nii.gz` kept whole."""
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


def read_scan(path, series_uid: Optional[str] = None, *, irregular: str = "resample",
              progress: Optional[Callable[[int, int], None]] = None,
              cancel: Optional[object] = None) -> Scan:
    """Read a 3D scan with its exact geometry (see `Scan`).

    `path`: a folder holding a DICOM series (searched recursively; `series_uid` chooses when
    there are several), a DICOM file (multi-frame, or one slice of a series beside it), or a
    NIfTI / NRRD / MetaImage file. `irregular`: what to do with non-uniform spacing, missing
    slices or gantry tilt in DICOM: "resample" onto a regular grid with a warning (recorded in
    `scan.metadata["warnings"]`), or "error" (`IrregularGeometryError`). `progress(done,
    total)` is called as DICOM slices are decoded; setting `cancel` (a `threading.Event`)
    stops reading with `ReadCancelledError`.
    """
    from scanio import dicom

    if irregular not in ("resample", "error"):
        raise ValueError(f"irregular must be 'resample' or 'error', got {irregular!r}")
    opts = dicom.ReadOptions(irregular=irregular, progress=progress, cancel=cancel)
    path = Path(path).expanduser()
    if not path.exists():
        raise ScanNotFoundError(f"{path}: no such file or folder", path)
    if path.is_dir():
        return dicom.read_dicom_folder(path, series_uid, opts)
    suffix = suffix_of(path)
    if suffix in IMAGE_FORMATS:
        return _read_image_file(path, IMAGE_FORMATS[suffix])
    ds = dicom.read_header(path)
    if ds is not None:
        return dicom.read_dicom_file(path, ds, opts)
    if suffix in DICOM_SUFFIXES:
        raise NotAScanError(f"{path}: not a DICOM file (and no known image extension)", path)
    raise UnknownFormatError(
        f"{path}: unknown file type '{suffix}'; scanio reads {SUPPORTED}", path)


def _looks_like(path: Path, fmt: str) -> bool:
    """Cheap check that the file's first bytes match its format (else it is not a scan)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
        if fmt == "NIfTI":
            if head[:2] == b"\x1f\x8b":
                with gzip.open(path, "rb") as g:
                    head = g.read(352)
            if len(head) < 4:
                return False
            size_le = int.from_bytes(head[:4], "little")
            size_be = int.from_bytes(head[:4], "big")
            return size_le in (348, 540) or size_be in (348, 540)
        if fmt == "NRRD":
            return head.startswith(b"NRRD")
        return b"NDims" in head or b"ObjectType" in head
    except (OSError, EOFError, gzip.BadGzipFile):
        return False


def _check_nifti_complete(path: Path) -> None:
    """ITK reads a truncated NIfTI without complaint: check the voxel bytes are all there."""
    import nibabel as nib

    try:
        header = nib.load(str(path)).header
        expected = int(header.get_data_offset()) + int(
            np.prod(header.get_data_shape(), dtype=np.int64)) * header.get_data_dtype().itemsize
        if path.name.lower().endswith(".gz"):
            available = 0
            with gzip.open(path, "rb") as f:
                while chunk := f.read(1 << 22):
                    available += len(chunk)
        else:
            available = path.stat().st_size
    except (OSError, EOFError, ValueError, gzip.BadGzipFile, nib.filebasedimages.ImageFileError) as exc:
        raise CorruptFileError(f"{path}: NIfTI file is truncated or damaged ({exc})", path) from exc
    if available < expected:
        raise CorruptFileError(
            f"{path}: NIfTI file is truncated ({available} of {expected} bytes)", path)


def _modality_from_keys(reader) -> str:
    keys = set(reader.GetMetaDataKeys())
    for key in ("Modality", "modality"):
        if key in keys:
            value = reader.GetMetaData(key).upper()
            for name in ("CT", "MR", "PT", "US"):
                if name in value.replace("MET_MOD_", ""):
                    return name
    return "OT"


def _read_image_file(path: Path, fmt: str) -> Scan:
    import SimpleITK as sitk

    if not _looks_like(path, fmt):
        raise NotAScanError(
            f"{path}: not a {fmt} file (its content does not match the extension)", path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise CorruptFileError(f"{path}: damaged {fmt} header: {_first_line(exc)}", path) from exc
    dim = reader.GetDimension()
    size = reader.GetSize()
    if reader.GetNumberOfComponents() != 1:
        raise NotAScanError(
            f"{path}: {reader.GetNumberOfComponents()}-component (colour/vector) image; "
            "a scalar 3D scan is needed", path)
    if dim == 4 and size[3] == 1:
        reader.SetExtractSize(list(size[:3]) + [0])
    elif dim != 3:
        raise NotVolumeError(f"{path}: a {dim}D image of size {size}; a 3D volume is needed", path)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise CorruptFileError(
            f"{path}: {fmt} file is truncated or damaged: {_first_line(exc)}", path) from exc
    if fmt == "NIfTI":
        _check_nifti_complete(path)
    if image.GetSize()[2] < 2:
        raise NotVolumeError(
            f"{path}: a single slice ({image.GetSize()[0]}x{image.GetSize()[1]}); a 3D volume "
            "is needed", path)
    meta = {"source": str(path), "format": fmt.lower(), "series_description": "", "warnings": []}
    return Scan.from_sitk(image, modality=_modality_from_keys(reader), metadata=meta)


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if "itk::ERROR" in ln or "Description" in ln] or lines
    return useful[-1] if useful else type(exc).__name__
