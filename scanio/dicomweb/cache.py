"""The local cache of fetched series: one folder per Series Instance UID, one file per instance.

`<cache>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`, each written beside its final name and
renamed into place only after validation, so a file with that name is a complete, checked
instance: a fetch that was interrupted resumes with the instances still missing. The cache is
`$NAPARI_SAM2_DICOMWEB_CACHE` or `dicomweb/` in napari-sam2's user cache folder.
`cache_info` and `clear_cache` (`napari-sam2 cache info|clear`) see only the series folders
(named by a UID) and the SEG outbox; `clear_cache` deletes fetched series, never the outbox.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from scanio.dicomweb.config import ENV_CACHE, check_uid
from scanio.dicomweb.errors import DicomWebCacheError, DicomWebURLError

INSTANCE_SUFFIX = ".dcm"
LOCK_NAME = ".fetch.lock"  # dot files are skipped by scanio's folder reader
OUTBOX_NAME = "seg-outbox"
MARKER_NAME = ".napari-sam2-dicomweb"  # written into a cache folder by the first fetch: `clear_cache` needs it


def cache_root(cache_dir: Union[str, Path, None] = None) -> Path:
    """The cache folder: `cache_dir`, `$NAPARI_SAM2_DICOMWEB_CACHE`, or the user cache folder."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    return default_cache_root()


def default_cache_root() -> Path:
    """The default cache folder (the user cache folder's `dicomweb`), whatever the environment says."""
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
    (folder.parent / MARKER_NAME).touch(exist_ok=True)  # the parent is the cache root: mark it as ours
    return FileLock(str(folder / LOCK_NAME), timeout=timeout_s)


def seg_outbox(cache_dir: Union[str, Path, None] = None) -> Path:
    """Where the napari widget writes a SEG before sending it: `<cache>/seg-outbox/` (kept on failure)."""
    folder = cache_root(cache_dir) / OUTBOX_NAME
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class CacheInfo:
    """The cache's fetched series (files and bytes, partial files included) and the SEGs in its outbox."""

    root: Path
    series: int
    files: int
    bytes: int
    outbox_files: int
    outbox_bytes: int


@dataclass(frozen=True)
class ClearResult:
    """What `clear_cache` deleted, and what it left: series being fetched, the SEG outbox."""

    root: Path
    series: int
    files: int
    bytes: int
    busy: list[str] = field(default_factory=list)  # series UIDs whose fetch held the lock
    outbox_files: int = 0


def series_folders(cache_dir: Union[str, Path, None] = None) -> list[Path]:
    """The cache's series folders: sub-folders named by a DICOM UID (anything else is not ours)."""
    root = cache_root(cache_dir)
    if not root.is_dir():
        return []
    folders = []
    for p in root.iterdir():
        if p.is_dir() and not p.is_symlink():
            with contextlib.suppress(DicomWebURLError):
                if check_uid(p.name, "series") == p.name:  # exactly a UID (no stripped spaces)
                    folders.append(p)
    return sorted(folders)


def _is_ours(p: Path) -> bool:
    """A file a fetch writes (the lock aside): a complete instance or a partial one."""
    name = p.name
    instance = name.endswith(INSTANCE_SUFFIX) and not name.startswith(".")
    partial = name.startswith(".") and name.endswith(".part")
    return (instance or partial) and p.is_file() and not p.is_symlink()


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if _is_ours(p)] if folder.is_dir() else []


def cache_info(cache_dir: Union[str, Path, None] = None) -> CacheInfo:
    """Series, files and bytes of the fetched series, and SEG files waiting in the outbox."""
    folders = [f for f in series_folders(cache_dir) if _files(f)]
    files = [p for folder in folders for p in _files(folder)]
    outbox = [p for p in (cache_root(cache_dir) / OUTBOX_NAME).glob(f"*{INSTANCE_SUFFIX}") if p.is_file()]
    return CacheInfo(cache_root(cache_dir), len(folders), len(files), sum(p.stat().st_size for p in files),
                     len(outbox), sum(p.stat().st_size for p in outbox))


def clear_cache(cache_dir: Union[str, Path, None] = None) -> ClearResult:
    """Delete every fetched series (their instances and partial files; a series being fetched is
    skipped). The SEG outbox is kept: it holds SEGs whose sending failed.

    A folder other than the default one is cleared only if a fetch has marked it as a cache
    (`MARKER_NAME`), so that pointing `cache_dir` at a user's own DICOM folders deletes nothing.
    """
    from filelock import Timeout

    root = cache_root(cache_dir)
    if root.is_dir() and not (root / MARKER_NAME).is_file() and root != default_cache_root():
        raise DicomWebCacheError(
            f"{root} was not made by napari-sam2's DICOMweb fetch (no {MARKER_NAME} file in it): nothing "
            f"was deleted. If it is the PACS download cache, create {root / MARKER_NAME} and run again.")
    series, files, freed, busy = 0, 0, 0, []
    for folder in series_folders(cache_dir):
        try:
            with lock_for(folder, timeout_s=0):
                deleted = _files(folder)
                for p in deleted:
                    size = p.stat().st_size
                    p.unlink()
                    files, freed = files + 1, freed + size
        except Timeout:
            busy.append(folder.name)
            continue
        # The lock file stays (a fetch may take the lock as soon as it is released), and so does the folder.
        series += bool(deleted)
    return ClearResult(root, series, files, freed, busy, cache_info(cache_dir).outbox_files)

