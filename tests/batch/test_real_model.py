"""End to end with the real LiteMedSAM model on one-slice crops of a real CT (slow-ish: model load + 6 slice encodes)."""

from __future__ import annotations

import numpy as np
import pytest

from volume.batch import read_summary, segment_cohort

sitk = pytest.importorskip("SimpleITK")
LIVER = 5


def _crop(totalseg_dir, tmp_path, z0: int, num_slices: int):
    """A `num_slices` crop of example_ct_sm (geometry kept) and its liver reference labels."""
    image = sitk.ReadImage(str(totalseg_dir / "example_ct_sm.nii.gz"))
    reference = sitk.ReadImage(str(totalseg_dir / "example_seg.nii.gz"))
    path = tmp_path / f"ct_z{z0}.nii.gz"
    sitk.WriteImage(image[:, :, z0:z0 + num_slices], str(path))
    liver = sitk.GetArrayFromImage(reference[:, :, z0:z0 + num_slices]) == LIVER
    return path, liver


def _box_row(path, liver: np.ndarray) -> dict:
    z = liver.shape[0] // 2
    ys, xs = np.nonzero(liver[z])
    box = f"{z},{ys.min()},{xs.min()},{ys.max()},{xs.max()}"
    return {"scan": str(path), "object_id": 1, "object_name": "liver", "box": box, "window": "40,400"}


@pytest.mark.slow
def test_lite_medsam_batch_segments_liver_with_one_model_load_per_worker(totalseg_dir, tmp_path, dask_client):
    crops = [_crop(totalseg_dir, tmp_path, z0, 2) for z0 in (12, 15, 18)]  # two slices each: ~2 s/slice on CPU
    rows = [_box_row(path, liver) for path, liver in crops]
    report = segment_cohort(rows, tmp_path / "out", client=dask_client, model="lite_medsam", progress=False)
    assert len(report.ok) == 3, [r.error for r in report.failed]

    from scanio import read_scan

    summary = read_summary(tmp_path / "out")
    for path, liver in crops:
        labels = read_scan(tmp_path / "out" / f"{path.name[:-7]}.nii.gz").array == 1
        z = liver.shape[0] // 2  # the prompted slice: a tight box on the liver
        dice = 2 * (labels[z] & liver[z]).sum() / (labels[z].sum() + liver[z].sum())
        assert dice > 0.8
        assert summary[str(path)].slices_encoded == 2
        assert summary[str(path)].per_object("voxels")[1] == labels.sum()
    # three scans on two workers: one worker ran two of them, and no worker loaded the model twice
    from volume.batch.runner import model_loads

    loads = dask_client.run(model_loads)
    assert max(loads.values()) == 1
