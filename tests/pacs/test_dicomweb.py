"""scanio.dicomweb against a real Orthanc: list, fetch (resumable, validated), segment, store, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import scanio
from scanio import dicomweb
from tests.pacs import orthanc
from tests.pacs.conftest import SAMPLE_PATIENT
from tests.pacs.fake_segmenter import paint_boxes

pytest.importorskip("dicomweb_client", reason="needs dicomweb-client: pip install -e '.[pacs]'")

pytestmark = pytest.mark.slow  # each test talks to the Orthanc process


def segment_fast(scan) -> np.ndarray:
    """Two objects, painted fast (tests.pacs.fake_segmenter): the round trip is under test."""
    return paint_boxes(scan.array, {1: (10, 196, 107, 374, 269), 2: (8, 250, 300, 330, 380)})


def download_seg(server: dicomweb.DicomWebServer, stored: dicomweb.StoreResult, folder):
    """The stored SEG as the archive gives it back (WADO-RS), saved to a file."""
    ds = server.client.retrieve_instance(stored.study_uid, stored.series_uid, stored.sop_uid)
    path = folder / "from_archive.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_search_studies_by_patient_date_and_modality(archive, credentials):
    server = dicomweb.DicomWebServer(archive.url)
    studies = server.search_studies(patient_id=SAMPLE_PATIENT, study_date="20220101-20221231",
                                    modality="CT")
    assert [s.study_uid for s in studies] == [archive.study_uid]
    assert studies[0].study_date == "20221208" and "CT" in studies[0].modalities
    assert server.search_studies(patient_id=SAMPLE_PATIENT, modality="MR") == []
    assert server.search_studies(patient_id=SAMPLE_PATIENT, study_date="20230101-") == []


def test_search_series_matches_description_anywhere_ignoring_case(archive, credentials):
    server = dicomweb.DicomWebServer(archive.url)
    found = server.search_series(study_uid=archive.study_uid, modality="CT", description="body 3")
    assert [(s.series_uid, s.num_instances, s.description) for s in found] == [
        (archive.series_uid, 20, "CT Body 3.0")]
    assert server.search_series(study_uid=archive.study_uid, description="thorax") == []


def test_fetch_caches_by_series_uid_and_reads_like_the_local_copy(archive, credentials):
    scan = dicomweb.read_series(archive.series_url())
    assert scan.metadata["source"] == str(credentials / archive.series_uid)
    assert len(list((credentials / archive.series_uid).glob("*.dcm"))) == 20
    local = scanio.read_scan(archive.sample_folder)
    assert scan.same_geometry(local) and np.array_equal(scan.array, local.array)
    assert dicomweb.remote_origin(scan) == dicomweb.SeriesLocation(
        archive.url, archive.series_uid, archive.study_uid)


def test_fetch_again_gets_only_the_missing_instances(archive, credentials):
    server = dicomweb.DicomWebServer(archive.url)
    first = server.fetch_series(archive.series_uid)
    files = sorted(first.folder.glob("*.dcm"))
    for path in files[:5]:
        path.unlink()
    kept = {p.name: p.stat().st_ino for p in files[5:]}
    again = server.fetch_series(archive.series_uid)
    assert (first.fetched, again.fetched, again.cached) == (20, 5, 15)
    assert {p.name: p.stat().st_ino for p in files[5:]} == kept  # untouched
    assert len(list(again.folder.glob("*.dcm"))) == 20


def test_cancelled_fetch_keeps_what_arrived_and_resumes(archive, credentials):
    server = dicomweb.DicomWebServer(archive.url)
    cancel = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        if done >= 7:
            cancel.set()

    with pytest.raises(dicomweb.FetchCancelledError, match="cancelled"):
        server.fetch_series(archive.series_uid, progress=progress, cancel=cancel)
    arrived = len(list((credentials / archive.series_uid).glob("*.dcm")))
    assert 7 <= arrived < 20
    result = server.fetch_series(archive.series_uid)
    assert (result.cached, result.fetched) == (arrived, 20 - arrived)


def test_round_trip_seg_matches_the_local_result(archive, credentials, tmp_path):
    import highdicom as hd

    scan = dicomweb.read_series(archive.series_url())
    labels = segment_fast(scan)
    assert set(np.unique(labels)) == {0, 1, 2}
    local = scanio.write_labels(tmp_path / "local.dcm", labels, like=scan)
    stored = dicomweb.store_seg(local, dicomweb.remote_origin(scan))

    server = dicomweb.DicomWebServer(archive.url)
    listed = server.search_series(study_uid=archive.study_uid, modality="SEG")
    assert stored.series_uid in [s.series_uid for s in listed]
    back = hd.seg.segread(str(download_seg(server, stored, tmp_path)))
    assert back.SOPInstanceUID == stored.sop_uid
    assert back.FrameOfReferenceUID == archive.frame_of_reference_uid
    assert back.StudyInstanceUID == archive.study_uid
    assert [s.SeriesInstanceUID for s in back.ReferencedSeriesSequence] == [archive.series_uid]
    assert len(back.SegmentSequence) == 2
    from scanio.dicom_seg import read_seg

    archived = read_seg(tmp_path / "from_archive.dcm")
    assert archived.same_geometry(scan)
    assert np.array_equal(archived.array, labels)


def test_a_seg_series_is_not_a_volume(archive, credentials, tmp_path):
    scan = dicomweb.read_series(archive.series_url())
    labels = np.zeros(scan.shape, np.uint8)
    labels[5:9, 200:260, 200:260] = 1
    stored = dicomweb.store_seg(scanio.write_labels(tmp_path / "seg.dcm", labels, like=scan),
                                archive.url)
    with pytest.raises(dicomweb.NotAVolumeSeriesError, match=r"segmentation .*choose the CT/MR") as info:
        dicomweb.read_series(archive.series_url(stored.series_uid))
    assert archive.url in str(info.value)
    assert not (credentials / stored.series_uid).exists()  # refused before fetching


def test_a_store_the_archive_drops_fails_and_keeps_the_seg(archive, credentials, tmp_path):
    scan = dicomweb.read_series(archive.series_url(archive.rejecting_series_uid))
    labels = np.zeros(scan.shape, np.uint8)
    labels[5:9, 200:260, 200:260] = 1
    path = scanio.write_labels(tmp_path / "seg.dcm", labels, like=scan)
    with pytest.raises(dicomweb.StoreFailedError) as info:
        dicomweb.store_seg(path, dicomweb.remote_origin(scan))
    assert archive.url in str(info.value) and str(path) in str(info.value)
    assert info.value.path == path and path.is_file()


def test_wrong_password_is_an_authentication_error(archive, credentials, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_PASSWORD", "not-the-password")
    with pytest.raises(dicomweb.AuthenticationError, match="HTTP 401") as info:
        dicomweb.read_series(archive.series_url())
    assert archive.url in str(info.value) and "NAPARI_SAM2_DICOMWEB_PASSWORD" in str(info.value)
    assert info.value.status == 401
    assert not (credentials / archive.series_uid).exists()


def test_no_credentials_is_an_authentication_error(archive, credentials, monkeypatch):
    monkeypatch.delenv("NAPARI_SAM2_DICOMWEB_USER")
    with pytest.raises(dicomweb.AuthenticationError, match="refused the credentials"):
        dicomweb.DicomWebServer(archive.url).search_studies()


def test_credentials_from_the_config_file(archive, credentials, monkeypatch, tmp_path):
    import json

    monkeypatch.delenv("NAPARI_SAM2_DICOMWEB_USER")
    monkeypatch.delenv("NAPARI_SAM2_DICOMWEB_PASSWORD")
    config = tmp_path / "dicomweb.json"
    config.write_text(json.dumps({"servers": {archive.server.rest_url: {
        "username": orthanc.USER, "password": orthanc.PASSWORD}}}))
    config.chmod(0o600)
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_CONFIG", str(config))
    assert [s.study_uid for s in dicomweb.DicomWebServer(archive.url).search_studies(
        patient_id=SAMPLE_PATIENT)] == [archive.study_uid]


def test_server_down_is_unreachable_error(credentials):
    url = f"dicomweb+http://127.0.0.1:{orthanc.free_port()}/dicom-web?series=1.2.3.4"
    with pytest.raises(dicomweb.ServerUnreachableError, match="cannot reach") as info:
        dicomweb.read_series(url)
    assert "127.0.0.1" in str(info.value) and "running" in str(info.value)


def test_unknown_series_is_not_found(archive, credentials):
    with pytest.raises(dicomweb.RemoteSeriesNotFoundError, match="has no series 1.2.3.4.5") as info:
        dicomweb.read_series(archive.series_url("1.2.3.4.5"))
    assert archive.url in str(info.value)
    assert isinstance(info.value, scanio.SeriesNotFoundError)


def test_wrong_service_path_says_so(archive, credentials):
    with pytest.raises(dicomweb.DicomWebServerError, match="HTTP 404.*service path"):
        dicomweb.DicomWebServer(archive.server.rest_url + "/no-such-root").search_series()
