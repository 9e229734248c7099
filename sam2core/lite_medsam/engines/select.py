"""Choosing what runs LiteMedSAM: engine × encoder precision, by measurement on this machine.

`engine="auto"` times every candidate (installed engine × allowed precision) on a synthetic
slice (one encode, and one decode of 3 boxes, timed apart) in interleaved rounds (each round
times every candidate once, so a busy spell on a shared machine slows them alike; best of
MEASURE_ROUNDS) and keeps what takes least per slice: torch for both parts, or the fastest
exported encoder with the fastest exported decoder, which may be another engine's
(`SplitBackend`: on some CPUs OpenVINO encodes faster and ONNX Runtime decodes faster). The
choice is cached per machine (CPU model and flags, threads, engine versions, measurement
version) in `<cache>/engines/auto_choice.json`, so the measurement runs once per machine.
`precision="auto"` is fp32; bf16 and int8 are opt-in (`allowed_precisions`).
On CUDA/MPS the engine is always torch (the engines here are CPU builds).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional, Union

import torch

from sam2core.lite_medsam.engines.export import ExportCache, default_cache_root
from sam2core.lite_medsam.engines.hardware import machine_key, native_bf16
from sam2core.lite_medsam.engines.runtimes import (ENGINE_PRECISIONS, INSTALL_HINT, EngineError, SplitBackend,
                                                   engine_version, make_backend)

ENGINES = ("auto", "torch", "onnxruntime", "openvino")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "int8")
AUTO_CHOICE_FILE = "auto_choice.json"
MEASURE_BOXES = 3  # the carrying predictor decodes 3 candidate boxes per object per slice
MEASURE_ROUNDS = 3  # interleaved rounds over the candidates; each candidate's best round counts
MEASURE_VERSION = 5  # part of the cache key: choices measured by an older method are measured again


def installed_engines() -> list[str]:
    """Engines usable here: torch always, then those whose package imports."""
    return ["torch"] + [e for e in ("onnxruntime", "openvino") if engine_version(e) is not None]


def allowed_precisions(precision: str, device: torch.device) -> list[str]:
    """Precisions `precision` stands for on `device`: auto is fp32 only.

    bf16 (even where the CPU computes it natively) and int8 are opt-in: a 2D mask barely changes
    (99.98 % equal pixels), but carried through a volume the small differences grow — on the dev
    set bf16 cost 0.017 mean Dice and up to 0.26 on one row (docs/propagation.md).
    """
    if precision not in PRECISION_CHOICES:
        raise EngineError(f"unknown precision {precision!r}; expected one of {PRECISION_CHOICES}")
    if precision != "auto":
        return [precision]
    return ["fp32"]


def candidates(engine: str, precision: str, device: torch.device) -> list[tuple[str, str]]:
    """(engine, precision) pairs that `engine`/`precision` may resolve to on `device`, torch first."""
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    precisions = allowed_precisions(precision, device)
    if device.type != "cpu":
        if engine not in ("auto", "torch"):
            raise EngineError(f"engine {engine!r} runs on the CPU only; use device='cpu' or engine='torch' "
                              f"(or 'auto') on {device.type}")
        usable = [p for p in precisions if p in ENGINE_PRECISIONS["torch"]]
        if not usable:
            raise EngineError(f"precision {precision!r} needs a CPU engine (onnxruntime); on {device.type} "
                              f"use precision fp32 or bf16")
        return [("torch", usable[-1])]  # on a GPU: the precision asked for (auto: fp32)
    engines = installed_engines() if engine == "auto" else [engine]
    if engine != "auto" and engine_version(engine) is None:
        raise EngineError(f"engine {engine!r} is not installed. Install it with: {INSTALL_HINT}")
    pairs = [(e, p) for e in engines for p in precisions if p in ENGINE_PRECISIONS[e]]
    if not pairs:
        which = [e for e, ps in ENGINE_PRECISIONS.items() if precision in ps]
        raise EngineError(f"precision {precision!r} is not available with engine {engine!r} here "
                          f"(installed: {', '.join(installed_engines())}); it needs one of: {', '.join(which)}. "
                          f"Install the engines with: {INSTALL_HINT}")
    return pairs


def _choice_key(pairs: list[tuple[str, str]]) -> str:
    versions = ",".join(f"{e}={engine_version(e)}" for e in sorted({e for e, _ in pairs}))
    return f"{machine_key()}|{versions}|m{MEASURE_VERSION}|" + ";".join(f"{e}:{p}" for e, p in pairs)


def _read_choices(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def seconds_per_part(model, warmup: bool = True) -> tuple[float, float]:
    """(encode, decode) seconds: one encode, and one decode of MEASURE_BOXES boxes, of a fixed synthetic 256² slice."""
    from sam2core.lite_medsam.preprocess import frame_geometry
    from sam2core.lite_medsam.model import ImageEmbedding

    generator = torch.Generator().manual_seed(0)
    size = int(model.image_size)
    image = torch.rand(1, 3, size, size, generator=generator).to(model.device)
    boxes = torch.tensor([[60.0, 70.0, 150.0, 170.0], [55.0, 65.0, 155.0, 175.0], [50.0, 60.0, 160.0, 180.0]])
    geometry = frame_geometry((size, size), size, "stretch")
    if warmup:  # first calls allocate, compile kernels
        model.decode_batch(ImageEmbedding(model.encode_input(image), geometry), boxes[:MEASURE_BOXES])
    start = time.perf_counter()
    embedding = ImageEmbedding(model.encode_input(image), geometry)
    encoded = time.perf_counter()
    model.decode_batch(embedding, boxes[:MEASURE_BOXES])
    return encoded - start, time.perf_counter() - encoded


def _apply(model, engine: str, precision: str, cache: ExportCache, decoder: Optional[str] = None) -> None:
    """Set `model` up to run with (engine, precision), its decoder on `decoder` (None: the same engine)."""
    if engine == "torch":
        model.set_backend(None)
        model.set_precision(precision)
        return
    if decoder is None or decoder == engine:
        model.set_backend(make_backend(engine, cache, precision))
    else:
        model.set_backend(SplitBackend(make_backend(engine, cache, precision, parts=("encoder",)),
                                       make_backend(decoder, cache, "fp32", parts=("decoder",))))
    model.set_precision("fp32")  # PyTorch autocast is not used under a backend


def _use(model, pair: tuple[str, str], backend) -> None:
    """Run `model` with an already built backend (None: torch) for `pair` = (engine, precision)."""
    model.set_backend(backend)
    model.set_precision(pair[1] if pair[0] == "torch" else "fp32")


def _measure(model, backends: dict) -> tuple[dict[str, float], dict[str, float]]:
    """ms to encode per (engine, precision) and ms to decode per engine: best of MEASURE_ROUNDS interleaved rounds."""
    encode_ms: dict[str, float] = {}
    decode_ms: dict[str, float] = {}
    for round_index in range(MEASURE_ROUNDS):
        for pair, backend in backends.items():
            _use(model, pair, backend)
            encode_s, decode_s = seconds_per_part(model, warmup=round_index == 0)
            key = f"{pair[0]}:{pair[1]}"
            encode_ms[key] = min(encode_ms.get(key, float("inf")), 1e3 * encode_s)
            decode_ms[pair[0]] = min(decode_ms.get(pair[0], float("inf")), 1e3 * decode_s)  # decoders are fp32
    return encode_ms, decode_ms


def _choose(encode_ms: dict[str, float], decode_ms: dict[str, float]) -> tuple[tuple[str, str], str]:
    """The (engine, precision) to encode with and the engine to decode with: the least ms per slice.

    Torch runs both parts or neither (a split needs exported graphs); among the exported engines
    the fastest encoder is paired with the fastest decoder, whichever engines those are.
    """
    options: dict[tuple[tuple[str, str], str], float] = {}
    exported_decoders = {e: ms for e, ms in decode_ms.items() if e != "torch"}
    for key, ms in encode_ms.items():
        pair = tuple(key.split(":"))
        if pair[0] == "torch":
            options[(pair, "torch")] = ms + decode_ms["torch"]
        elif exported_decoders:
            decoder = min(exported_decoders, key=exported_decoders.get)
            options[(pair, decoder)] = ms + exported_decoders[decoder]
    return min(options, key=options.get)


def configure_engine(model, engine: str = "auto", precision: str = "auto",
                     cache_root: Optional[Union[str, Path]] = None, remeasure: bool = False) -> dict:
    """Make `model` (a loaded LiteMedSAM) run with `engine` at `precision`; returns what was chosen.

    The result dict has `engine`, `precision` (the encoder's) and `decoder_engine`; when "auto"
    measured or read a choice, also `encode_ms` per candidate (`"engine:precision"` → ms),
    `decode_ms` per engine, `ms_per_slice` per candidate (its encode + its own engine's decode)
    and `cached` (True when read).
    """
    device = model.device
    pairs = candidates(engine, precision, device)
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    cache = ExportCache(model, root)
    if len(pairs) == 1:
        _apply(model, *pairs[0], cache)
        return {"engine": pairs[0][0], "precision": pairs[0][1], "decoder_engine": pairs[0][0]}

    choices_path = root / AUTO_CHOICE_FILE
    key = _choice_key(pairs)
    known = _read_choices(choices_path).get(key)
    engines = {e for e, _ in pairs}
    if (not remeasure and isinstance(known, dict) and tuple(known.get("choice", ())) in pairs
            and known.get("decoder") in engines):
        chosen, decoder = tuple(known["choice"]), known["decoder"]
        _apply(model, *chosen, cache, decoder=decoder)
        return {"engine": chosen[0], "precision": chosen[1], "decoder_engine": decoder,
                "encode_ms": known.get("encode_ms", {}), "decode_ms": known.get("decode_ms", {}),
                "ms_per_slice": known.get("ms_per_slice", {}), "cached": True}

    backends = {}
    for pair in pairs:
        try:
            _apply(model, *pair, cache)
        except EngineError:
            continue
        backends[pair] = model.backend
    encode_ms, decode_ms = _measure(model, backends)
    chosen, decoder = _choose(encode_ms, decode_ms)
    if decoder == chosen[0]:
        _use(model, chosen, backends[chosen])
    else:  # as from the cached choice: one part of each engine loaded
        _apply(model, *chosen, cache, decoder=decoder)
    per_slice = {k: encode_ms[k] + decode_ms[k.split(":")[0]] for k in encode_ms}
    root.mkdir(parents=True, exist_ok=True)
    data = _read_choices(choices_path)
    data[key] = {"choice": list(chosen), "decoder": decoder,
                 "encode_ms": {k: round(v, 1) for k, v in encode_ms.items()},
                 "decode_ms": {k: round(v, 1) for k, v in decode_ms.items()},
                 "ms_per_slice": {k: round(v, 1) for k, v in per_slice.items()}}
    tmp = choices_path.with_name(f"{AUTO_CHOICE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, choices_path)
    return {"engine": chosen[0], "precision": chosen[1], "decoder_engine": decoder, "encode_ms": encode_ms,
            "decode_ms": decode_ms, "ms_per_slice": per_slice, "cached": False}
