"""`napari-sam2 batch` from the shell: exit codes, outputs, summary, resume."""

from __future__ import annotations

import csv
import importlib.util

from napari_sam2.cli import main
from tests.batch.conftest import write_manifest_csv


def test_batch_cli_runs_a_local_cluster_and_resumes(cohort, capsys):
    argv = [
        "batch", str(cohort["manifest"]), "-o", str(cohort["out"]), "--workers", "2", "--no-progress",
        "--segmenter", "tests.batch.segmenters:BoxSegmenter",
    ]
    assert main(argv) == 1  # the corrupt scan failed, the others were written
    captured = capsys.readouterr()
    assert "started a local Dask cluster: 2 worker(s) x 1 thread(s)" in captured.err
    if importlib.util.find_spec("bokeh") is not None:
        assert "dashboard: http://" in captured.err
    assert "3 scan(s) ok, 1 failed" in captured.out and "broken.nii.gz" in captured.err
    with (cohort["out"] / "summary.csv").open() as fh:
        statuses = [r["status"] for r in csv.DictReader(fh)]
    assert statuses == ["ok", "ok", "ok", "failed"]
    lines = cohort["manifest"].read_text().splitlines()
    cohort["manifest"].write_text("\n".join(line for line in lines if "broken" not in line) + "\n")
    assert main(argv) == 0  # everything left is done: no cluster, no work
    captured = capsys.readouterr()
    assert "3 already done" in captured.out and "Dask cluster" not in captured.err


def test_batch_cli_bad_manifest_exits_2_with_the_row(tmp_path, capsys):
    manifest = write_manifest_csv(tmp_path / "m.csv", [{"scan": "missing.nii.gz", "box": "1,2,3,4,5"}])
    assert main(["batch", str(manifest), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "row 1" in err and "missing.nii.gz" in err and not (tmp_path / "out").exists()


def test_batch_cli_unknown_segmenter_exits_2(cohort, capsys):
    argv = ["batch", str(cohort["manifest"]), "-o", str(cohort["out"]), "--segmenter", "no.such.module:thing"]
    assert main(argv) == 2
    assert "cannot be imported" in capsys.readouterr().err
