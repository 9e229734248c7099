"""The model panel's engine setting: part of the choice, passed to sam2core.load_model for LiteMedSAM."""

from __future__ import annotations


def test_engine_setting_is_in_the_choice_and_a_change_needs_a_reload(make_napari_viewer, qtbot):
    from napari_sam2.widget.model_panel import ModelPanel

    make_napari_viewer()
    panel = ModelPanel()
    qtbot.addWidget(panel)
    assert (panel.choice().engine, panel.choice().precision) == ("auto", "auto")
    panel.engine_combo.setCurrentText("onnxruntime")
    panel.model, panel.loaded_choice = object(), panel.choice()
    assert panel.is_ready()
    panel.engine_combo.setCurrentText("torch")
    assert not panel.is_ready()


def test_load_model_passes_engine_and_precision_for_lite_medsam_only(monkeypatch):
    import sam2core
    from napari_sam2.widget.worker import ModelChoice, load_model

    calls = []
    monkeypatch.setattr(sam2core, "load_model", lambda name, **options: calls.append((name, options)))
    load_model(ModelChoice("lite_medsam", engine="openvino", precision="bf16"))
    load_model(ModelChoice("lite_medsam", engine="torch", precision="fp16"))  # fp16: run-time autocast only
    load_model(ModelChoice("sam2.1_hiera_tiny", engine="openvino", precision="bf16"))
    assert calls[0][1]["engine"] == "openvino" and calls[0][1]["precision"] == "bf16"
    assert calls[1][1]["precision"] == "fp32"
    assert "engine" not in calls[2][1] and "precision" not in calls[2][1]
