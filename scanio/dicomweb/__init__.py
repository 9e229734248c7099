"""scanio.dicomweb: a PACS round trip over DICOMweb (QIDO-RS list, WADO-RS fetch, STOW-RS store).

    scan = read_series("dicomweb://pacs.example.org/dicom-web?series=1.2.3")  # cached, resumable
    write_labels("seg.dcm", labels, like=scan)            # a SEG referencing the source series
    store_seg("seg.dcm", remote_origin(scan))             # back to the same archive

    server = DicomWebServer("https://pacs.example.org/dicom-web")
    server.search_studies(patient_id="P1", study_date="20240101-20241231", modality="CT")
    server.search_series(study_uid=..., modality="CT", description="abdomen")

Credentials come from the environment or a config file, never from the command line; TLS is
verified by default (see `scanio.dicomweb.config`). Needs `pip install napari-sam2[pacs]`.
"""

from scanio.dicomweb.cache import cache_root, seg_outbox, series_folder
from scanio.dicomweb.client import (
    DicomWebServer,
    FetchResult,
    RemoteSeries,
    RemoteStudy,
    StoreResult,
)
from scanio.dicomweb.config import (
    SeriesLocation,
    ServerConfig,
    default_server,
    is_dicomweb_url,
    load_server_config,
    parse_dicomweb_url,
    series_location,
)
from scanio.dicomweb.errors import (
    AuthenticationError,
    DicomWebError,
    DicomWebServerError,
    DicomWebURLError,
    FetchCancelledError,
    InvalidInstanceError,
    NotAVolumeSeriesError,
    RemoteSeriesNotFoundError,
    ServerUnreachableError,
    StoreFailedError,
)
from scanio.dicomweb.remote import (
    REMOTE_KEY,
    fetch,
    read_fetched,
    read_series,
    remote_origin,
    store_seg,
)

__all__ = [
    "DicomWebServer", "RemoteStudy", "RemoteSeries", "FetchResult", "StoreResult",
    "SeriesLocation", "ServerConfig", "parse_dicomweb_url", "series_location", "is_dicomweb_url",
    "load_server_config", "default_server", "cache_root", "series_folder", "seg_outbox",
    "read_series", "read_fetched", "fetch", "store_seg", "remote_origin", "REMOTE_KEY",
    "DicomWebError", "DicomWebURLError", "ServerUnreachableError", "AuthenticationError",
    "RemoteSeriesNotFoundError", "NotAVolumeSeriesError", "InvalidInstanceError",
    "StoreFailedError", "FetchCancelledError", "DicomWebServerError",
]
