"""Batch manifests naming PACS series: fetched before the run, SEGs pushed back with --push."""

from __future__ import annotations

import csv

import pytest

from napari_sam2.cli import main
from scanio import dicomweb
from volume.batch.manifest import MissingScanError, read_manifest

pytest.importorskip("dicomweb_client", reason="needs dicomweb-client: pip install -e '.[pacs]'")

pytestmark = pytest.mark.slow


def write_manifest(path, rows):
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_manifest_scan_may_be_a_dicomweb_series(archive, credentials, tmp_path):
    url = archive.series_url()
    manifest = write_manifest(tmp_path / "m.csv", [
        {"scan": url, "object_id": 1, "box": "10,196,107,374,269"},
        {"scan": url, "object_id": 2, "box": "8,250,300,330,380"},
    ])
    (job,) = read_manifest(manifest)
    assert job.scan_path == credentials / archive.series_uid and job.stem == archive.series_uid
    assert [o.obj_id for o in job.objects] == [1, 2]
    assert len(list(job.scan_path.glob("*.dcm"))) == 20


def test_manifest_row_with_an_unknown_series_names_the_row_and_server(archive, credentials, tmp_path):
    manifest = write_manifest(tmp_path / "m.csv", [
        {"scan": archive.series_url("1.2.3.4.5"), "object_id": 1, "box": "10,196,107,374,269"}])
    with pytest.raises(MissingScanError, match=r"row 1: .*has no series 1\.2\.3\.4\.5") as info:
        read_manifest(manifest)
    assert archive.url in str(info.value)


def test_batch_push_stores_each_seg_on_its_server(archive, credentials, tmp_path, capsys):
    manifest = write_manifest(tmp_path / "m.csv", [
        {"scan": archive.series_url(), "object_id": 1, "box": "10,196,107,374,269"}])
    out = tmp_path / "out"
    code = main(["batch", str(manifest), "-o", str(out), "--format", "seg", "--push", "--workers", "1",
                 "--no-progress", "--segmenter", "tests.batch.segmenters:BoxSegmenter"])
    captured = capsys.readouterr()
    printed = captured.out
    assert code == 0, captured.err[-3000:]
    seg_file = out / f"{archive.series_uid}.dcm"
    assert seg_file.is_file()
    import pydicom

    local = pydicom.dcmread(seg_file, stop_before_pixels=True)
    assert f"as SEG series {local.SeriesInstanceUID} on {archive.url}" in printed
    listed = dicomweb.DicomWebServer(archive.url).search_series(study_uid=archive.study_uid,
                                                                 modality="SEG")
    assert local.SeriesInstanceUID in [s.series_uid for s in listed]


def test_batch_push_needs_seg_format(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "m.csv", [{"scan": "x.nii.gz", "box": "1,1,1,2,2"}])
    assert main(["batch", str(manifest), "-o", str(tmp_path / "out"), "--push"]) == 2
    assert "--format seg" in capsys.readouterr().err
