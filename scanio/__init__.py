"""scanio: read and write 3D scans (DICOM, NIfTI, NRRD, MetaImage) with exact geometry.

Knows nothing of torch or napari. See `Scan` for the axis and world conventions.

    scan = read_scan("ct_folder/")                      # DICOM series -> Scan, CT in HU
    labels = resample_like(read_scan("labels.nii.gz"), like=scan)   # through world space
    write_labels("out.dcm", labels.array, like=scan)    # DICOM SEG (or .nii.gz/.nrrd/.mha)
"""

from scanio.errors import (
    CorruptFileError,
    EmptyFolderError,
    IrregularGeometryError,
    LabelsError,
    MixedSeriesError,
    MultipleSeriesError,
    NotAScanError,
    NotVolumeError,
    OutputExistsError,
    ReadCancelledError,
    ScanIOError,
    ScanNotFoundError,
    SeriesNotFoundError,
    UnknownFormatError,
    UnsupportedOutputError,
    ScanTooLargeError,
    BadHeaderError,
    UnsafeDataFileError,
)
from scanio.dicom import list_series
from scanio.read import read_scan
from scanio.resample import resample_like
from scanio.scan import DicomSource, Scan, SeriesInfo
from scanio.write import write_labels

__all__ = [
    "Scan", "SeriesInfo", "DicomSource",
    "read_scan", "list_series", "write_labels", "resample_like",
    "ScanIOError", "ScanNotFoundError", "UnknownFormatError", "NotAScanError",
    "EmptyFolderError", "CorruptFileError", "NotVolumeError", "MixedSeriesError",
    "MultipleSeriesError", "SeriesNotFoundError", "IrregularGeometryError", "LabelsError",
    "OutputExistsError", "UnsupportedOutputError", "ReadCancelledError",
    "ScanTooLargeError", "BadHeaderError", "UnsafeDataFileError",
]
