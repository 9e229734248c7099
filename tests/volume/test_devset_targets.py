"""One-box propagation on dev-set rows of four kinds (CT/MR organ, CT/MR lesion): Dice and extent targets.

Each row is prompted as a user would (one tight box from the reference label on the middle
slice of the structure, default settings) and propagated by `volume.Session` with the
default carrying rule. The targets sit a little below what `benchmarks/eval_devset.py`
measures, so a regression of the rule (a leak, a missed stop) fails here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# row -> (minimum 3D Dice, maximum error at either end of the slice range)
TARGETS = {
    "totalseg_ct_sm/spleen": (0.90, 2),  # measured 0.958, ends +1/+0 (ONNX Runtime fp32)
    "totalseg_mr_sm/liver": (0.82, 2),  # measured 0.890, ends +0/+0
    "ctlesion_000001_02_01/lesion": (0.80, 2),  # measured 0.880, ends +1/-1
    "sts002_mr/sarcoma_gtv": (0.76, 2),  # measured 0.817, ends +0/-2 (0.811, +2/-3 before keep_ends; 0.42 for the old rule)
}


@pytest.fixture(scope="module")
def devset():
    from tests.conftest import shared_data_dir

    path = shared_data_dir() / "devset"
    if not (path / "cases.csv").is_file():
        pytest.skip(f"dev set not found at {path} (set NAPARI_SAM2_SHARED_DATA)")
    sys.path.insert(0, str(REPO / "benchmarks"))
    import devset as module

    return module, path


@pytest.fixture(scope="module")
def model():
    from sam2core.build import load_model

    return load_model("lite_medsam", device="cpu")


@pytest.mark.parametrize("row", list(TARGETS))
def test_one_box_reaches_dice_and_stops_near_the_ends(devset, model, row):
    from volume import Session, dice

    module, path = devset
    (item,) = module.load_cases(path, [row])
    scan, target = module.read_case(item)
    session = Session(scan, model)
    axis = session.slicing_axis
    s = module.protocol_slices(target, axis, "one-box")[0]
    session.add_box(1, s, module.box_on_slice(target, axis, s))
    pred = session.propagate() == 1
    min_dice, max_end_error = TARGETS[row]
    value = dice(pred, target)
    held, got = module.slices_holding(target, axis), module.slices_holding(pred, axis)
    errors = (abs(int(got[0]) - int(held[0])), abs(int(got[-1]) - int(held[-1])))
    assert value >= min_dice, f"{row}: 3D Dice {value:.3f} < {min_dice}"
    assert max(errors) <= max_end_error, f"{row}: predicted {got[0]}-{got[-1]} vs reference {held[0]}-{held[-1]}"
