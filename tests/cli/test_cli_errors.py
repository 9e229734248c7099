"""Every `napari-sam2` failure is one plain line (exit 2 bad input, 1 otherwise), never a
traceback unless `--debug` (issue 13)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from napari_sam2.cli import main


@pytest.fixture
def scan_path(tmp_path):
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 8, 8), np.int16)), str(path))
    return path


def _run(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("extra, needle", [
    (["--device", "banana"], "--device 'banana'"),
    (["--box", "1,nan,1,3,3"], "finite"),
    (["--box", "1,1,1,inf,3"], "finite"),
])
def test_segment_bad_options_exit_2_with_one_line(tmp_path, scan_path, capsys, extra, needle):
    argv = ["segment", str(scan_path), "-o", str(tmp_path / "o.nii.gz"), "-q"]
    if "--box" not in extra:
        argv += ["--box", "1,1,1,3,3"]
    code, err = _run(capsys, argv + extra)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1


def test_window_with_infinite_width_is_refused():
    from volume.errors import WindowError
    from volume.windowing import resolve_window

    with pytest.raises(WindowError):
        resolve_window("40,inf", np.zeros((2, 2, 2), np.int16))


def test_segment_output_folder_missing_is_refused_before_reading(tmp_path, scan_path, capsys):
    code, err = _run(capsys, ["segment", str(scan_path), "-o", str(tmp_path / "no" / "o.nii.gz"),
                              "--box", "1,1,1,3,3", "-q"])
    assert code == 2 and "does not exist" in err


@pytest.mark.parametrize("content", [
    {"objects": [{"id": 1, "points": 5}]}, {"objects": [{"id": "x", "box": [1, 1, 1, 3, 3]}]},
    {"objects": [{"id": 1}]}, {"objects": [{"id": 1, "box": 7}]},
])
def test_prompts_file_with_wrong_types_names_the_object(tmp_path, scan_path, capsys, content):
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps(content))
    code, err = _run(capsys, ["segment", str(scan_path), "-o", str(tmp_path / "o.nii.gz"),
                              "--prompts", str(prompts), "-q"])
    assert code == 2 and "object #1" in err


def test_binary_prompts_file_is_refused(tmp_path, scan_path, capsys):
    prompts = tmp_path / "p.json"
    prompts.write_bytes(b"\xff\xfe\x00garbage")
    code, err = _run(capsys, ["segment", str(scan_path), "-o", str(tmp_path / "o.nii.gz"),
                              "--prompts", str(prompts), "-q"])
    assert code == 2 and "not UTF-8" in err


def test_unexpected_failure_is_one_line_exit_1_and_debug_shows_the_traceback(scan_path, capsys, monkeypatch):
    import scanio

    def boom(*args, **kwargs):
        raise RuntimeError("something broke inside")

    monkeypatch.setattr(scanio, "read_scan", boom)
    code, err = _run(capsys, ["info", str(scan_path)])
    assert code == 1
    assert "something broke inside" in err and "--debug" in err and str(scan_path) in err
    assert main(["info", str(scan_path), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_eval_refuses_float_labels_instead_of_truncating(tmp_path, capsys):
    prob = tmp_path / "prob.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((3, 4, 4), 0.7, np.float32)), str(prob))
    labels = tmp_path / "labels.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((3, 4, 4), np.uint8)), str(labels))
    code, err = _run(capsys, ["eval", str(prob), str(labels)])
    assert code == 2 and "non-integer" in err


def test_batch_output_that_is_a_file_is_refused(tmp_path, scan_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f'scan,box\n{scan_path},"1,1,1,3,3"\n')
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, err = _run(capsys, ["batch", str(manifest), "-o", str(afile)])
    assert code == 2 and "is a file" in err


def test_batch_without_the_extra_names_the_pip_command(tmp_path, scan_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("dask", "distributed") else real(name, *a))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f'scan,box\n{scan_path},"1,1,1,3,3"\n')
    code, err = _run(capsys, ["batch", str(manifest), "-o", str(tmp_path / "out")])
    assert code == 1 and "pip install 'napari-sam2[batch]'" in err


@pytest.mark.parametrize("data, needle", [
    (b"scan,box\n\xff\xfe,1\n", "not UTF-8"),
    (b"scan,box\n\x00\x00\n", "NUL"),
    (b'scan,object_name,box\nx,' + b"y" * 200_000 + b',"1,1,1,3,3"\n', "CSV cannot be parsed"),
])
def test_batch_damaged_manifest_is_exit_2(tmp_path, capsys, data, needle):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(data)
    code, err = _run(capsys, ["batch", str(manifest), "-o", str(tmp_path / "out")])
    assert code == 2 and needle in err


def test_garbage_summary_of_an_earlier_run_is_named(tmp_path):
    from volume.batch.cohort import BatchError, _existing_summary

    (tmp_path / "summary.csv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(BatchError, match="summary.csv"):
        _existing_summary(tmp_path)
