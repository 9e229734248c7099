"""Bundled sample scans (see sample_data/totalseg_ct/README.md for source and licence)."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def sample_ct_path() -> Path:
    """The bundled CT: a folder holding one 20-slice DICOM series (TotalSegmentator test data)."""
    return _HERE / "totalseg_ct" / "example_ct_dicom"


def sample_labels_path() -> Path:
    """Reference organ labels for the sample CT (NIfTI; resample them onto the CT's grid)."""
    return _HERE / "totalseg_ct" / "example_seg_dicom.nii.gz"
