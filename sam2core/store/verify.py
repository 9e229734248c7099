"""Checking files in the cache (and the LiteMedSAM package asset) against size and sha256."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from sam2core.store import cache
from sam2core.store.registry import ModelEntry, get_entry, list_registry

OK = "ok"  # size and sha256 match the published or recorded hash
RECORDED = "recorded"  # no hash was known: this file's hash is now recorded and trusted
MISSING = "missing"  # not in the cache
CORRUPT = "corrupt"  # wrong size or sha256
NOT_INSTALLED = "not installed"  # package asset whose package is absent


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking one model's file."""

    name: str
    path: Optional[Path]
    status: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (OK, RECORDED)


def verify_file(
    entry: ModelEntry,
    path: Path,
    *,
    rehash: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
) -> VerifyResult:
    """Check a cached file for ``entry``: size, then sha256 (skipped when unchanged since last verified unless ``rehash``)."""
    if not path.is_file():
        return VerifyResult(entry.name, path, MISSING, f"{path} does not exist")
    size = path.stat().st_size
    if entry.size_bytes is not None and size != entry.size_bytes:
        return VerifyResult(entry.name, path, CORRUPT,
                            f"{path} has {size} bytes, expected {entry.size_bytes}")
    record = cache.manifest_record(entry.file_name)
    expected = entry.sha256 or (record or {}).get("sha256")
    if (
        not rehash
        and expected is not None
        and record is not None
        and record.get("sha256") == expected
        and cache.unchanged_since_verified(entry.file_name, path)
    ):
        return VerifyResult(entry.name, path, OK, "unchanged since last verified")
    digest = cache.file_sha256(path, progress=progress)
    if expected is None:
        cache.record_verified(entry.file_name, path, digest, origin="recorded from a file placed in the cache")
        return VerifyResult(entry.name, path, RECORDED,
                            f"no published sha256; recorded {digest} for later verifications")
    if digest != expected:
        cache.forget(entry.file_name)
        source = "published" if entry.sha256 else "recorded at first download"
        return VerifyResult(entry.name, path, CORRUPT,
                            f"{path} has sha256 {digest}, expected {expected} ({source})")
    cache.record_verified(entry.file_name, path, digest,
                          origin="published" if entry.sha256 else (record or {}).get("origin", "recorded"))
    return VerifyResult(entry.name, path, OK, f"sha256 {digest}")


def verify_cached(
    name: Optional[str] = None,
    progress: Optional[Callable[[str, int, int], None]] = None,
) -> list[VerifyResult]:
    """Re-hash the cached file of ``name`` (or of every registered model); ``progress(name, done, total)``."""
    from sam2core.store.resolve import package_asset_status

    entries = [get_entry(name)] if name is not None else list_registry()
    results = []
    for entry in entries:
        if entry.is_package_asset:
            results.append(package_asset_status(entry, rehash=True))
            continue
        per_file = None if progress is None else (lambda done, total, n=entry.name: progress(n, done, total))
        results.append(verify_file(entry, cache.checkpoint_path(entry.file_name), rehash=True, progress=per_file))
    return results
