"""Typed errors of the DICOMweb client: each names the server and says what to do."""

from __future__ import annotations

from scanio.errors import (
    CorruptFileError,
    NotVolumeError,
    ReadCancelledError,
    ScanIOError,
    SeriesNotFoundError,
)


class DicomWebError(ScanIOError):
    """Base of every DICOMweb error; `server` is the base URL concerned."""

    def __init__(self, message: str, server: str = "", path=None):
        self.server = server
        super().__init__(message, path)


class DicomWebURLError(DicomWebError, ValueError):
    """A `dicomweb://` URL or `--server`/`--series` pair that cannot be used."""


class ServerUnreachableError(DicomWebError):
    """No answer from the server: connection refused, unknown host, timeout, TLS failure."""


class AuthenticationError(DicomWebError):
    """The server refused the credentials (HTTP 401) or the access (HTTP 403)."""

    def __init__(self, message: str, server: str = "", status: int = 401):
        self.status = status
        super().__init__(message, server)


class RemoteSeriesNotFoundError(DicomWebError, SeriesNotFoundError):
    """The server has no series (or study) with the requested UID."""


class NotAVolumeSeriesError(DicomWebError, NotVolumeError):
    """The series is not an image volume (a SEG, a structured report, a single 2D image...)."""


class InvalidInstanceError(DicomWebError, CorruptFileError):
    """An instance the server sent fails validation (wrong UIDs, no or inconsistent pixels)."""


class StoreFailedError(DicomWebError):
    """STOW-RS did not store the SEG; `path` is the SEG file, which stays on disk."""


class FetchCancelledError(DicomWebError, ReadCancelledError):
    """A fetch was cancelled through its `cancel` event (what arrived stays in the cache)."""


class DicomWebServerError(DicomWebError):
    """Any other HTTP failure (5xx, unexpected answer)."""


class DicomWebCacheError(DicomWebError, ValueError):
    """A cache operation refused: the folder is not a napari-sam2 DICOMweb download cache."""
