"""Image embeddings kept on disk, so a scan encoded once is never encoded again (same or a later process).

Layout under `root` (default `<cache dir>/embeddings`): one folder per *group* (the slices of
one scan in one window and axis, as one predictor state saw them), holding a zarr array
`embeddings.zarr` of shape `(num_frames, *embedding_shape)` float16, one chunk per slice, and
`slots/<slice>.json` written after its chunk (frame key, blake2b checksum of the stored bytes,
the embedding's small non-tensor fields). A slice is found by its *frame key*: a hash of the
frame's bytes (the windowed frame already encodes scan, window and axis) and of the model's
signature (name, weights hash, engine, precision), through an index of every slot file.

Nothing on disk is trusted: a slot without its file, a chunk whose checksum differs, an
unreadable array or slot file is dropped and its slice encoded again (and rewritten). The
store keeps no embedding in RAM (the predictor's LRU does); a size limit evicts whole groups,
least recently used first. Safe to share between threads (one lock).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import os
import shutil
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

DEFAULT_MAX_BYTES = 8 * 1024**3
MAX_BYTES_ENV = "NAPARI_SAM2_EMBEDDINGS_MAX_GB"
ROOT_ENV = "NAPARI_SAM2_EMBEDDINGS_DIR"
_ARRAY = "embeddings.zarr"
_SLOTS = "slots"
_GROUP_FILE = "group.json"
_USED_FILE = "last_used"


class EmbeddingStoreError(Exception):
    """The store folder cannot be used (not a folder, not writable)."""


def default_root() -> Path:
    """`$NAPARI_SAM2_EMBEDDINGS_DIR`, else `<napari-sam2 cache dir>/embeddings`."""
    from sam2core.store.cache import cache_dir

    if os.environ.get(ROOT_ENV, "").strip():
        return Path(os.environ[ROOT_ENV].strip())

    return cache_dir() / "embeddings"


def default_max_bytes() -> int:
    value = os.environ.get(MAX_BYTES_ENV, "").strip()
    try:
        return int(float(value) * 1024**3) if value else DEFAULT_MAX_BYTES
    except ValueError:
        return DEFAULT_MAX_BYTES


# ----------------------------------------------------------------- signatures and keys
def _digest(*parts: Union[bytes, str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()


_WEIGHTS_HASHES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> (tensor versions, hash)
_WEIGHTS_HASHES_LOCK = threading.Lock()


def weights_hash(model: Any) -> str:
    """A hash of the model's parameters and buffers (or of its plain attributes when it has none).

    Remembered per model while no tensor is replaced or changed in place (name, storage, dtype,
    shape, device and autograd version counter of every tensor are the key), so a new session
    does not hash 40 MB of weights again. Writes through `tensor.data` bypass the version
    counter: after such a write, call `forget_weights_hash(model)`.
    """
    state_dict = getattr(model, "state_dict", None)
    if callable(state_dict):
        tensors = sorted(state_dict().items())
        versions = tuple((name, t.data_ptr(), str(t.dtype), tuple(t.shape), str(t.device), t._version)
                         for name, t in tensors)
        with _WEIGHTS_HASHES_LOCK, contextlib.suppress(TypeError):  # not weakly referenceable: hashed every time
            known = _WEIGHTS_HASHES.get(model)
            if known is not None and known[0] == versions:
                return known[1]
        h = hashlib.blake2b(digest_size=16)
        for name, tensor in tensors:
            h.update(name.encode())
            h.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        with _WEIGHTS_HASHES_LOCK, contextlib.suppress(TypeError):
            _WEIGHTS_HASHES[model] = (versions, h.hexdigest())
        return h.hexdigest()
    plain = {k: v for k, v in sorted(vars(model).items()) if isinstance(v, (int, float, str, bool))}
    return _digest(json.dumps(plain, sort_keys=True))


def forget_weights_hash(model: Any) -> None:
    """Drop the remembered weights hash of `model` (after writing its weights through `.data`)."""
    with _WEIGHTS_HASHES_LOCK, contextlib.suppress(TypeError):
        _WEIGHTS_HASHES.pop(model, None)


def model_signature(model: Any) -> str:
    """What makes two models' embeddings interchangeable: `model.signature` if it has one, else
    class, weights hash, engine and encoder precision."""
    signature = getattr(model, "signature", None)
    if callable(signature):
        signature = signature()
    if isinstance(signature, str) and signature:
        return signature
    engine = getattr(model, "engine", "torch")
    precision = getattr(model, "engine_precision", getattr(model, "precision", ""))
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}|weights={weights_hash(model)}|engine={engine}|precision={precision}"


def frame_key(signature: str, frame: Any) -> str:
    """Key of one frame's embedding under one model."""
    array = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    array = np.ascontiguousarray(array)
    return _digest(signature, str(array.dtype), repr(array.shape), array.tobytes())


# ---------------------------------------------------------------------- codec
def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, (tuple, list)):
        return [_to_json(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in an embedding's metadata")


def _resolve_class(name: str) -> type:
    """A dataclass of sam2core named in a slot file (nothing else is ever rebuilt from disk)."""
    module, _, qualname = str(name).partition(":")
    if not module.startswith("sam2core."):
        raise ValueError(f"unexpected class {name!r} in an embedding slot")
    cls = getattr(importlib.import_module(module), qualname)
    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"{name!r} is not a dataclass")
    return cls


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and "__dataclass__" in value:
        cls = _resolve_class(value["__dataclass__"])
        return cls(**{k: _from_json(v) for k, v in value["fields"].items()})
    if isinstance(value, list):
        return tuple(_from_json(v) for v in value)
    return value


def split_embedding(embedding: Any) -> tuple[torch.Tensor, dict]:
    """An embedding → its one tensor and a JSON-able description of the rest.

    A tensor, or a dataclass with exactly one tensor field (LiteMedSAM's `ImageEmbedding`).
    """
    if isinstance(embedding, torch.Tensor):
        return embedding, {"kind": "tensor", "dtype": str(embedding.dtype).replace("torch.", "")}
    if dataclasses.is_dataclass(embedding):
        tensors = [f.name for f in dataclasses.fields(embedding) if isinstance(getattr(embedding, f.name), torch.Tensor)]
        if len(tensors) == 1:
            tensor = getattr(embedding, tensors[0])
            cls = type(embedding)
            if not cls.__module__.startswith("sam2core."):
                raise TypeError(f"embeddings of {cls.__qualname__} cannot be stored (not a sam2core class)")
            rest = {f.name: _to_json(getattr(embedding, f.name)) for f in dataclasses.fields(embedding)
                    if f.name != tensors[0]}
            return tensor, {"kind": "dataclass", "class": f"{cls.__module__}:{cls.__qualname__}",
                            "tensor_field": tensors[0], "fields": rest,
                            "dtype": str(tensor.dtype).replace("torch.", "")}
    raise TypeError(f"cannot store an embedding of type {type(embedding).__name__}")


def join_embedding(tensor: torch.Tensor, meta: dict) -> Any:
    """Inverse of `split_embedding` (the tensor comes back in its original dtype)."""
    tensor = tensor.to(getattr(torch, meta.get("dtype", "float32")))
    if meta.get("kind") == "tensor":
        return tensor
    fields = {k: _from_json(v) for k, v in meta["fields"].items()}
    fields[meta["tensor_field"]] = tensor
    return _resolve_class(meta["class"])(**fields)


# ----------------------------------------------------------------------- store
@dataclass(frozen=True)
class StoreInfo:
    """What the store holds: folder, groups (scans), slices and bytes on disk."""

    root: Path
    groups: int
    slices: int
    bytes: int
    max_bytes: int


def _folder_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, name))
            except OSError:
                pass
    return total


class EmbeddingStore:
    """Content-addressed embeddings on disk (see the module notes). `get`/`put` by frame key."""

    def __init__(self, root: Union[str, Path, None] = None, max_bytes: Optional[int] = None) -> None:
        import zarr  # noqa: F401  (imported when the store opens, ~0.25 s, not on the first prompt's encode)

        self.root = Path(root) if root is not None else default_root()
        self.max_bytes = int(max_bytes) if max_bytes is not None else default_max_bytes()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddingStoreError(f"cannot create the embedding store folder {self.root}: {exc}; "
                                      f"choose another folder (embedding_store=PATH) or None") from exc
        self._lock = threading.RLock()
        self._index: dict[str, tuple[str, int]] = {}  # frame key -> (group id, slot)
        self._arrays: dict[str, Any] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.rebuilt = 0  # slots found damaged and dropped
        self.writes = 0
        self._scan()

    # ---- index
    def _scan(self) -> None:
        """Index every slot file; drop groups whose description is unreadable."""
        with self._lock:
            self._index.clear()
            self._arrays.clear()
            for group in sorted(p for p in self.root.iterdir() if p.is_dir()):
                try:
                    json.loads((group / _GROUP_FILE).read_text())
                except (OSError, ValueError):
                    self.rebuilt += 1
                    shutil.rmtree(group, ignore_errors=True)
                    continue
                for slot_file in (group / _SLOTS).glob("*.json"):
                    try:
                        slot = json.loads(slot_file.read_text())
                        self._index[str(slot["key"])] = (group.name, int(slot_file.stem))
                    except (OSError, ValueError, KeyError, TypeError):
                        self.rebuilt += 1
                        slot_file.unlink(missing_ok=True)
            self._bytes = _folder_bytes(self.root)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._index

    # ---- groups
    def _array(self, group: str, create: Optional[tuple] = None) -> Any:
        import zarr

        if group in self._arrays:
            return self._arrays[group]
        path = self.root / group / _ARRAY
        if create is not None and not path.exists():
            (self.root / group / _SLOTS).mkdir(parents=True, exist_ok=True)
            num_frames, shape = create
            array = zarr.open_array(str(path), mode="w", shape=(num_frames, *shape), chunks=(1, *shape),
                                    dtype="float16")
            (self.root / group / _GROUP_FILE).write_text(json.dumps(
                {"num_frames": num_frames, "shape": list(shape), "created": time.time()}))
            self._bytes += _folder_bytes(self.root / group) + 32
        else:
            array = zarr.open_array(str(path), mode="r+")
        self._arrays[group] = array
        return array

    def _touch(self, group: str) -> None:
        try:
            (self.root / group / _USED_FILE).write_text(f"{time.time():.3f}")
        except OSError:
            pass

    def _last_used(self, group: Path) -> float:
        try:
            return float((group / _USED_FILE).read_text())
        except (OSError, ValueError):
            return 0.0

    def _drop_group(self, group: str) -> None:
        self._arrays.pop(group, None)
        for key in [k for k, (g, _) in self._index.items() if g == group]:
            del self._index[key]
        shutil.rmtree(self.root / group, ignore_errors=True)

    def _drop_slot(self, key: str) -> None:
        group, slot = self._index.pop(key)
        self.rebuilt += 1
        (self.root / group / _SLOTS / f"{slot}.json").unlink(missing_ok=True)

    # ---- read / write
    def get(self, key: str, device: Any = "cpu") -> Optional[Any]:
        """The embedding stored under `key`, or None (absent, or damaged: then dropped)."""
        with self._lock:
            where = self._index.get(key)
            if where is None:
                self.misses += 1
                return None
            group, slot = where
            try:
                slot_meta = json.loads((self.root / group / _SLOTS / f"{slot}.json").read_text())
                if slot_meta["key"] != key:
                    raise ValueError("slot holds another frame")
                data = np.asarray(self._array(group)[slot], dtype=np.float16)
                if _digest(data.tobytes()) != slot_meta["checksum"]:
                    raise ValueError("checksum differs")
                embedding = join_embedding(torch.from_numpy(data.copy()).to(device), slot_meta["meta"])
            except Exception:  # noqa: BLE001 - anything unreadable is re-encoded, never trusted
                self._arrays.pop(group, None)
                self._drop_slot(key)
                self.misses += 1
                return None
            self.hits += 1
            self._touch(group)
            return embedding

    def put(self, key: str, embedding: Any, group: str, slot: int, num_frames: int) -> None:
        """Store `embedding` as slice `slot` of `group` (a scan of `num_frames` slices)."""
        tensor, meta = split_embedding(embedding)
        data = tensor.detach().to("cpu", torch.float16).numpy()
        with self._lock:
            try:
                array = self._array(group, create=(int(num_frames), tuple(data.shape)))
                if tuple(array.shape[1:]) != tuple(data.shape) or array.shape[0] != num_frames:
                    raise ValueError("group holds embeddings of another shape")
            except Exception:  # noqa: BLE001 - an unreadable group is rebuilt
                self.rebuilt += 1
                self._drop_group(group)
                array = self._array(group, create=(int(num_frames), tuple(data.shape)))
            slot_file = self.root / group / _SLOTS / f"{int(slot)}.json"
            slot_file.unlink(missing_ok=True)  # not trusted while the chunk is rewritten
            array[int(slot)] = data
            part = slot_file.with_suffix(".part")
            slot_text = json.dumps({"key": key, "checksum": _digest(data.tobytes()), "meta": meta})
            part.write_text(slot_text)
            os.replace(part, slot_file)
            self._index[key] = (group, int(slot))
            self._touch(group)
            self.writes += 1
            self._bytes += data.nbytes + len(slot_text)  # an estimate; measured near the limit
            if self._bytes > 0.9 * self.max_bytes:  # near the limit: measure (metadata, compression)
                self._bytes = _folder_bytes(self.root)
                if self._bytes > self.max_bytes:
                    self._evict(keep=group)

    def _evict(self, keep: str) -> None:
        """Remove whole groups, least recently used first, until the store fits its limit."""
        groups = sorted((p for p in self.root.iterdir() if p.is_dir() and p.name != keep), key=self._last_used)
        self._bytes = _folder_bytes(self.root)
        for group in groups:
            if self._bytes <= self.max_bytes:
                break
            self._drop_group(group.name)
            self._bytes = _folder_bytes(self.root)

    # ---- maintenance
    def info(self) -> StoreInfo:
        with self._lock:
            groups = [p for p in self.root.iterdir() if p.is_dir()]
            return StoreInfo(self.root, len(groups), len(self._index), _folder_bytes(self.root), self.max_bytes)

    def clear(self) -> int:
        """Delete every stored embedding; returns the bytes freed."""
        with self._lock:
            freed = _folder_bytes(self.root)
            for group in [p for p in self.root.iterdir() if p.is_dir()]:
                shutil.rmtree(group, ignore_errors=True)
            self._index.clear()
            self._arrays.clear()
            self._bytes = 0
            return freed


_open_stores: dict[tuple[str, int], EmbeddingStore] = {}
_open_lock = threading.Lock()


def open_store(root: Union[str, Path, None] = None, max_bytes: Optional[int] = None) -> EmbeddingStore:
    """The process's store for `root` (one object per folder, so sessions share its index)."""
    path = Path(root) if root is not None else default_root()
    key = (str(path.resolve()), int(max_bytes) if max_bytes is not None else default_max_bytes())
    with _open_lock:
        store = _open_stores.get(key)
        if store is None or not path.exists():
            store = _open_stores[key] = EmbeddingStore(path, max_bytes)
        return store


def group_id(signature: str, num_frames: int, first_key: str) -> str:
    """Folder name of a predictor state's group: its model, length and the first frame it stored."""
    return _digest(signature, str(int(num_frames)), first_key)
