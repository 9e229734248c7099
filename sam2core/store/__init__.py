"""Model store: the registry of known checkpoints, the per-user cache, verified downloads.

`resolve_checkpoint(name)` is what `sam2core.build.load_model` uses; `download_model`,
`verify_cached` and `list_registry` back the ``napari-sam2 models`` commands and the napari
Download button.
"""

from sam2core.store.cache import cache_dir, checkpoint_path, is_offline
from sam2core.store.download import (
    ChecksumError,
    DownloadCancelled,
    DownloadError,
    download_file,
    download_model,
    placement_hint,
)
from sam2core.store.registry import MODEL_REGISTRY, ModelEntry, get_entry, list_registry
from sam2core.store.resolve import find_package_asset, package_asset_status, resolve_checkpoint
from sam2core.store.status import ModelStatus, model_status
from sam2core.store.verify import VerifyResult, verify_cached, verify_file

__all__ = [
    "MODEL_REGISTRY",
    "ChecksumError",
    "DownloadCancelled",
    "DownloadError",
    "ModelEntry",
    "ModelStatus",
    "VerifyResult",
    "cache_dir",
    "checkpoint_path",
    "download_file",
    "download_model",
    "find_package_asset",
    "get_entry",
    "is_offline",
    "list_registry",
    "model_status",
    "package_asset_status",
    "placement_hint",
    "resolve_checkpoint",
    "verify_cached",
    "verify_file",
]
