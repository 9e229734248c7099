"""The local cache of fetched series: one folder per Series Instance UID, one file per instance.

`<cache>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`, each written beside its final name and
renamed into place only after validation, so a file with that name is a complete, checked
instance: a fetch that was interrupted resumes with the instances still missing. The cache is
`$NAPARI_SAM2_DICOMWEB_CACHE` or `dicomweb/` in napari-sam2's user cache folder.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Union

from scanio.dicomweb.config import ENV_CACHE, check_uid

INSTANCE_SUFFIX = ".dcm"
LOCK_NAME = ".fetch.lock"  # dot files are skipped by scanio's folder reader


def cache_root(cache_dir: Union[str, Path, None] = None) -> Path:
    """The cache folder: `cache_dir`, `$NAPARI_SAM2_DICOMWEB_CACHE`, or the user cache folder."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-sam2")) / "dicomweb"


def series_folder(series_uid: str, cache_dir: Union[str, Path, None] = None) -> Path:
    """`<cache>/<series_uid>` (the UID is checked, so the folder stays inside the cache)."""
    return cache_root(cache_dir) / check_uid(series_uid, "series")


def cached_instances(folder: Path) -> set[str]:
    """SOP Instance UIDs already in `folder` (complete files only)."""
    if not folder.is_dir():
        return set()
    return {p.name[: -len(INSTANCE_SUFFIX)] for p in folder.iterdir()
            if p.name.endswith(INSTANCE_SUFFIX) and not p.name.startswith(".") and p.is_file()}


def remove_stale(folder: Path, keep: set[str]) -> int:
    """Delete cached instances the server no longer lists, and leftover partial files."""
    removed = 0
    for p in list(folder.iterdir()) if folder.is_dir() else []:
        partial = p.name.startswith(".") and p.name.endswith(".part")
        stale = p.name.endswith(INSTANCE_SUFFIX) and not p.name.startswith(".") \
            and p.name[: -len(INSTANCE_SUFFIX)] not in keep
        if (partial or stale) and p.is_file():
            p.unlink()
            removed += int(stale)
    return removed


def write_instance(folder: Path, sop_uid: str, ds) -> Path:
    """Save a validated dataset as `<folder>/<sop_uid>.dcm`, atomically."""
    final = folder / f"{check_uid(sop_uid, 'SOP Instance UID')}{INSTANCE_SUFFIX}"
    tmp = folder / f".{sop_uid}.{uuid.uuid4().hex[:8]}.part"
    try:
        ds.save_as(str(tmp), enforce_file_format=True)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def lock_for(folder: Path, timeout_s: float = 600.0):
    """A file lock so two fetches of one series (CLI and napari) do not write the same files."""
    from filelock import FileLock

    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / LOCK_NAME), timeout=timeout_s)


def seg_outbox(cache_dir: Union[str, Path, None] = None) -> Path:
    """Where the napari widget writes a SEG before sending it: `<cache>/seg-outbox/` (kept on failure)."""
    folder = cache_root(cache_dir) / "seg-outbox"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
