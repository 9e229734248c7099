"""The per-user checkpoint cache: its location, its manifest and file hashing.

Layout: ``<cache_dir>/checkpoints/<file_name>`` plus ``<cache_dir>/checkpoints/manifest.json``,
which maps each file name to the sha256 and size seen at its last verification (and the
stat that let us skip re-hashing an unchanged file). Only complete, verified files carry
their final name; partial downloads are ``<file_name>.part``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

HOME_ENV = "NAPARI_SAM2_HOME"
OFFLINE_ENV = "NAPARI_SAM2_OFFLINE"
MANIFEST_NAME = "manifest.json"
_HASH_CHUNK_BYTES = 1 << 20
_manifest_lock = threading.Lock()


def cache_dir() -> Path:
    """Root of the per-user cache: ``$NAPARI_SAM2_HOME`` or platformdirs' user cache dir."""
    env = os.environ.get(HOME_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-sam2"))


def checkpoints_dir() -> Path:
    """Folder holding downloaded checkpoint files."""
    return cache_dir() / "checkpoints"


def checkpoint_path(file_name: str) -> Path:
    """Where the cache keeps (or expects) ``file_name``."""
    return checkpoints_dir() / file_name


def part_path(final_path: Path) -> Path:
    """The partial-download file beside ``final_path``."""
    return final_path.with_name(final_path.name + ".part")


def is_offline() -> bool:
    """True when ``NAPARI_SAM2_OFFLINE`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def file_sha256(
    path: Path,
    progress: Optional[Callable[[int, int], None]] = None,
    hasher: Optional["hashlib._Hash"] = None,
) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks; ``progress(done, total)`` after each."""
    digest = hasher if hasher is not None else hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return digest.hexdigest()


def _manifest_path() -> Path:
    return checkpoints_dir() / MANIFEST_NAME


def read_manifest() -> dict[str, dict[str, Any]]:
    """The manifest, or {} when absent or unreadable (it is a cache of facts, rebuilt on need)."""
    path = _manifest_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def manifest_record(file_name: str) -> Optional[dict[str, Any]]:
    """The manifest entry for ``file_name``, if any."""
    record = read_manifest().get(file_name)
    return record if isinstance(record, dict) else None


def _write_manifest(data: dict[str, dict[str, Any]]) -> None:
    path = _manifest_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_verified(file_name: str, path: Path, sha256: str, *, origin: str, url: Optional[str] = None) -> None:
    """Remember that ``path`` (as it is now on disk) has ``sha256``; ``origin`` says how we know."""
    stat = path.stat()
    with _manifest_lock:
        data = read_manifest()
        previous = data.get(file_name) if isinstance(data.get(file_name), dict) else {}
        data[file_name] = {
            "sha256": sha256,
            "size_bytes": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "origin": origin,
            "url": url if url is not None else previous.get("url"),
            "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _write_manifest(data)


def forget(file_name: str) -> None:
    """Drop ``file_name`` from the manifest's verification stamp (its recorded hash stays)."""
    with _manifest_lock:
        data = read_manifest()
        record = data.get(file_name)
        if isinstance(record, dict):
            record.pop("mtime_ns", None)
            _write_manifest(data)


def unchanged_since_verified(file_name: str, path: Path) -> bool:
    """True when ``path`` has the size and mtime recorded at its last verification."""
    record = manifest_record(file_name)
    if not record or "mtime_ns" not in record:
        return False
    try:
        stat = path.stat()
    except OSError:
        return False
    return stat.st_size == record.get("size_bytes") and stat.st_mtime_ns == record.get("mtime_ns")
