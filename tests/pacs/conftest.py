"""Fixtures for the PACS tests: one real Orthanc per session, holding the bundled sample CT.

Orthanc runs from the Debian packages `orthanc` and `orthanc-dicomweb` (scripts/install.sh
installs them); without them every PACS test is skipped with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pacs import orthanc

SAMPLE_PATIENT = "NAPARI-SAM2-SAMPLE"


def _skip_reason() -> str:
    try:
        import dicomweb_client  # noqa: F401
    except ImportError:
        return "dicomweb-client is not installed (pip install -e '.[pacs]', or bash scripts/install.sh)"
    if orthanc.orthanc_binary() is None:
        return "the Orthanc binary is not installed (apt-get install orthanc orthanc-dicomweb, or bash scripts/install.sh)"
    if orthanc.dicomweb_plugin() is None:
        return (f"Orthanc's DICOMweb plugin ({orthanc.PLUGIN_NAME}) is not installed under "
                f"{', '.join(orthanc.PLUGIN_DIRS)} (apt-get install orthanc-dicomweb)")
    return ""


def archive_copy(source: Path, dest: Path, patient_id: str) -> Path:
    """The sample series as an archive holds it: the UIDs that anonymisation removed filled in.

    Study and series UIDs are derived from `patient_id`, so two copies are two studies.
    """
    import pydicom
    from pydicom.uid import generate_uid

    dest.mkdir(parents=True, exist_ok=True)
    study = generate_uid(entropy_srcs=["study", patient_id])
    series = generate_uid(entropy_srcs=["series", patient_id])
    for path in sorted(p for p in source.iterdir() if p.is_file()):
        ds = pydicom.dcmread(path)
        sop = str(ds.file_meta.MediaStorageSOPInstanceUID)
        if patient_id != SAMPLE_PATIENT:
            sop = generate_uid(entropy_srcs=[sop, patient_id])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID = patient_id
        ds.StudyID, ds.AccessionNumber = "1", ""
        ds.save_as(dest / f"{sop}.dcm", enforce_file_format=True)
    return dest


class Archive:
    """The running Orthanc and what the tests uploaded to it."""

    def __init__(self, server: orthanc.OrthancServer, sample: Path, rejecting: Path):
        import pydicom

        self.server = server
        self.url = server.dicomweb_url
        self.sample_folder = sample  # local copy identical to what the archive holds
        first = pydicom.dcmread(next(sample.iterdir()), stop_before_pixels=True)
        self.study_uid, self.series_uid = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
        self.frame_of_reference_uid = str(first.FrameOfReferenceUID)
        second = pydicom.dcmread(next(rejecting.iterdir()), stop_before_pixels=True)
        self.rejecting_folder = rejecting
        self.rejecting_series_uid = str(second.SeriesInstanceUID)  # its SEGs are refused

    def series_url(self, series_uid: str | None = None) -> str:
        return self.server.dicomweb_series_url(series_uid or self.series_uid)


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Archive:
    """A real Orthanc on 127.0.0.1 (auth on, no remote access) holding the sample CT twice."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from sample_data import sample_ct_path

    root = tmp_path_factory.mktemp("orthanc")
    sample = archive_copy(sample_ct_path(), root / "sample", SAMPLE_PATIENT)
    rejecting = archive_copy(sample_ct_path(), root / "rejecting", orthanc.REJECTING_PATIENT)
    server = orthanc.start_orthanc(root / "server")
    try:
        server.upload_folder(sample)
        server.upload_folder(rejecting)
        yield Archive(server, sample, rejecting)
    finally:
        server.stop()


@pytest.fixture
def credentials(monkeypatch, tmp_path):
    """The right user and password in the environment, and a private cache and config path."""
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_USER", orthanc.USER)
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_PASSWORD", orthanc.PASSWORD)
    monkeypatch.delenv("NAPARI_SAM2_DICOMWEB_TOKEN", raising=False)
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_CONFIG", str(tmp_path / "no-config.json"))
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
