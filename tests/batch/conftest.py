"""Batch fixtures: a small cohort (real scans + one corrupt file) and a real 2-worker LocalCluster."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")


def write_manifest_csv(path: Path, rows: list[dict]) -> Path:
    """Write manifest rows (dicts) as CSV with the union of their keys as header."""
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture()
def cohort(totalseg_dir: Path, tmp_path: Path) -> dict:
    """Three real scans (two NIfTI CT, one NIfTI MR) and a corrupt NIfTI, with a manifest."""
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b this is not a gzip'd NIfTI file at all" * 10)
    rows = [
        {"scan": str(totalseg_dir / "example_ct_sm.nii.gz"), "object_id": 1, "object_name": "liver", "box": "15,40,20,80,60"},
        {"scan": str(totalseg_dir / "example_ct_sm.nii.gz"), "object_id": 2, "object_name": "spleen", "points": "12,50,90;12,52,92,1"},
        {"scan": str(totalseg_dir / "example_mr_sm.nii.gz"), "object_id": 1, "object_name": "liver", "box": "10,30,20,60,50"},
        {"scan": str(totalseg_dir / "example_ct.nii.gz"), "object_id": 3, "object_name": "kidney", "box": "60,40,30,70,60"},
        {"scan": str(broken), "object_id": 1, "object_name": "liver", "box": "5,10,10,20,20"},
    ]
    manifest = write_manifest_csv(tmp_path / "manifest.csv", rows)
    good = [totalseg_dir / "example_ct_sm.nii.gz", totalseg_dir / "example_mr_sm.nii.gz", totalseg_dir / "example_ct.nii.gz"]
    return {"manifest": manifest, "good": good, "broken": broken, "out": tmp_path / "out", "rows": rows}


@pytest.fixture(scope="session")
def dask_client():
    """A real LocalCluster: 2 worker processes x 1 thread, each running one scan at a time."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, resources={"scan": 1}, dashboard_address=None
    )
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()
