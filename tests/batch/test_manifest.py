"""Manifest reading and validation: CSV and JSON lines, typed errors with row numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.batch.conftest import write_manifest_csv
from volume.batch import (
    FieldError,
    ManifestFormatError,
    MissingScanError,
    PromptError,
    read_manifest,
    segment_cohort,
)


@pytest.fixture()
def scans(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"]
    for p in paths:
        p.write_bytes(b"placeholder")
    (tmp_path / "series1").mkdir()
    return paths + [tmp_path / "series1"]


def test_csv_groups_rows_per_scan_with_prompts(scans, tmp_path):
    rows = [
        {"scan": "a.nii.gz", "object_id": "1", "object_name": "liver", "box": "5,10,20,30,40"},
        {"scan": "a.nii.gz", "object_id": "2", "object_name": "", "points": "5,11,12;6,13,14,0"},
        {"scan": str(scans[2]), "object_id": "", "box": "1,2,3,4,5", "axis": "Coronal", "window": "40,400"},
    ]
    jobs = read_manifest(write_manifest_csv(tmp_path / "m.csv", rows))
    assert [j.scan_path for j in jobs] == [scans[0], scans[2]]
    liver, second = jobs[0].objects
    assert (liver.obj_id, liver.name, liver.box_zyx) == (1, "liver", (5, 10, 20, 30, 40))
    assert isinstance(liver.box_zyx[0], int)
    assert second.name == "object_2" and second.points_zyx == ((5, 11, 12), (6, 13, 14))
    assert second.point_labels == (1, 0)
    assert (jobs[1].axis, jobs[1].window, jobs[1].objects[0].obj_id) == ("coronal", "40,400", 1)
    assert jobs[1].stem == "series1" and jobs[0].stem == "a"


def test_jsonl_gives_the_same_jobs_as_csv(scans, tmp_path):
    rows = [
        {"scan": "a.nii.gz", "object_id": 1, "object_name": "liver", "box": "5,10,20,30,40"},
        {"scan": "b.nii.gz", "object_id": 2, "points": "3,4,5,0", "model": "lite_medsam"},
    ]
    from_csv = read_manifest(write_manifest_csv(tmp_path / "m.csv", rows))
    jsonl_rows = [dict(rows[0], box=[5, 10, 20, 30, 40]), dict(rows[1], points=[[3, 4, 5, 0]])]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in jsonl_rows) + "\n")
    assert read_manifest(path) == from_csv


def test_missing_scan_is_reported_with_its_row(scans, tmp_path):
    rows = [{"scan": "a.nii.gz", "box": "1,2,3,4,5"}, {"scan": "nope.nii.gz", "box": "1,2,3,4,5"}]
    with pytest.raises(MissingScanError) as info:
        read_manifest(write_manifest_csv(tmp_path / "m.csv", rows))
    assert info.value.row == 2 and "nope.nii.gz" in str(info.value) and "row 2" in str(info.value)


@pytest.mark.parametrize(
    "prompt",
    [{"box": "1,2,3,4"}, {"box": "1,2,x,4,5"}, {"box": "1,2,3,2,5"}, {"box": "1.5,2,3,4,5"}, {"box": "1,2,3,4,5,6"},
     {"points": "1,2"}, {"points": "1,2,3,7"}, {"points": "1,2,3,1,2"}, {}],
)
def test_bad_or_missing_prompt_is_a_prompt_error(scans, tmp_path, prompt):
    rows = [{"scan": "a.nii.gz", "box": "1,2,3,4,5"}, {"scan": "b.nii.gz", "box": "", "points": "", **prompt}]
    with pytest.raises(PromptError) as info:
        read_manifest(write_manifest_csv(tmp_path / "m.csv", rows))
    assert info.value.problems[0][0] == 2


def test_all_problems_are_listed_at_once(scans, tmp_path):
    rows = [{"scan": "gone.nii.gz", "box": "1,2,3,4,5"}, {"scan": "a.nii.gz", "box": "bad"}]
    with pytest.raises(MissingScanError) as info:
        read_manifest(write_manifest_csv(tmp_path / "m.csv", rows))
    assert [row for row, _ in info.value.problems] == [1, 2]


def test_disagreeing_session_options_and_duplicate_ids_are_field_errors(scans, tmp_path):
    rows = [
        {"scan": "a.nii.gz", "object_id": "1", "box": "1,2,3,4,5", "axis": "axial"},
        {"scan": "a.nii.gz", "object_id": "2", "box": "1,2,3,4,5", "axis": "sagittal"},
        {"scan": "b.nii.gz", "object_id": "1", "box": "1,2,3,4,5"},
        {"scan": "b.nii.gz", "object_id": "1", "box": "1,2,3,4,5"},
    ]
    with pytest.raises(FieldError) as info:
        read_manifest(write_manifest_csv(tmp_path / "m.csv", rows))
    assert [row for row, _ in info.value.problems] == [2, 4]


def test_two_scans_with_the_same_output_name_are_refused(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "ct.nii.gz").write_bytes(b"placeholder")
    rows = [{"scan": "x/ct.nii.gz", "box": "1,2,3,4,5"}, {"scan": "y/ct.nii.gz", "box": "1,2,3,4,5"}]
    with pytest.raises(FieldError, match="ct"):
        read_manifest(write_manifest_csv(tmp_path / "m.csv", rows))


def test_unknown_column_and_extension_are_format_errors(scans, tmp_path):
    with pytest.raises(ManifestFormatError, match="boxes"):
        read_manifest(write_manifest_csv(tmp_path / "m.csv", [{"scan": "a.nii.gz", "boxes": "1,2,3,4,5"}]))
    (tmp_path / "m.txt").write_text("scan\n")
    with pytest.raises(ManifestFormatError, match=".csv or .jsonl"):
        read_manifest(tmp_path / "m.txt")


def test_bad_manifest_fails_before_any_work(scans, tmp_path):
    class NoCluster:
        def __getattr__(self, name):
            raise AssertionError("the cluster must not be touched for a bad manifest")

    manifest = write_manifest_csv(tmp_path / "m.csv", [{"scan": "a.nii.gz", "box": "1,2,3"}])
    with pytest.raises(PromptError):
        segment_cohort(manifest, tmp_path / "out", client=NoCluster())
    assert not (tmp_path / "out").exists()


def test_symlinked_copies_are_separate_scans(scans, tmp_path):
    (tmp_path / "copy.nii.gz").symlink_to(scans[0])
    rows = [{"scan": "a.nii.gz", "box": "1,2,3,4,5"}, {"scan": "copy.nii.gz", "box": "1,2,3,4,5"}]
    jobs = read_manifest(write_manifest_csv(tmp_path / "m.csv", rows))
    assert [j.stem for j in jobs] == ["a", "copy"]


def test_unquoted_box_in_csv_says_to_quote_it(scans, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("scan,object_id,box\na.nii.gz,1,5,10,20,30,40\n")
    with pytest.raises(ManifestFormatError, match="quote") as info:
        read_manifest(path)
    assert info.value.row == 1


def test_extent_column_is_read_per_object(scans, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f'scan,box,extent\n{scans[0]},"5,2,2,8,8",3:9\n')
    jobs = read_manifest(manifest)
    assert jobs[0].objects[0].extent == (3, 9)


def test_bad_extent_is_a_field_error_with_its_row(scans, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f'scan,box,extent\n{scans[0]},"5,2,2,8,8",9:3\n')
    with pytest.raises(FieldError) as info:
        read_manifest(manifest)
    assert info.value.row == 1
