"""`DicomWebServer`: QIDO-RS search, WADO-RS fetch into the cache, STOW-RS store, typed errors.

Built on `dicomweb-client` (HTTP and multipart handling); this module adds authentication
from the environment or config file (`scanio.dicomweb.config`), the resumable validated cache
(`scanio.dicomweb.cache`, `scanio.dicomweb.validate`) and errors that name the server and say
what to do.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from scanio.dicomweb import cache
from scanio.dicomweb.config import ServerConfig, check_uid, load_server_config
from scanio.dicomweb.errors import (
    AuthenticationError,
    DicomWebError,
    DicomWebServerError,
    FetchCancelledError,
    InvalidInstanceError,
    NotAVolumeSeriesError,
    RemoteSeriesNotFoundError,
    ServerUnreachableError,
    StoreFailedError,
)
from scanio.dicomweb.validate import describe_non_volume, is_image_sop_class, validate_instance

Progress = Optional[Callable[[int, int], None]]
# Instances as stored: no transcoding on the server (many cannot); pydicom decodes them here.
ANY_TRANSFER_SYNTAX = (("application/dicom", "*"),)
_STUDY_FIELDS = ("StudyInstanceUID", "PatientID", "StudyDate", "StudyDescription",
                 "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "AccessionNumber")
_SERIES_FIELDS = ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesDescription",
                  "SeriesNumber", "NumberOfSeriesRelatedInstances", "PatientID", "StudyDate",
                  "StudyDescription")


def _json_value(item: dict, keyword: str, default: Any = "") -> Any:
    """First value of `keyword` in a DICOM JSON result (PN as its alphabetic form)."""
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    element = item.get(f"{tag:08X}", {}) if tag is not None else {}
    values = element.get("Value") or []
    if not values:
        return default
    value = values[0]
    return value.get("Alphabetic", default) if isinstance(value, dict) else value


def _json_values(item: dict, keyword: str) -> tuple:
    from pydicom.datadict import tag_for_keyword

    return tuple(str(v) for v in item.get(f"{tag_for_keyword(keyword):08X}", {}).get("Value") or [])


def _as_int(value: Any) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RemoteStudy:
    """One study as a QIDO-RS search lists it."""

    study_uid: str
    patient_id: str
    study_date: str
    description: str
    modalities: tuple[str, ...]
    num_series: Optional[int]


@dataclass(frozen=True)
class RemoteSeries:
    """One series as a QIDO-RS search lists it."""

    study_uid: str
    series_uid: str
    modality: str
    description: str
    series_number: Optional[int]
    num_instances: Optional[int]
    patient_id: str = ""
    study_date: str = ""
    study_description: str = ""

    def __str__(self) -> str:
        count = "?" if self.num_instances is None else self.num_instances
        return f"{self.series_uid}  {self.modality}  '{self.description}'  ({count} instances)"


@dataclass(frozen=True)
class FetchResult:
    """A fetched series: its cache `folder`, and how many instances came now / were cached."""

    folder: Path
    series: RemoteSeries
    fetched: int
    cached: int
    removed: int = 0
    server: str = ""


@dataclass(frozen=True)
class StoreResult:
    """A stored instance: its SOP Instance UID and the server's retrieve URL for it (if given)."""

    sop_uid: str
    series_uid: str
    study_uid: str
    retrieve_url: str = ""


def _server_pattern(text: Optional[str]) -> Optional[str]:
    """A description filter the server applies: only an explicit wildcard pattern (`*liver*`)."""
    return text if text and ("*" in text or "?" in text) else None


def _contains(text: Optional[str], value: str) -> bool:
    """Plain description filters match here, case-insensitively, anywhere in the description
    (QIDO matching of such attributes is case-sensitive and whole-value)."""
    if not text or "*" in text or "?" in text:
        return True
    return text.casefold() in str(value).casefold()


def _warn_if_credentials_in_clear(config: ServerConfig) -> None:
    """Credentials over plain HTTP are readable on the network: allowed on this machine only."""
    import warnings
    from urllib.parse import urlsplit

    host = urlsplit(config.base_url).hostname or ""
    local = host in ("localhost", "::1") or host.startswith("127.")
    if (config.token or config.username) and config.base_url.startswith("http://") and not local:
        warnings.warn(f"sending credentials to {config.base_url} without TLS: anyone on the network "
                      "can read them; use https:// (dicomweb://)", stacklevel=4)


class DicomWebServer:
    """One DICOMweb server (`base_url`: http(s)://host[:port]/path, the service root)."""

    def __init__(self, server: Union[str, ServerConfig], *, timeout_s: float = 60.0):
        self.config = server if isinstance(server, ServerConfig) else load_server_config(server, timeout_s)
        self.base_url = self.config.base_url
        self._client = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DicomWebServer({self.config!r})"

    # --- HTTP -----------------------------------------------------------------------------
    @property
    def client(self):
        """The `dicomweb_client.DICOMwebClient`, with this server's authentication and TLS."""
        with self._lock:
            if self._client is None:
                import requests
                from dicomweb_client.api import DICOMwebClient

                session = requests.Session()
                session.verify = self.config.verify_tls
                session.trust_env = True
                if self.config.token:
                    session.headers["Authorization"] = f"Bearer {self.config.token}"
                elif self.config.username:
                    session.auth = (self.config.username, self.config.password or "")
                _warn_if_credentials_in_clear(self.config)
                self._client = DICOMwebClient(self.base_url, session=session,
                                              timeout=(10.0, self.config.timeout_s))
                self._client.set_http_retry_params(retry=False)
            return self._client

    @contextlib.contextmanager
    def _errors(self, action: str, *, not_found: Optional[str] = None) -> Iterator[None]:
        """Turn `requests` failures into typed errors naming the server and what to do."""
        import requests

        server = self.base_url
        try:
            yield
        except DicomWebError:
            raise
        except requests.exceptions.SSLError as exc:
            raise ServerUnreachableError(
                f"the TLS certificate of {server} cannot be verified while {action} ({exc}); if "
                "the archive uses a private certificate authority, set "
                "NAPARI_SAM2_DICOMWEB_CA_BUNDLE or 'ca_bundle' in the config file", server) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            kind = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "connection failed"
            raise ServerUnreachableError(
                f"cannot reach the DICOMweb server {server} while {action} ({kind}): check the "
                "URL (host, port and service path), that the archive is running and that your "
                "network or VPN reaches it", server) from None
        except requests.exceptions.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status == 401:
                raise AuthenticationError(
                    f"{server} refused the credentials while {action} (HTTP 401): "
                    + self.config.how_to_log_in(), server, status) from None
            if status == 403:
                raise AuthenticationError(
                    f"{server} refused access while {action} (HTTP 403): your account may not "
                    "read or store here; ask the archive's administrator", server, status) from None
            if status == 404 and not_found:
                raise RemoteSeriesNotFoundError(not_found, server) from None
            raise DicomWebServerError(
                f"{server} answered HTTP {status} while {action}: check the service path of the "
                "URL (e.g. /dicom-web) or try again later", server) from None
        except requests.exceptions.RequestException as exc:
            raise ServerUnreachableError(
                f"request to {server} failed while {action}: {exc}", server) from None

    # --- QIDO-RS --------------------------------------------------------------------------
    def search_studies(self, patient_id: Optional[str] = None, study_date: Optional[str] = None,
                       modality: Optional[str] = None, description: Optional[str] = None,
                       limit: int = 200) -> list[RemoteStudy]:
        """Studies matching the filters (`study_date`: `YYYYMMDD` or a range `YYYYMMDD-YYYYMMDD`)."""
        filters = {k: v for k, v in {
            "PatientID": patient_id or None, "StudyDate": study_date or None,
            "ModalitiesInStudy": modality or None, "StudyDescription": _server_pattern(description),
        }.items() if v}
        with self._errors("searching studies"):
            found = self.client.search_for_studies(search_filters=filters, fields=_STUDY_FIELDS,
                                                   limit=limit)
        return [RemoteStudy(
            study_uid=str(_json_value(s, "StudyInstanceUID")),
            patient_id=str(_json_value(s, "PatientID")),
            study_date=str(_json_value(s, "StudyDate")),
            description=str(_json_value(s, "StudyDescription")),
            modalities=_json_values(s, "ModalitiesInStudy"),
            num_series=_as_int(_json_value(s, "NumberOfStudyRelatedSeries", None)),
        ) for s in found if _contains(description, _json_value(s, "StudyDescription"))]

    def search_series(self, study_uid: Optional[str] = None, modality: Optional[str] = None,
                      description: Optional[str] = None, series_uid: Optional[str] = None,
                      patient_id: Optional[str] = None, study_date: Optional[str] = None,
                      limit: int = 500) -> list[RemoteSeries]:
        """Series matching the filters, within one study or across the archive."""
        filters = {k: v for k, v in {
            "Modality": modality or None, "SeriesDescription": _server_pattern(description),
            "SeriesInstanceUID": series_uid or None, "PatientID": patient_id or None,
            "StudyDate": study_date or None,
        }.items() if v}
        if study_uid:
            check_uid(study_uid, "study", self.base_url)
        with self._errors("searching series"):
            found = self.client.search_for_series(study_instance_uid=study_uid or None,
                                                  search_filters=filters, fields=_SERIES_FIELDS,
                                                  limit=limit)
        return [RemoteSeries(
            study_uid=str(_json_value(s, "StudyInstanceUID", study_uid or "")),
            series_uid=str(_json_value(s, "SeriesInstanceUID")),
            modality=str(_json_value(s, "Modality")),
            description=str(_json_value(s, "SeriesDescription")),
            series_number=_as_int(_json_value(s, "SeriesNumber", None)),
            num_instances=_as_int(_json_value(s, "NumberOfSeriesRelatedInstances", None)),
            patient_id=str(_json_value(s, "PatientID")),
            study_date=str(_json_value(s, "StudyDate")),
            study_description=str(_json_value(s, "StudyDescription")),
        ) for s in found if _contains(description, _json_value(s, "SeriesDescription"))]

    def find_series(self, series_uid: str, study_uid: Optional[str] = None) -> RemoteSeries:
        """The series with this UID, or `RemoteSeriesNotFoundError` saying how to list series."""
        check_uid(series_uid, "series", self.base_url)
        matches = [s for s in self.search_series(study_uid=study_uid, series_uid=series_uid)
                   if s.series_uid == series_uid]
        if not matches:
            within = f" in study {study_uid}" if study_uid else ""
            raise RemoteSeriesNotFoundError(
                f"{self.base_url} has no series {series_uid}{within}: check the UID, or list the "
                "archive's series (napari: Open from PACS…; Python: "
                "scanio.dicomweb.DicomWebServer(url).search_series())", self.base_url)
        return matches[0]

    def list_instances(self, series: RemoteSeries) -> dict[str, str]:
        """SOP Instance UID -> SOP Class UID of every instance of `series`."""
        with self._errors(f"listing the instances of series {series.series_uid}",
                          not_found=f"{self.base_url} has no series {series.series_uid}"):
            found = self.client.search_for_instances(
                study_instance_uid=series.study_uid, series_instance_uid=series.series_uid,
                fields=("SOPInstanceUID", "SOPClassUID"), get_remaining=True)
        listing = {}
        for item in found:
            sop = str(_json_value(item, "SOPInstanceUID"))
            listing[check_uid(sop, "SOP Instance UID", self.base_url)] = str(
                _json_value(item, "SOPClassUID"))
        return listing

    # --- WADO-RS --------------------------------------------------------------------------
    def check_volume(self, series: RemoteSeries, instances: Optional[dict[str, str]] = None) -> None:
        """`NotAVolumeSeriesError` when `series` cannot be a scan (SEG, report, no images)."""
        what = describe_non_volume(series.modality)
        if what:
            raise NotAVolumeSeriesError(
                f"series {series.series_uid} on {self.base_url} is {what} (modality "
                f"{series.modality}), not an image volume: choose the CT/MR series it belongs to",
                self.base_url)
        if instances is not None:
            classes = set(instances.values())
            if not instances or (classes and all(c and not is_image_sop_class(c) for c in classes)):
                raise NotAVolumeSeriesError(
                    f"series {series.series_uid} on {self.base_url} holds no image instances "
                    f"({len(instances)} instance(s)): choose a CT or MR series", self.base_url)

    def fetch_series(self, series_uid: str, study_uid: Optional[str] = None, *,
                     cache_dir: Union[str, Path, None] = None, progress: Progress = None,
                     cancel: Optional[threading.Event] = None) -> FetchResult:
        """Fetch a series into `<cache>/<series_uid>/`, only the instances not there yet.

        Each instance is validated (`scanio.dicomweb.validate`) before it is written.
        `progress(done, total)` counts instances; setting `cancel` stops between instances
        with `FetchCancelledError` (what arrived stays for the next fetch).
        """
        series = self.find_series(series_uid, study_uid)
        self.check_volume(series)
        instances = self.list_instances(series)
        self.check_volume(series, instances)
        folder = cache.series_folder(series.series_uid, cache_dir)
        with cache.lock_for(folder):
            removed = cache.remove_stale(folder, set(instances))
            present = cache.cached_instances(folder) & set(instances)
            missing = [uid for uid in instances if uid not in present]
            total, done = len(instances), len(present)
            if progress is not None:
                progress(done, total)
            for ds, sop in self._retrieve(series, missing, streamed=not present, cancel=cancel):
                validate_instance(ds, server=self.base_url, study_uid=series.study_uid,
                                  series_uid=series.series_uid, sop_uid=sop)
                cache.write_instance(folder, sop, ds)
                done += 1
                if progress is not None:
                    progress(done, total)
        return FetchResult(folder, series, fetched=len(missing), cached=len(present), removed=removed,
                           server=self.base_url)

    def _retrieve(self, series: RemoteSeries, missing: list[str], *, streamed: bool,
                  cancel: Optional[threading.Event]) -> Iterator[tuple[Any, str]]:
        """`(dataset, sop_uid)` for each missing instance: one streamed series request when
        nothing is cached yet, else one request per missing instance."""
        from pydicom.errors import InvalidDicomError

        wanted = set(missing)
        action = f"fetching series {series.series_uid}"
        gone = f"{self.base_url} has no series {series.series_uid} (any more)"

        def cancelled() -> None:
            if cancel is not None and cancel.is_set():
                raise FetchCancelledError(
                    f"fetch of series {series.series_uid} from {self.base_url} cancelled; the "
                    "instances that arrived stay in the cache and are not fetched again",
                    self.base_url)

        try:
            if streamed and missing:
                with self._errors(action, not_found=gone):
                    stream = self.client.iter_series(series.study_uid, series.series_uid,
                                                     media_types=ANY_TRANSFER_SYNTAX)
                    for ds in stream:
                        cancelled()
                        sop = str(ds.get("SOPInstanceUID", "") or "")
                        if sop in wanted:
                            wanted.discard(sop)
                            yield ds, sop
                        elif sop:  # an instance the listing did not have: still check it
                            validate_instance(ds, server=self.base_url, study_uid=series.study_uid,
                                              series_uid=series.series_uid)
            for sop in [m for m in missing if m in wanted]:
                cancelled()
                with self._errors(action, not_found=gone):
                    ds = self.client.retrieve_instance(series.study_uid, series.series_uid, sop,
                                                       media_types=ANY_TRANSFER_SYNTAX)
                yield ds, sop
        except (InvalidDicomError, ValueError, EOFError) as exc:
            if isinstance(exc, DicomWebError):
                raise
            raise InvalidInstanceError(
                f"{self.base_url} sent data for series {series.series_uid} that is not DICOM "
                f"({type(exc).__name__}: {exc}); nothing invalid was kept: fetch again, or tell "
                "the archive's administrator", self.base_url) from None

    # --- STOW-RS --------------------------------------------------------------------------
    def store(self, path: Union[str, Path], *, verify: bool = True) -> StoreResult:
        """Store the DICOM file at `path` (a SEG) with STOW-RS; `verify`: then ask for it by
        QIDO-RS to be sure the archive kept it. `StoreFailedError` says why, the file stays."""
        import pydicom

        path = Path(path)
        server = self.base_url
        kept = f"the file stays at {path}; send it again later (napari: Send SEG to PACS)"
        try:
            ds = pydicom.dcmread(str(path))
        except Exception as exc:
            raise StoreFailedError(f"cannot store {path} on {server}: not a readable DICOM file "
                                   f"({exc})", server, path) from None
        try:
            with self._errors(f"storing {path.name}"):
                response = self.client.store_instances([ds])
        except AuthenticationError as exc:
            raise StoreFailedError(f"{exc}; {kept}", server, path) from None
        except DicomWebError as exc:
            raise StoreFailedError(f"storing {path.name} on {server} failed: {exc}; {kept}",
                                   server, path) from None
        failed = response.get("FailedSOPSequence") if response is not None else None
        if failed:
            reasons = ", ".join(f"0x{int(item.get('FailureReason', 0)):04X}" for item in failed)
            raise StoreFailedError(
                f"{server} rejected {path.name} (failure reason {reasons}): the archive may not "
                f"accept SEG objects or this study; ask its administrator; {kept}", server, path)
        url = ""
        for item in (response.get("ReferencedSOPSequence") or []) if response is not None else []:
            if str(item.get("ReferencedSOPInstanceUID", "")) == str(ds.SOPInstanceUID):
                url = str(item.get("RetrieveURL", "") or "")
        result = StoreResult(str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID),
                             str(ds.StudyInstanceUID), url)
        if verify:
            self._check_stored(result, path, kept)
        return result

    def _check_stored(self, result: StoreResult, path: Path, kept: str) -> None:
        """Ask the archive for the instance it just accepted: some (Orthanc with an instance
        filter, for one) answer success to STOW-RS and then drop the object."""
        try:
            with self._errors(f"checking that {path.name} was stored"):
                found = self.client.search_for_instances(
                    study_instance_uid=result.study_uid, series_instance_uid=result.series_uid,
                    search_filters={"SOPInstanceUID": result.sop_uid}, fields=("SOPInstanceUID",))
        except DicomWebError as exc:
            raise StoreFailedError(f"{path.name} was sent to {self.base_url} but checking that it "
                                   f"arrived failed: {exc}; {kept}", self.base_url, path) from None
        if not any(str(_json_value(i, "SOPInstanceUID")) == result.sop_uid for i in found):
            raise StoreFailedError(
                f"{self.base_url} accepted {path.name} but does not hold it afterwards (the "
                "archive's rules dropped it: it may refuse SEG objects or this patient); ask its "
                f"administrator; {kept}", self.base_url, path)
