"""`napari-sam2 info` and the import boundary of scanio."""

from __future__ import annotations

import subprocess
import sys

import SimpleITK as sitk


def test_info_prints_geometry(tmp_path, capsys):
    from napari_sam2.cli import main

    image = sitk.Image(6, 5, 4, sitk.sitkInt16)
    image.SetSpacing((0.5, 0.75, 2.0))
    image.SetOrigin((1.0, -2.0, 3.5))
    sitk.WriteImage(image, str(tmp_path / "x.nrrd"))
    assert main(["info", str(tmp_path / "x.nrrd")]) == 0
    out = capsys.readouterr().out
    assert "(4, 5, 6)" in out and "(2, 0.75, 0.5)" in out and "(1, -2, 3.5)" in out


def test_info_on_bundled_sample(capsys):
    from napari_sam2.cli import main

    assert main(["info", "sample"]) == 0
    out = capsys.readouterr().out
    assert "(20, 512, 512)" in out and "CT Body 3.0" in out and "CT" in out


def test_info_bad_input_exits_2_with_message(tmp_path, capsys):
    from napari_sam2.cli import main

    assert main(["info", str(tmp_path / "missing.nii.gz")]) == 2
    assert "missing.nii.gz" in capsys.readouterr().err


def test_scanio_imports_neither_torch_nor_napari(tmp_path):
    code = (
        "import sys, numpy as np, scanio\n"
        "s = scanio.Scan(np.zeros((2, 3, 4), np.int16), (1, 1, 1), (0, 0, 0), np.eye(3))\n"
        f"p = scanio.write_labels(r'{tmp_path}/l.nii.gz', np.zeros((2, 3, 4), np.uint8), like=s)\n"
        "scanio.resample_like(scanio.read_scan(p), like=s)\n"
        "import scanio.dicom_seg\n"
        "bad = [m for m in ('torch', 'napari') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
