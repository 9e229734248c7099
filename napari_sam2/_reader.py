"""npe2 reader: DICOM (folder or file), NIfTI, NRRD and MHA scans as layers in physical units."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from napari_sam2.layers import scan_layer_data

PathLike = Union[str, os.PathLike]

SCAN_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm", ".ima")
_DICOM_PREAMBLE = 128  # bytes before the "DICM" magic in a DICOM Part 10 file
_FILES_TO_SNIFF = 8  # enough to recognise a DICOM folder without listing it all


def _has_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(_DICOM_PREAMBLE)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _is_dicom_folder(folder: Path) -> bool:
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError:
        return False
    for entry in entries[:_FILES_TO_SNIFF]:
        if entry.suffix.lower() in (".dcm", ".ima") or _has_dicom_magic(entry):
            return True
    return False


def can_read(path: PathLike) -> bool:
    """Cheap check (no decoding) that `path` is something scanio reads."""
    path = Path(path)
    if path.is_dir():
        return _is_dicom_folder(path)
    name = path.name.lower()
    if name.endswith(SCAN_SUFFIXES):
        return True
    return path.is_file() and _has_dicom_magic(path)


def get_reader(path: Union[PathLike, Sequence[PathLike]]) -> Optional[Callable[..., list]]:
    """npe2 reader hook: a reader function for one scan path, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    if not can_read(path):
        return None
    return read_scan_layers


def read_scan_layers(path: Union[PathLike, Sequence[PathLike]], **_: Any) -> list:
    """Read one scan; a file scanio cannot read gives a notification and no layer; read warnings are shown."""
    from napari.utils.notifications import show_error, show_warning

    import scanio

    if isinstance(path, (list, tuple)):
        path = path[0]
    try:
        scan = scanio.read_scan(path)
    except scanio.ScanIOError as exc:
        show_error(f"napari-sam2 could not open {path}: {exc}")
        return [(None,)]
    except (OSError, RuntimeError, ValueError) as exc:  # anything SimpleITK/pydicom let through
        show_error(f"napari-sam2 could not open {path}: {type(exc).__name__}: {exc}")
        return [(None,)]
    for message in dict.fromkeys(scan.metadata.get("warnings", [])):  # how the scan was read (resampled, sform used…)
        show_warning(f"napari-sam2: {message}")
    return [scan_layer_data(scan, name=_layer_name(Path(path)))]


def _layer_name(path: Path) -> str:
    name = path.name
    for suffix in SCAN_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name
