"""segment_cohort on a real 2-worker LocalCluster with a fast stand-in segmenter: outputs, failures, resume."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from tests.batch.conftest import write_manifest_csv
from tests.batch.segmenters import BoxSegmenter, FailingSegmenter
from volume.batch import read_summary, segment_cohort
from volume.batch.summary import COLUMNS

scanio = pytest.importorskip("scanio")


def _run(cohort, client, **kw):
    kw.setdefault("segmenter", BoxSegmenter())
    kw.setdefault("progress", False)
    return segment_cohort(cohort["manifest"], cohort["out"], client=client, **kw)


def test_good_scans_are_written_with_geometry_and_the_corrupt_one_fails(cohort, dask_client):
    report = _run(cohort, dask_client)
    rows = read_summary(cohort["out"])
    assert len(rows) == 4 and len(report.ok) == 3
    for scan_path in cohort["good"]:
        row = rows[str(scan_path)]
        assert row.status == "ok", row.error
        scan = scanio.read_scan(scan_path)
        labels = scanio.read_scan(cohort["out"] / row.output)
        assert labels.shape == scan.shape
        np.testing.assert_allclose(labels.spacing_mm, scan.spacing_mm, rtol=1e-5)
        np.testing.assert_allclose(labels.origin_mm, scan.origin_mm, atol=1e-3)
        np.testing.assert_allclose(labels.direction, scan.direction, atol=1e-5)
        voxels = row.per_object("voxels")
        for obj_id, count in voxels.items():
            assert count == int((labels.array == obj_id).sum()) > 0
        ml = row.per_object("ml")
        voxel_ml = float(np.prod(scan.spacing_mm)) / 1000
        assert ml == pytest.approx({k: v * voxel_ml for k, v in voxels.items()}, rel=1e-3)
        assert row.slices_encoded > 0 and row.worker and row.seconds > 0
    bad = rows[str(cohort["broken"])]
    assert bad.status == "failed" and "broken.nii.gz" in bad.error and bad.output == ""
    assert sorted(p.name for p in cohort["out"].iterdir()) == [
        "example_ct.nii.gz", "example_ct_sm.nii.gz", "example_mr_sm.nii.gz", "summary.csv"]


def test_summary_csv_has_one_row_per_scan_with_all_columns(cohort, dask_client):
    _run(cohort, dask_client)
    with (cohort["out"] / "summary.csv").open() as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == COLUMNS
    assert [r["scan"] for r in rows] == [str(p) for p in cohort["good"]] + [str(cohort["broken"])]
    assert rows[0]["objects"] == "1:liver;2:spleen"


def test_rerun_does_no_work_for_finished_scans_and_retries_failed_ones(cohort, dask_client):
    _run(cohort, dask_client)
    outputs = {p: p.stat().st_mtime_ns for p in cohort["out"].glob("*.nii.gz")}

    class NoCluster:
        def __getattr__(self, name):
            raise AssertionError("nothing to do: the cluster must not be used")

    cohort["broken"].unlink()
    cohort["manifest"].write_text(
        "\n".join(cohort["manifest"].read_text().splitlines()[:-1]) + "\n")  # drop the corrupt row
    report = segment_cohort(cohort["manifest"], cohort["out"], client=NoCluster(), segmenter=BoxSegmenter(),
                            progress=False)
    assert report.ran == [] and len(report.skipped) == 3
    assert {p: p.stat().st_mtime_ns for p in cohort["out"].glob("*.nii.gz")} == outputs


def test_rerun_redoes_scans_whose_output_is_missing_or_invalid(cohort, dask_client):
    _run(cohort, dask_client)
    ct, mr, dicom = (cohort["out"] / f"{n}.nii.gz" for n in ("example_ct_sm", "example_mr_sm", "example_ct"))
    ct.unlink()
    mr.write_bytes(b"truncated")
    before = dicom.stat().st_mtime_ns
    calls = []
    report = _run(cohort, dask_client, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 4), (3, 4), (4, 4)]  # the finished scan counts as done from the start
    assert sorted(report.ran) == sorted([str(cohort["good"][0]), str(cohort["good"][1]), str(cohort["broken"])])
    assert report.skipped == [str(cohort["good"][2])]
    assert ct.is_file() and scanio.read_scan(mr).shape == (20, 91, 117)
    assert dicom.stat().st_mtime_ns == before


def test_changed_prompts_redo_only_that_scan(cohort, dask_client):
    _run(cohort, dask_client)
    text = cohort["manifest"].read_text().replace("10,30,20,60,50", "11,30,20,60,50")
    cohort["manifest"].write_text(text)
    report = _run(cohort, dask_client)
    assert str(cohort["good"][1]) in report.ran and str(cohort["good"][0]) in report.skipped


def test_a_failing_segmenter_is_recorded_and_the_batch_goes_on(cohort, dask_client):
    report = _run(cohort, dask_client, segmenter=FailingSegmenter(fail_stems=("example_mr_sm",)))
    rows = read_summary(cohort["out"])
    assert rows[str(cohort["good"][1])].error.startswith("RuntimeError: synthetic failure on example_mr_sm")
    assert rows[str(cohort["good"][0])].ok and rows[str(cohort["good"][2])].ok
    assert len(report.failed) == 2


def test_dicom_input_with_seg_format_is_written_as_dicom_seg(totalseg_dir, tmp_path, dask_client):
    pydicom = pytest.importorskip("pydicom")
    manifest = write_manifest_csv(tmp_path / "m.csv", [
        {"scan": str(totalseg_dir / "example_ct_dicom"), "object_id": 3, "object_name": "kidney",
         "box": "10,200,200,260,250"},
        {"scan": str(totalseg_dir / "example_mr_sm.nii.gz"), "object_id": 1, "box": "10,30,20,60,50"},
    ])
    report = segment_cohort(manifest, tmp_path / "out", client=dask_client, segmenter=BoxSegmenter(),
                            output_format="seg", progress=False)
    assert len(report.ok) == 2, [r.error for r in report.failed]
    dicom_row, mr_row = report.results
    assert dicom_row.output == "example_ct_dicom.dcm"
    ds = pydicom.dcmread(tmp_path / "out" / "example_ct_dicom.dcm")
    assert ds.Modality == "SEG" and (ds.Rows, ds.Columns) == (512, 512)
    assert [s.SegmentLabel.split()[0] for s in ds.SegmentSequence] == ["kidney"]
    assert mr_row.output == "example_mr_sm.nii.gz"  # NIfTI input stays NIfTI
    rerun = segment_cohort(manifest, tmp_path / "out", client=dask_client, segmenter=BoxSegmenter(),
                           output_format="seg", progress=False)
    assert rerun.ran == []


def test_workers_get_their_share_of_cores_as_torch_threads(dask_client):
    from volume.batch import TorchThreadsPlugin

    dask_client.register_plugin(TorchThreadsPlugin(), name=TorchThreadsPlugin.name)

    def torch_threads_after_model_load():
        from volume.batch import runner

        runner._apply_torch_threads()  # what cached_model does before loading
        import torch

        return torch.get_num_threads()

    assert set(dask_client.run(torch_threads_after_model_load).values()) == {1}


def test_progress_callback_counts_scans_done(cohort, dask_client):
    calls = []
    segment_cohort(cohort["manifest"], cohort["out"], client=dask_client, segmenter=BoxSegmenter(),
                   progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_cancel_stops_the_batch_and_unfinished_scans_are_redone_next_time(cohort, dask_client):
    import threading

    cancel = threading.Event()
    report = segment_cohort(cohort["manifest"], cohort["out"], client=dask_client,
                            segmenter=BoxSegmenter(delay_s=1.0), cancel=cancel,
                            progress=lambda done, total: cancel.set())
    assert 1 <= len(report.results) < 4
    rerun = _run(cohort, dask_client)
    assert len(rerun.ran) == 4 - len(report.ok) and len(rerun.results) == 4


def test_runs_on_an_existing_cluster_given_its_scheduler_address(cohort, dask_client):
    address = dask_client.scheduler.address
    report = segment_cohort(cohort["manifest"], cohort["out"], scheduler=address, segmenter=BoxSegmenter(),
                            progress=False)
    assert len(report.ok) == 3 and {r.worker.split(" pid")[0] for r in report.ok} <= set(
        dask_client.scheduler_info()["workers"])


def test_another_segmenter_redoes_the_scans(cohort, dask_client):
    _run(cohort, dask_client)
    report = _run(cohort, dask_client, segmenter=FailingSegmenter())
    assert len(report.ran) == 4
