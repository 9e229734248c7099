"""Typed errors of scanio: every message names the file and says what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

PathLike = Union[str, Path]


class ScanIOError(Exception):
    """Base of every scanio error; `path` is the file or folder concerned."""

    def __init__(self, message: str, path: PathLike | None = None):
        self.path = Path(path) if path is not None else None
        super().__init__(message)


class ScanNotFoundError(ScanIOError, FileNotFoundError):
    """The path does not exist."""


class UnknownFormatError(ScanIOError):
    """The file's extension is not a format scanio reads or writes."""


class NotAScanError(ScanIOError):
    """The file exists but holds no image scanio can read (wrong content, DICOM without pixels)."""


class EmptyFolderError(ScanIOError):
    """A folder with no files in it."""


class CorruptFileError(ScanIOError):
    """The file is of a known format but truncated or damaged."""


class NotVolumeError(ScanIOError):
    """A 2D image (one slice) where a 3D volume is needed."""


class MixedSeriesError(ScanIOError):
    """Slices that cannot form one volume (different sizes, orientations or duplicate positions)."""


class MultipleSeriesError(MixedSeriesError):
    """A folder holding several DICOM series: choose one with `series_uid=`; `series` lists them."""

    def __init__(self, message: str, path: PathLike | None = None, series: Sequence = ()):
        self.series = list(series)
        super().__init__(message, path)


class SeriesNotFoundError(ScanIOError):
    """The requested `series_uid` is not in the folder."""


class IrregularGeometryError(ScanIOError):
    """Non-uniform slice spacing, missing slices or gantry tilt, when `irregular="error"`."""


class LabelsError(ScanIOError):
    """Labels that cannot be written: wrong shape, dtype or values."""


class OutputExistsError(ScanIOError, FileExistsError):
    """The output file exists and `overwrite=False`."""


class UnsupportedOutputError(ScanIOError):
    """The requested output cannot be made (e.g. DICOM SEG for a scan not read from DICOM)."""


class ReadCancelledError(ScanIOError):
    """Reading was cancelled through the `cancel` event."""


class ScanTooLargeError(ScanIOError):
    """The header claims more voxels than the size cap allows (`NAPARI_SAM2_MAX_VOXELS` raises it)."""


class BadHeaderError(CorruptFileError):
    """A header value that is impossible or unsafe: sizes, dtype, non-finite or zero spacing,
    non-finite origin, singular direction, data offset beyond the file."""


class UnsafeDataFileError(NotAScanError):
    """A detached data file (NRRD `data file`, MetaImage `ElementDataFile`) outside the header's
    folder, absolute, reached through `..`, or not a regular file: refused, never read."""
