"""CPU inference engines for LiteMedSAM: ONNX Runtime and OpenVINO, chosen by measurement.

    model = load_lite_medsam(device="cpu")
    info = configure_engine(model, engine="auto", precision="auto")  # {"engine": ..., "precision": ...}

The encoder and mask decoder are exported from our modules to ONNX once per weights and
cached (`export.ExportCache`); `configure_engine` attaches a backend to the model, which keeps
its whole image-model API (`encode_image`, `decode`, `decode_batch`). The engine packages
are the optional extra `napari-sam2[fast]`; without them "auto" is torch.
"""

from sam2core.lite_medsam.engines.export import ExportCache, default_cache_root
from sam2core.lite_medsam.engines.hardware import cpu_model_and_flags, native_bf16
from sam2core.lite_medsam.engines.runtimes import ENGINE_PRECISIONS, EngineError, engine_version
from sam2core.lite_medsam.engines.select import (
    ENGINES,
    PRECISION_CHOICES,
    candidates,
    configure_engine,
    installed_engines,
)

__all__ = [
    "ENGINES",
    "ENGINE_PRECISIONS",
    "PRECISION_CHOICES",
    "EngineError",
    "ExportCache",
    "candidates",
    "configure_engine",
    "cpu_model_and_flags",
    "default_cache_root",
    "engine_version",
    "installed_engines",
    "native_bf16",
]
