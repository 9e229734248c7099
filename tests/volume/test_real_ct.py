"""End to end on real CT: one box per organ on its middle slice, LiteMedSAM, 3D Dice targets.

All four organs are objects of ONE session, so each slice is encoded once for all of them.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

TARGETS = {5: ("liver", 0.88), 1: ("spleen", 0.88), 2: ("kidney_right", 0.85), 3: ("kidney_left", 0.85)}


@pytest.fixture(scope="module")
def propagated(totalseg_dir):
    import torch

    import scanio
    from sam2core.lite_medsam import load_lite_medsam
    from volume import Session

    torch.manual_seed(0)
    scan = scanio.read_scan(totalseg_dir / "example_ct_sm.nii.gz")
    ref = np.asarray(scanio.read_scan(totalseg_dir / "example_seg.nii.gz").array)
    session = Session(scan, load_lite_medsam(device="cpu"), window="auto")
    for label in TARGETS:
        zs = np.flatnonzero((ref == label).any(axis=(1, 2)))
        z = int(zs[len(zs) // 2])
        ys, xs = np.nonzero(ref[z] == label)
        session.add_box(label, z, (ys.min(), xs.min(), ys.max(), xs.max()))
    labels = session.propagate()
    return session, labels, ref


@pytest.mark.parametrize("label", list(TARGETS))
def test_one_box_reaches_the_dice_target(propagated, label):
    from volume import dice

    _, labels, ref = propagated
    name, target = TARGETS[label]
    value = dice(labels == label, ref == label)
    assert value >= target, f"{name}: 3D Dice {value:.3f} < {target}"


def test_each_slice_is_encoded_once_for_all_organs(propagated):
    session, _, _ = propagated
    assert session.frames_made == session.slices_encoded <= session.num_slices


@pytest.mark.parametrize("label", [2, 3])
def test_kidneys_stop_near_their_end(propagated, label):
    _, labels, ref = propagated
    predicted = np.flatnonzero((labels == label).any(axis=(1, 2)))
    reference = np.flatnonzero((ref == label).any(axis=(1, 2)))
    assert abs(int(predicted[-1]) - int(reference[-1])) <= 2
