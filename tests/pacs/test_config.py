"""URL forms, credentials (environment, config file), TLS defaults, and validation of what arrives."""

from __future__ import annotations

import copy
import json

import pytest

from scanio import dicomweb
from scanio.dicomweb.config import load_server_config, parse_dicomweb_url, series_location
from scanio.dicomweb.validate import validate_instance

pytest.importorskip("dicomweb_client", reason="needs dicomweb-client: pip install -e '.[pacs]'")

SERVER = "https://pacs.example.org/dicom-web"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in ("USER", "PASSWORD", "TOKEN", "CA_BUNDLE", "URL"):
        monkeypatch.delenv(f"NAPARI_SAM2_DICOMWEB_{name}", raising=False)
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_CONFIG", str(tmp_path / "dicomweb.json"))
    return tmp_path / "dicomweb.json"


def test_dicomweb_url_is_https_unless_it_says_http():
    assert parse_dicomweb_url("dicomweb://pacs.example.org/dicom-web?series=1.2.3") == \
        dicomweb.SeriesLocation(SERVER, "1.2.3")
    loc = parse_dicomweb_url("dicomweb+http://127.0.0.1:8042/dicom-web/?series=1.2.3&study=4.5")
    assert (loc.base_url, loc.series_uid, loc.study_uid) == ("http://127.0.0.1:8042/dicom-web", "1.2.3", "4.5")
    assert parse_dicomweb_url(loc.url()) == loc


@pytest.mark.parametrize("url, message", [
    ("dicomweb://pacs.example.org/dicom-web", "name one series"),
    ("dicomweb://pacs.example.org/dicom-web?series=1.2/../../x", "not a DICOM UID"),
    ("dicomweb://pacs.example.org/dicom-web?series=1.2&series=1.3", "name one series"),
    ("dicomweb://pacs.example.org/dicom-web?series=1.2&user=bob", "unknown parameter"),
    ("dicomweb://bob:secret@pacs.example.org/dicom-web?series=1.2", "credentials in the URL"),
    ("dicomweb://pacs.example.org:99999/dicom-web?series=1.2", "(?i)port"),
])
def test_bad_urls_are_refused(url, message):
    with pytest.raises(dicomweb.DicomWebURLError, match=message) as info:
        parse_dicomweb_url(url)
    assert "secret" not in str(info.value)


def test_server_and_series_options_form_a_location():
    assert series_location("", SERVER + "/", "1.2.3") == dicomweb.SeriesLocation(SERVER, "1.2.3")
    assert series_location("/data/ct", None, None) is None


def test_environment_credentials_and_tls_on_by_default(monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_USER", "alice")
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_PASSWORD", "s3cret")
    config = load_server_config(SERVER)
    assert (config.username, config.password, config.token, config.verify_tls) == ("alice", "s3cret", None, True)
    assert "s3cret" not in repr(config) and "s3cret" not in repr(dicomweb.DicomWebServer(SERVER))


def test_bearer_token_goes_in_the_authorization_header(monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_TOKEN", "tok-123")
    session = dicomweb.DicomWebServer(SERVER).client._session
    assert session.headers["Authorization"] == "Bearer tok-123" and session.auth is None
    assert session.verify is True


def test_config_file_entry_with_the_longest_matching_prefix(clean_environment):
    clean_environment.write_text(json.dumps({"servers": {
        "https://pacs.example.org": {"username": "general", "password": "a"},
        SERVER: {"token": "specific", "ca_bundle": "/etc/ssl/private-ca.pem"},
        "https://other.example.org/dicom-web": {"username": "other", "verify_tls": False},
    }}))
    clean_environment.chmod(0o600)
    config = load_server_config(SERVER + "/")
    assert (config.token, config.verify_tls) == ("specific", "/etc/ssl/private-ca.pem")
    assert load_server_config("https://pacs.example.org/wado").username == "general"
    assert load_server_config("https://other.example.org/dicom-web").verify_tls is False
    assert load_server_config("https://unknown.example.org/x").username is None


def test_a_readable_config_file_with_secrets_warns(clean_environment):
    clean_environment.write_text(json.dumps({"servers": {SERVER: {"password": "x", "username": "u"}}}))
    clean_environment.chmod(0o644)
    with pytest.warns(UserWarning, match="chmod 600"):
        load_server_config(SERVER)


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    import pydicom

    from sample_data import sample_ct_path
    from tests.pacs.conftest import SAMPLE_PATIENT, archive_copy

    folder = archive_copy(sample_ct_path(), tmp_path_factory.mktemp("copy"), SAMPLE_PATIENT)
    return pydicom.dcmread(sorted(folder.iterdir())[0])


def _uids(ds) -> dict:
    return {"server": SERVER, "study_uid": str(ds.StudyInstanceUID),
            "series_uid": str(ds.SeriesInstanceUID), "sop_uid": str(ds.SOPInstanceUID)}


def test_a_valid_instance_passes(instance):
    assert validate_instance(instance, **_uids(instance)) == str(instance.SOPInstanceUID)


def test_an_instance_of_another_series_is_refused(instance):
    uids = _uids(instance) | {"series_uid": "1.2.3"}
    with pytest.raises(dicomweb.InvalidInstanceError, match="sent series .* instead.*not kept"):
        validate_instance(instance, **uids)


def test_truncated_native_pixel_data_is_refused(instance):
    ds = copy.deepcopy(instance)
    ds.decompress()  # native pixel data (pydicom gives it a new SOP Instance UID)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    with pytest.raises(dicomweb.InvalidInstanceError, match="truncated"):
        validate_instance(ds, **_uids(ds))


def test_compressed_pixel_data_that_does_not_decode_is_refused(instance):
    from pydicom.encaps import encapsulate

    ds = copy.deepcopy(instance)
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 64])  # a J2K start, then nothing
    with pytest.raises(dicomweb.InvalidInstanceError, match="cannot decode"):
        validate_instance(ds, **_uids(instance))


def test_absurd_image_size_is_refused(instance):
    ds = copy.deepcopy(instance)
    ds.Rows = 70000 % 65536 + 20000
    with pytest.raises(dicomweb.InvalidInstanceError, match="out of range"):
        validate_instance(ds, **_uids(instance))


def test_a_non_image_instance_is_not_a_volume(instance):
    ds = copy.deepcopy(instance)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR
    with pytest.raises(dicomweb.NotAVolumeSeriesError, match="not images"):
        validate_instance(ds, **_uids(instance))
