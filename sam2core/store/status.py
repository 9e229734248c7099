"""Cheap per-model availability (no hashing): what `models list` and the napari model picker show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sam2core.store import cache
from sam2core.store.registry import ModelEntry, get_entry

CACHED = "cached"
PACKAGED = "available (package)"
NOT_DOWNLOADED = "not downloaded"
PARTIAL = "partial download"
WRONG_SIZE = "wrong size"
PACKAGE_MISSING = "package not installed"


@dataclass(frozen=True)
class ModelStatus:
    """Whether a model's weights are usable here, and where they are (or would be)."""

    entry: ModelEntry
    state: str
    where: Optional[Path]

    @property
    def available(self) -> bool:
        return self.state in (CACHED, PACKAGED)


def model_status(name: str) -> ModelStatus:
    """Availability of ``name`` from file presence and size only (``verify_cached`` hashes)."""
    from sam2core.store.resolve import find_package_asset

    entry = get_entry(name)
    if entry.is_package_asset:
        path = find_package_asset(entry)
        return ModelStatus(entry, PACKAGED if path is not None else PACKAGE_MISSING, path)
    path = cache.checkpoint_path(entry.file_name)
    if path.is_file():
        if entry.size_bytes is not None and path.stat().st_size != entry.size_bytes:
            return ModelStatus(entry, WRONG_SIZE, path)
        return ModelStatus(entry, CACHED, path)
    if cache.part_path(path).is_file():
        return ModelStatus(entry, PARTIAL, path)
    return ModelStatus(entry, NOT_DOWNLOADED, path)
