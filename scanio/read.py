"""`read_scan`: one entry point for DICOM folders/files, NIfTI, NRRD and MetaImage."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from scanio.errors import (
    BadHeaderError,
    CorruptFileError,
    NotAScanError,
    NotVolumeError,
    ScanNotFoundError,
    UnknownFormatError,
)
from scanio.header_info import check_direction, check_origin, check_spacing
from scanio.limits import check_data_present, check_regular_file, check_size
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
    check_regular_file(path, "scan")  # a FIFO, socket or device would block or never end
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


def validate_image_header(path: Path, fmt: str):
    """Our own header check of a NIfTI / NRRD / MetaImage file (`HeaderInfo`), before ITK sees it."""
    from scanio.metaio_header import validate_metaio
    from scanio.nifti_header import validate_nifti
    from scanio.nrrd_header import validate_nrrd

    return {"NIfTI": validate_nifti, "NRRD": validate_nrrd, "MetaImage": validate_metaio}[fmt](path)


def check_data_present_for(info) -> None:
    """`CorruptFileError` unless the data file holds every voxel byte the header claims."""
    if info.fmt == "NIfTI" and info.compression == "gzip":  # vox_offset counts in the gzip stream
        check_data_present(info.data_path, 0, info.data_offset + info.data_bytes, "gzip")
    elif info.compression == "text":
        have = max(0, info.data_path.stat().st_size - info.data_offset)
        if have < info.min_text_bytes:
            raise CorruptFileError(
                f"{info.data_path}: truncated: the header needs at least {info.min_text_bytes:,} "
                f"characters of voxel text, the file holds {have:,}", info.data_path)
    elif info.compression in ("gzip", "bzip2"):
        check_data_present(info.data_path, info.data_offset, info.skip_bytes + info.data_bytes,
                           info.compression)
    else:
        offset = max(info.data_offset, 0)
        check_data_present(info.data_path, offset, info.data_bytes, "raw")


def _check_itk_geometry(path: Path, image) -> None:
    """ITK quietly turns NaN/0 spacing into 1: refuse any geometry that is not finite and regular."""
    spacing = image.GetSpacing()[:3]
    origin = image.GetOrigin()[:3]
    n = image.GetDimension()
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(n, n)[:3, :3]
    check_spacing(path, spacing)
    check_origin(path, origin)
    check_direction(path, direction)


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

    check_regular_file(path, "scan")
    info = validate_image_header(path, fmt)
    check_size(path, info.sizes + ((info.components,) if info.components > 1 else ()), info.itemsize)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise CorruptFileError(f"{path}: damaged {fmt} header: {_first_line(exc)}", path) from exc
    dim = reader.GetDimension()
    size = reader.GetSize()
    claimed = int(np.prod(size, dtype=np.int64)) * reader.GetNumberOfComponents()
    if claimed != info.num_voxels:
        raise BadHeaderError(
            f"{path}: ITK reads the header as {size} x {reader.GetNumberOfComponents()} component(s), "
            f"our check as {info.sizes}; the header is ambiguous or damaged: re-export the scan", path)
    check_data_present_for(info)
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
    _check_itk_geometry(path, image)
    if fmt == "NIfTI":
        from scanio.nifti_header import compare_forms

        compare_forms(path, image, info)
    if image.GetSize()[2] < 2:
        raise NotVolumeError(
            f"{path}: a single slice ({image.GetSize()[0]}x{image.GetSize()[1]}); a 3D volume "
            "is needed", path)
    meta = {"source": str(path), "format": fmt.lower(), "series_description": "",
            "warnings": list(info.warnings)}
    return Scan.from_sitk(image, modality=_modality_from_keys(reader), metadata=meta)


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if "itk::ERROR" in ln or "Description" in ln] or lines
    return useful[-1] if useful else type(exc).__name__
