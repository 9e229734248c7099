"""The SAM 2 path in `Session` follows the same extent and stop semantics as LiteMedSAM (object score)."""

from __future__ import annotations

import numpy as np
import pytest

from sam2core.sam2_build import build_sam2
from tests.sam2core.sam2_oracle import one_thread, random_weights  # noqa: F401 (fixture)
from tests.volume.fake_models import FakeScan, ellipsoid
from volume import Session

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]
OBJ_SCORE_BIAS = "sam_mask_decoder.pred_obj_score_head.layers.2.bias"
SHAPE = (16, 48, 56)


def tiny_sam2(object_bias: float):
    model = build_sam2("sam2.1_hiera_tiny", image_size=64)
    weights = random_weights(model, seed=5)
    weights[OBJ_SCORE_BIAS].fill_(object_bias)
    model.load_state_dict(weights, strict=True)
    return model.eval()


def volume_with_disc() -> np.ndarray:
    return ellipsoid(SHAPE, (8, 24, 28), (20, 10, 12))  # the disc is on every slice


def slices_with(labels: np.ndarray, obj: int) -> np.ndarray:
    return np.flatnonzero((labels == obj).any(axis=(1, 2)))


def test_sam2_extent_is_respected_in_both_directions():
    session = Session(FakeScan(volume_with_disc()), tiny_sam2(3.0), window="0,1000")
    session.add_box(1, 8, (14, 16, 34, 40))
    session.set_extent(1, 5, 11)
    zs = slices_with(session.propagate(), 1)
    assert zs.size and zs[0] >= 5 and zs[-1] <= 11
    assert session.slices_encoded <= 7


def test_sam2_object_score_stops_propagation_after_absent_slices():
    session = Session(FakeScan(volume_with_disc()), tiny_sam2(-6.0), window="0,1000", absent_slices=2)
    session.add_box(1, 8, (14, 16, 34, 40))
    session.propagate()
    scores = session.scores[1]
    assert np.all(scores[[6, 7, 9, 10]] <= 0)  # the model says "absent" next to the prompt ...
    assert np.isnan(scores[[0, 1, 2, 3, 13, 14, 15]]).all()  # ... so the far slices are never visited
