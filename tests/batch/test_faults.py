"""Fault tolerance on a real LocalCluster: a worker process killed mid-batch, stale partial files."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.batch.segmenters import BoxSegmenter
from volume.batch import read_summary, segment_cohort


def _wait_for_marker(marker_dir, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        started = sorted(marker_dir.glob("*.started"))
        if started:
            return started[0]
        time.sleep(0.05)
    raise AssertionError("no scan task started within the timeout")


def test_killing_a_worker_mid_batch_still_writes_every_good_scan_once(cohort, dask_client, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    partial = cohort["out"] / ".partial"
    partial.mkdir(parents=True)
    (partial / "example_ct_sm.deadbeef.nii.gz").write_bytes(b"half a file from an earlier crash")
    worker_pids = set(dask_client.run(os.getpid).values())

    outcome = {}
    segmenter = BoxSegmenter(delay_s=2.0, marker_dir=str(markers))
    runner = threading.Thread(
        target=lambda: outcome.update(report=segment_cohort(
            cohort["manifest"], cohort["out"], client=dask_client, segmenter=segmenter, progress=False)))
    runner.start()
    first = _wait_for_marker(markers)
    stem, pid = first.name.split(".")[0], int(first.name.split(".")[1])
    assert pid in worker_pids
    os.kill(pid, signal.SIGKILL)
    runner.join(timeout=240)
    assert not runner.is_alive()

    rows = read_summary(cohort["out"])
    for scan_path in cohort["good"]:
        assert rows[str(scan_path)].status == "ok", rows[str(scan_path)].error
    assert rows[str(cohort["broken"])].status == "failed"
    assert sorted(p.name for p in cohort["out"].iterdir()) == [
        "example_ct.nii.gz", "example_ct_sm.nii.gz", "example_mr_sm.nii.gz", "summary.csv"]
    attempts = sorted(markers.glob(f"{stem}.*.started"))
    assert len(attempts) == 2  # started on the killed worker, then retried on another process
    killed_row = next(r for r in rows.values() if r.output == f"{stem}.nii.gz")
    assert f"pid {pid}" not in killed_row.worker
    assert len(outcome["report"].ok) == 3
