"""Inference backends for LiteMedSAM: the exported encoder/decoder run by ONNX Runtime or OpenVINO.

Both run on the CPU. What each supports for the encoder (the decoder always runs fp32):
- ONNX Runtime: "fp32", "int8" (dynamic int8 MatMuls). Its CPU provider has no fast bf16.
- OpenVINO: "fp32" (f32 inference hint), "bf16" (bf16 hint: needs native bf16 units).
OpenVINO on the int8 ONNX graph is slower than its fp32 (measured), so it is not offered.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from sam2core.errors import Sam2CoreError
from sam2core.lite_medsam.engines.export import DECODER_FP32, ENCODER_FP32, ENCODER_INT8, ExportCache

ENGINE_PRECISIONS = {
    "torch": ("fp32", "bf16"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16"),
}
PARTS = ("encoder", "decoder")
INSTALL_HINT = "pip install 'napari-sam2[fast]' (or: pip install onnxruntime openvino onnx)"


class EngineError(Sam2CoreError, ValueError):
    """An engine/precision that cannot be used here: not installed, not supported, wrong device."""


def engine_version(engine: str) -> Optional[str]:
    """Installed version of an engine package, None when it cannot be imported (or is blocked)."""
    if engine == "torch":
        return torch.__version__
    try:
        if engine == "onnxruntime":
            import onnxruntime

            return onnxruntime.__version__
        if engine == "openvino":
            import openvino

            return openvino.__version__
    except ImportError:
        return None
    raise EngineError(f"unknown engine {engine!r}; expected one of {sorted(ENGINE_PRECISIONS)}")


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


class OnnxRuntimeBackend:
    """Encoder and decoder as ONNX Runtime CPU sessions (thread-safe: `run` may be called concurrently)."""

    name = "onnxruntime"

    def __init__(self, cache: ExportCache, precision: str = "fp32", num_threads: Optional[int] = None,
                 parts: tuple[str, ...] = PARTS) -> None:
        import onnxruntime as ort

        if precision not in ENGINE_PRECISIONS[self.name]:
            raise EngineError(f"onnxruntime runs the encoder in {ENGINE_PRECISIONS[self.name]}, not {precision!r}")
        self.precision = precision
        threads = int(num_threads or torch.get_num_threads())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._options = options
        encoder_file = ENCODER_INT8 if precision == "int8" else ENCODER_FP32
        self.encoder = _load_or_rebuild(cache, encoder_file, self._session) if "encoder" in parts else None
        self.decoder = _load_or_rebuild(cache, DECODER_FP32, self._session) if "decoder" in parts else None

    def _session(self, path: Path):
        import onnxruntime as ort

        return ort.InferenceSession(str(path), self._options, providers=["CPUExecutionProvider"])

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        (embedding,) = self.encoder.run(None, {"image": _numpy(images)})
        return torch.from_numpy(embedding)

    def decode(self, features: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor):
        masks, iou = self.decoder.run(None, {"features": _numpy(features), "sparse": _numpy(sparse),
                                             "dense": _numpy(dense)})
        return torch.from_numpy(masks).to(features.device), torch.from_numpy(iou).to(features.device)


class OpenVinoBackend:
    """Encoder and decoder compiled by OpenVINO for the CPU (compiled blobs cached beside the graphs)."""

    name = "openvino"

    def __init__(self, cache: ExportCache, precision: str = "fp32", num_threads: Optional[int] = None,
                 parts: tuple[str, ...] = PARTS) -> None:
        import openvino as ov

        if precision not in ENGINE_PRECISIONS[self.name]:
            raise EngineError(f"openvino runs the encoder in {ENGINE_PRECISIONS[self.name]}, not {precision!r}")
        self.precision = precision
        self._core = ov.Core()
        threads = int(num_threads or torch.get_num_threads())

        def compile_with(hint: str):
            # One blob folder per precision hint: OpenVINO's blob key ignores the hint, and a
            # bf16 compile that loads an f32 blob of the same graph crashes (seen with 2026.4).
            blob_dir = cache.dir / f"openvino-{ov.__version__}" / hint
            blob_dir.mkdir(parents=True, exist_ok=True)
            config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                      "INFERENCE_PRECISION_HINT": hint, "CACHE_DIR": str(blob_dir)}
            return lambda path: self._core.compile_model(str(path), "CPU", config)

        self.encoder = self.decoder = self._encoder_request = self._decoder_request = None
        if "encoder" in parts:
            self.encoder = _load_or_rebuild(cache, ENCODER_FP32, compile_with("bf16" if precision == "bf16" else "f32"))
            self._encoder_request = self.encoder.create_infer_request()
        if "decoder" in parts:
            self.decoder = _load_or_rebuild(cache, DECODER_FP32, compile_with("f32"))
            self._decoder_request = self.decoder.create_infer_request()
        self._lock = threading.Lock()  # infer requests are not thread-safe: one call at a time

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        with self._lock:
            self._encoder_request.infer({"image": _numpy(images)})
            return torch.from_numpy(self._encoder_request.get_output_tensor(0).data.copy())

    def decode(self, features: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor):
        with self._lock:
            request = self._decoder_request
            request.infer({"features": _numpy(features), "sparse": _numpy(sparse), "dense": _numpy(dense)})
            masks = torch.from_numpy(request.get_output_tensor(0).data.copy())
            iou = torch.from_numpy(request.get_output_tensor(1).data.copy())
        return masks.to(features.device), iou.to(features.device)


class SplitBackend:
    """The encoder of one backend and the mask decoder of another (each part on the engine fastest for it).

    `name` and `precision` are the encoder's (they decide what the embeddings are, e.g. for the
    embedding store); `decoder_name` says what decodes.
    """

    def __init__(self, encoder_backend, decoder_backend) -> None:
        self.encoder_backend = encoder_backend
        self.decoder_backend = decoder_backend
        self.name = encoder_backend.name
        self.precision = encoder_backend.precision
        self.decoder_name = decoder_backend.name

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder_backend.encode(images)

    def decode(self, features: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor):
        return self.decoder_backend.decode(features, sparse, dense)


def _load_or_rebuild(cache: ExportCache, name: str, load):
    """Load an exported file with `load(path)`; if the runtime rejects it, rebuild it once and retry."""
    try:
        return load(cache.path(name))
    except EngineError:
        raise
    except Exception:  # a file the runtime cannot read although its hash matched: rebuild it
        return load(cache.path(name, force=True))


BACKENDS = {"onnxruntime": OnnxRuntimeBackend, "openvino": OpenVinoBackend}


def make_backend(engine: str, cache: ExportCache, precision: str, num_threads: Optional[int] = None,
                 parts: tuple[str, ...] = PARTS):
    """The backend object for `engine` at `precision` (EngineError when not installed or not supported);
    `parts` limits what it loads ("encoder", "decoder")."""
    if engine not in BACKENDS:
        raise EngineError(f"no exported backend for engine {engine!r}; expected one of {sorted(BACKENDS)}")
    if engine_version(engine) is None:
        raise EngineError(f"engine {engine!r} is not installed. Install it with: {INSTALL_HINT}")
    return BACKENDS[engine](cache, precision, num_threads, parts)
