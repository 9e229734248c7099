"""`napari-sam2 info|segment` on a series in a real Orthanc: URL forms, --push, errors and exit codes."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.cli import main
from scanio import dicomweb
from tests.pacs import orthanc
from tests.pacs.fake_segmenter import BoxPainterSession, paint_boxes

pytest.importorskip("dicomweb_client", reason="needs dicomweb-client: pip install -e '.[pacs]'")

BOX = "10,196,107,374,269"


@pytest.fixture
def fake_session(monkeypatch):
    """No model weights, no propagation: `segment` paints the boxes (the PACS path is under test)."""
    import sam2core.build
    import volume

    monkeypatch.setattr(sam2core.build, "load_model", lambda name, **kw: object())
    monkeypatch.setattr(volume, "Session", BoxPainterSession)


@pytest.mark.slow
def test_info_reads_a_series_named_by_server_and_series_options(archive, credentials, capsys):
    code = main(["info", "--server", archive.url, "--series", archive.series_uid])
    out = capsys.readouterr().out
    assert code == 0
    assert "(20, 512, 512)" in out and "CT" in out
    assert str(credentials / archive.series_uid) in out


@pytest.mark.slow
def test_segment_push_round_trip(archive, credentials, fake_session, tmp_path, capsys):
    import highdicom as hd

    out = tmp_path / "liver.dcm"
    code = main(["segment", archive.series_url(), "-o", str(out), "--box", BOX, "--push", "-q"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    local = hd.seg.segread(str(out))
    assert f"stored SEG {local.SOPInstanceUID}" in printed and archive.url in printed

    server = dicomweb.DicomWebServer(archive.url)
    (listed,) = [s for s in server.search_series(study_uid=archive.study_uid, modality="SEG")
                 if s.series_uid == local.SeriesInstanceUID]
    ds = server.client.retrieve_instance(archive.study_uid, listed.series_uid, local.SOPInstanceUID)
    back = hd.seg.Segmentation.from_dataset(ds)
    assert back.FrameOfReferenceUID == local.FrameOfReferenceUID == archive.frame_of_reference_uid
    assert back.ReferencedSeriesSequence[0].SeriesInstanceUID == archive.series_uid
    assert len(back.SegmentSequence) == len(local.SegmentSequence) == 1
    scan = dicomweb.read_series(archive.series_url())
    expected = paint_boxes(scan.array, {1: tuple(int(v) for v in BOX.split(","))})
    volume = back.get_volume(combine_segments=True, allow_missing_positions=True)
    assert int((np.asarray(volume.array) > 0).sum()) == int((expected > 0).sum()) > 0


@pytest.mark.slow
def test_failed_push_exits_1_and_keeps_the_seg(archive, credentials, fake_session, tmp_path, capsys):
    out = tmp_path / "seg.dcm"
    code = main(["segment", "--server", archive.url, "--series", archive.rejecting_series_uid,
                 "-o", str(out), "--box", BOX, "--push", "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert out.is_file() and f"stays at {out}" in err and archive.url in err


@pytest.mark.slow
def test_wrong_password_exits_1_naming_the_server(archive, credentials, monkeypatch, capsys):
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_PASSWORD", "wrong")
    assert main(["info", archive.series_url()]) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err and archive.url in err


@pytest.mark.slow
def test_unknown_series_exits_2(archive, credentials, capsys):
    assert main(["info", archive.series_url("1.2.3.4.5")]) == 2
    assert "has no series 1.2.3.4.5" in capsys.readouterr().err


def test_server_down_exits_1(credentials, capsys):
    url = f"dicomweb+http://127.0.0.1:{orthanc.free_port()}/dicom-web?series=1.2.3"
    assert main(["info", url]) == 1
    assert "cannot reach the DICOMweb server http://127.0.0.1" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["segment", "sample", "-o", "x.dcm", "--box", BOX, "--push"], "--push stores the SEG on the server"),
    (["segment", "dicomweb://pacs.example.org/dicom-web?series=1.2.3", "-o", "x.nii.gz", "--box", BOX,
      "--push"], "-o x.dcm"),
    (["info", "dicomweb://pacs.example.org/dicom-web?series=../../etc"], "is not a DICOM UID"),
    (["info", "--server", "https://pacs.example.org/dicom-web"], "--server and --series go together"),
    (["info", "dicomweb://pacs.example.org/dicom-web?series=1.2", "--series", "1.2"], "not both"),
    (["info"], "give SCAN"),
])
def test_bad_pacs_arguments_exit_2_before_any_request(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.dcm").exists()
