"""ONNX graphs of our LiteMedSAM encoder and mask decoder, exported once and cached on disk.

Layout: `<cache>/engines/lite_medsam/<weights hash>-x<EXPORT_VERSION>-torch<version>/` holds
`encoder.fp32.onnx`, `decoder.fp32.onnx`, `encoder.int8.onnx` (dynamic int8 MatMuls, made from
the fp32 encoder by onnxruntime's quantizer) and `files.json` (sha256 of each file at its
creation). A file that is missing, or whose sha256 differs from the one recorded, is rebuilt;
building happens under a file lock so that two processes never write the same file.

The graphs are exported from our own modules (`LiteMedSAM.image_encoder`,
`LiteMedSAM.mask_decoder`, the latter with its attention factored: `factored_decoder`). The
decoder graph takes prompt embeddings, not prompts: the prompt encoder (cheap) stays in
PyTorch, so every prompt kind (points, box, mask) works, with any number of prompts `B` and
prompt tokens `N` (dynamic axes).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from sam2core.lite_medsam.engines.factored_decoder import FactoredDecoderGraph

EXPORT_VERSION = 3  # bump when the exported graphs change (2: the factored decoder graph; 3: its first layer broadcast)
ONNX_OPSET = 17
ENCODER_FP32 = "encoder.fp32.onnx"
DECODER_FP32 = "decoder.fp32.onnx"
ENCODER_INT8 = "encoder.int8.onnx"
FILES_MANIFEST = "files.json"


class EncoderGraph(nn.Module):
    """`(1, 3, 256, 256)` image → `(1, 256, 64, 64)` embedding (our TinyViT, default memory layout)."""

    def __init__(self, image_encoder: nn.Module) -> None:
        super().__init__()
        self.image_encoder = image_encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(image)


def weights_key(model: nn.Module) -> str:
    """sha256 (16 hex) of every parameter and buffer of `model`, in state-dict order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_root() -> Path:
    """`<model store cache dir>/engines` (the store's `NAPARI_SAM2_HOME` applies)."""
    from sam2core.store.cache import cache_dir

    return cache_dir() / "engines"


_EXPORT_FOLDER = re.compile(r"^[0-9a-f]{16}-x\d+-torch[\w.]+$")  # `<weights hash>-x<version>-torch<version>`


def export_folders(root: Optional[Path] = None) -> list[Path]:
    """The exported-graph folders under `root` (default: the engine cache), one per weights × export/torch version."""
    base = Path(root if root is not None else default_cache_root()) / "lite_medsam"
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and _EXPORT_FOLDER.match(p.name))


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder`."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def clear_exports(root: Optional[Path] = None) -> tuple[int, int]:
    """Delete the exported graphs and compiled blobs (rebuilt on next use); returns (folders, bytes) freed.

    Only folders named as `ExportCache` names them are removed; the engine choice file stays.
    """
    folders = export_folders(root)
    freed = sum(folder_bytes(f) for f in folders)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return len(folders), freed


def _export(module: nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str],
            dynamic_axes: Optional[dict] = None) -> None:
    """torch.onnx.export (TorchScript exporter: no extra dependency) with its deprecation noise silenced."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=ONNX_OPSET,
                          input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes,
                          do_constant_folding=True)


def export_encoder(model: nn.Module, path: Path) -> None:
    """Export `model.image_encoder` (fp32, cpu, default layout) to ONNX at `path`."""
    encoder = copy.deepcopy(model.image_encoder).to("cpu", torch.float32)
    encoder = encoder.to(memory_format=torch.contiguous_format).eval()
    size = int(model.image_size)
    _export(EncoderGraph(encoder), (torch.zeros(1, 3, size, size),), path, ["image"], ["embedding"])


def export_decoder(model: nn.Module, path: Path) -> None:
    """Export `model.mask_decoder` (as `FactoredDecoderGraph`: the same function, about half the
    multiply-adds) with the fixed image positional encoding; B and N dynamic."""
    decoder = copy.deepcopy(model.mask_decoder).to("cpu", torch.float32).eval()
    with torch.no_grad():
        image_pe = model.prompt_encoder.get_dense_pe().to("cpu", torch.float32)
    channels, h, w = image_pe.shape[1:]
    # Trace with B, N and the dense batch all different so that no two axes get tied together.
    features = torch.randn(1, channels, h, w)
    sparse = torch.randn(2, 3, channels)
    dense = torch.randn(1, channels, h, w)
    _export(FactoredDecoderGraph(decoder, image_pe), (features, sparse, dense), path,
            ["features", "sparse", "dense"], ["masks", "iou"],
            dynamic_axes={"sparse": {0: "prompts", 1: "tokens"}, "dense": {0: "dense_batch"},
                          "masks": {0: "prompts"}, "iou": {0: "prompts"}})


def quantize_encoder_int8(fp32_path: Path, path: Path) -> None:
    """Dynamic int8 quantization of the encoder's MatMuls (weights int8 per channel, activations per call)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import logging

    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the quantizer logs a "run pre-processing first" hint at WARNING
    try:
        quantize_dynamic(str(fp32_path), str(path), op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8)
    finally:
        logger.setLevel(level)


class ExportCache:
    """The exported files of one model's weights under `root` (see the module docstring)."""

    def __init__(self, model: nn.Module, root: Optional[Path] = None) -> None:
        self.model = model
        key = f"{weights_key(model)}-x{EXPORT_VERSION}-torch{torch.__version__.split('+')[0]}"
        self.dir = Path(root if root is not None else default_cache_root()) / "lite_medsam" / key
        self.builds = 0  # files (re)built by this object: lets tests tell a hit from a rebuild
        self._builders: dict[str, Callable[[Path], None]] = {
            ENCODER_FP32: lambda p: export_encoder(self.model, p),
            DECODER_FP32: lambda p: export_decoder(self.model, p),
            ENCODER_INT8: lambda p: quantize_encoder_int8(self.path(ENCODER_FP32), p),
        }

    def _read_manifest(self) -> dict:
        try:
            data = json.loads((self.dir / FILES_MANIFEST).read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_manifest(self, data: dict) -> None:
        tmp = self.dir / f"{FILES_MANIFEST}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.dir / FILES_MANIFEST)

    def is_valid(self, name: str) -> bool:
        """The file exists and has the sha256 recorded when it was built."""
        path = self.dir / name
        expected = self._read_manifest().get(name)
        return path.is_file() and expected is not None and file_sha256(path) == expected

    def path(self, name: str, force: bool = False) -> Path:
        """Path of a valid exported file `name`, (re)building it when missing, corrupt or `force`."""
        if name not in self._builders:
            raise KeyError(f"unknown exported file {name!r}; known: {sorted(self._builders)}")
        path = self.dir / name
        if not force and self.is_valid(name):
            return path
        from filelock import FileLock

        self.dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.dir / ".lock")):
            if not force and self.is_valid(name):  # another process built it meanwhile
                return path
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.onnx")
            try:
                self._builders[name](tmp)
                digest = file_sha256(tmp)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            manifest = self._read_manifest()
            manifest[name] = digest
            self._write_manifest(manifest)
            self.builds += 1
        return path
