"""`napari-sam2 segment` and `napari-sam2 eval` with a fake model on a synthetic NIfTI scan."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from napari_sam2.cli import main
from tests.volume.fake_models import ThresholdImageModel, ellipsoid

SHAPE, CENTER, RADII = (30, 40, 50), (15, 20, 24), (8.5, 10, 12)


@pytest.fixture
def scan_path(tmp_path):
    image = sitk.GetImageFromArray(ellipsoid(SHAPE, CENTER, RADII))
    image.SetSpacing((1.0, 1.0, 2.0))
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture(autouse=True)
def fake_model(monkeypatch):
    import sam2core.build

    monkeypatch.setattr(sam2core.build, "load_model", lambda name, **kw: ThresholdImageModel())


def test_segment_writes_labels_and_prints_summary(scan_path, tmp_path, capsys):
    out = tmp_path / "labels.nii.gz"
    code = main(["segment", str(scan_path), "-o", str(out), "--box", "15,10,12,30,36", "--window", "0,1000", "-q"])
    assert code == 0
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    truth = ellipsoid(SHAPE, CENTER, RADII) > 0
    assert 2 * ((labels == 1) & truth).sum() / ((labels == 1).sum() + truth.sum()) > 0.97
    line = capsys.readouterr().out.strip().splitlines()[-1]
    voxels = int((labels == 1).sum())
    assert line.startswith("segmented 1 object(s)") and f"{voxels} voxels" in line
    assert f"{voxels * 2 / 1000:.1f} ml" in line and "slices encoded" in line


def test_prompts_file_and_points(scan_path, tmp_path):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"objects": [{"id": 3, "points": [[15, 20, 24, 1]]}]}))
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(scan_path), "-o", str(out), "--prompts", str(prompts),
                 "--window", "0,1000", "-q"]) == 0
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert set(np.unique(labels)) == {0, 3}


@pytest.mark.parametrize("extra", [
    [],                                        # no prompt
    ["--box", "15,10,12,30"],                  # 4 numbers
    ["--box", "40,10,12,30,36"],               # slice outside the scan
    ["--box", "15,10,12,10,36"],               # empty box
    ["--point", "15,20,99"],                   # point outside
    ["--point", "15,20,24,3"],                 # bad label
    ["--box", "15,10,12,30,36", "--window", "nonsense"],
    ["--box", "15,10,12,30,36", "--prompts", "/nonexistent/prompts.json"],
])
def test_bad_arguments_exit_with_2(scan_path, tmp_path, extra, capsys):
    assert main(["segment", str(scan_path), "-o", str(tmp_path / "o.nii.gz"), "-q", *extra]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_missing_scan_and_existing_output_exit_with_2(scan_path, tmp_path):
    assert main(["segment", str(tmp_path / "missing.nii.gz"), "-o", str(tmp_path / "o.nii.gz"),
                 "--box", "15,10,12,30,36"]) == 2
    existing = tmp_path / "exists.nii.gz"
    existing.write_text("x")
    assert main(["segment", str(scan_path), "-o", str(existing), "--box", "15,10,12,30,36"]) == 2


def test_eval_prints_dice_per_label(tmp_path, capsys):
    ref = np.zeros(SHAPE, np.uint8)
    ref[5:10, 5:10, 5:10] = 1
    ref[20:25, 20:25, 20:25] = 2
    pred = ref.copy()
    pred[5:10, 5:10, 5:7] = 0  # label 1 loses 2 of 5 columns: Dice 0.75
    for name, array in (("pred", pred), ("ref", ref)):
        sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / f"{name}.nii.gz"))
    assert main(["eval", str(tmp_path / "pred.nii.gz"), str(tmp_path / "ref.nii.gz")]) == 0
    out = capsys.readouterr().out
    assert "0.7500" in out and "1.0000" in out
    assert main(["eval", str(tmp_path / "pred.nii.gz"), str(tmp_path / "ref.nii.gz"), "--label", "2"]) == 0
    assert "0.7500" not in capsys.readouterr().out


def test_segment_extent_limits_the_object_and_summary_names_its_window(scan_path, tmp_path, capsys):
    out = tmp_path / "labels.nii.gz"
    code = main(["segment", str(scan_path), "-o", str(out), "--box", "15,10,12,30,36", "--window", "0,1000",
                 "--extent", "1:12:18", "-q"])
    assert code == 0
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    zs = np.flatnonzero((labels == 1).any(axis=(1, 2)))
    assert (zs[0], zs[-1]) == (12, 18)
    assert "window" in capsys.readouterr().out.strip().splitlines()[-1]


@pytest.mark.parametrize("extent", ["1:20", "1:18:12", "2:10:12", "a:b:c"])
def test_segment_bad_extent_exits_with_2(scan_path, tmp_path, extent):
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(scan_path), "-o", str(out), "--box", "15,10,12,30,36", "--window", "0,1000",
                 "--extent", extent, "-q"]) == 2
