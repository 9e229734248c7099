"""Resumable, verified downloads into the cache (urllib + hashlib).

A transfer writes ``<file>.part``; an interrupted transfer is resumed with an HTTP Range
request (within one call, up to ``retries`` times, and across calls since the ``.part``
stays). Only a file whose size and sha256 check out is moved, atomically, to its final
name, so nothing partial or corrupt ever passes as a valid checkpoint.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from sam2core.errors import CheckpointError, ModelNotAvailableError, Sam2CoreError
from sam2core.store import cache
from sam2core.store.registry import ModelEntry, get_entry

ProgressCallback = Callable[[int, Optional[int]], None]  # (done_bytes, total_bytes or None)

_CHUNK_BYTES = 1 << 20
_RETRY_PAUSE_S = 0.5  # times the number of consecutive failed attempts
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class DownloadError(ModelNotAvailableError):
    """The network transfer failed (no network, server error, connection kept dropping)."""


class DownloadCancelled(Sam2CoreError):
    """The caller cancelled the download; the ``.part`` file is kept so a later call resumes."""


class ChecksumError(CheckpointError):
    """A downloaded or cached file whose size or sha256 is not the expected one."""


@dataclass
class _Partial:
    """Bytes of ``.part`` written so far and the running hash over exactly those bytes."""

    path: Path
    have: int = 0
    hasher: "hashlib._Hash" = field(default_factory=hashlib.sha256)

    def restart(self) -> None:
        self.path.unlink(missing_ok=True)
        self.have = 0
        self.hasher = hashlib.sha256()

    def resync(self) -> None:
        """Re-read the part file so ``have``/``hasher`` match what is really on disk."""
        if not self.path.exists():
            self.have, self.hasher = 0, hashlib.sha256()
            return
        size = self.path.stat().st_size
        if size != self.have:
            self.hasher = hashlib.sha256()
            cache.file_sha256(self.path, hasher=self.hasher)
            self.have = size


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        dist_version = version("napari-sam2")  # the distribution, not the napari plugin package
    except PackageNotFoundError:
        dist_version = "0"
    return f"napari-sam2/{dist_version} (+urllib)"


def _check_cancel(cancel: Optional[threading.Event]) -> None:
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled("download cancelled; the partial file is kept and the next download resumes it")


def _total_from_headers(response, have: int) -> Optional[int]:
    content_range = response.headers.get("Content-Range")
    if content_range:
        match = _CONTENT_RANGE.match(content_range.strip())
        if match and match.group(3) != "*":
            return int(match.group(3))
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit():
        return int(length) + (have if response.status == 206 else 0)
    return None


def _transfer_once(
    url: str,
    partial: _Partial,
    expected_size: Optional[int],
    progress: Optional[ProgressCallback],
    cancel: Optional[threading.Event],
    timeout_s: float,
) -> Optional[int]:
    """One HTTP request appending to ``.part``; returns the file's total size when the server says it."""
    headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
    if partial.have:
        headers["Range"] = f"bytes={partial.have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and partial.have:
            exc.close()
            if expected_size is not None and expected_size == partial.have:
                return expected_size  # the part already holds the whole file
            partial.restart()  # the part does not fit this file: start over on the next try
            return None
        raise
    with response:
        if partial.have and response.status != 206:
            partial.restart()  # the server ignored the Range header: start over
        elif partial.have:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
            if not match or int(match.group(1)) != partial.have:
                partial.restart()  # the server resumed at another offset: start over on the next try
                return None
        total = _total_from_headers(response, partial.have)
        if expected_size is not None and total is not None and total != expected_size:
            raise ChecksumError(
                f"{url} offers {total} bytes but {expected_size} are expected: not the registered file"
            )
        total = total if total is not None else expected_size
        with partial.path.open("ab") as handle:
            while True:
                _check_cancel(cancel)
                chunk = response.read(_CHUNK_BYTES)
                if not chunk:
                    break
                handle.write(chunk)
                partial.hasher.update(chunk)
                partial.have += len(chunk)
                if progress is not None:
                    progress(partial.have, total)
        return total


def download_file(
    url: str,
    dest: Path,
    *,
    size_bytes: Optional[int] = None,
    sha256: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[threading.Event] = None,
    retries: int = 3,
    timeout_s: float = 30.0,
) -> str:
    """Download ``url`` to ``dest`` via ``dest.part`` with resume, check size and sha256, move atomically.

    Returns the file's sha256. Raises `DownloadError` (network, no disk space, the same file
    being downloaded by another process), `ChecksumError` (wrong bytes; the part file is
    removed) or `DownloadCancelled` (part file kept for resume).
    """
    import filelock

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock_path = dest.with_name(dest.name + ".lock")
    lock = filelock.FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise DownloadError(
            f"{dest.name} is being downloaded by another process (lock {lock_path}); "
            "wait for it to finish, then try again"
        ) from None
    try:
        return _download_locked(url, dest, size_bytes=size_bytes, sha256=sha256, progress=progress,
                                cancel=cancel, retries=retries, timeout_s=timeout_s)
    finally:
        lock.release()


def _check_free_space(folder: Path, needed_bytes: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise DownloadError(
            f"not enough free space in {folder}: the download needs {needed_bytes / 1e6:.1f} MB more, "
            f"{free / 1e6:.1f} MB are free (set NAPARI_SAM2_HOME to use another disk)"
        )


def _download_locked(
    url: str,
    dest: Path,
    *,
    size_bytes: Optional[int],
    sha256: Optional[str],
    progress: Optional[ProgressCallback],
    cancel: Optional[threading.Event],
    retries: int,
    timeout_s: float,
) -> str:
    """`download_file` once the per-file lock is held."""
    partial = _Partial(cache.part_path(dest))
    resumed = partial.path.exists()
    if resumed:
        partial.resync()
        if size_bytes is not None and partial.have > size_bytes:
            partial.restart()
            resumed = False
    if size_bytes is not None:
        _check_free_space(dest.parent, size_bytes - partial.have)

    failures = 0
    last_error: Optional[BaseException] = None
    while True:
        _check_cancel(cancel)
        total: Optional[int] = None
        had = partial.have
        try:
            total = _transfer_once(url, partial, size_bytes, progress, cancel, timeout_s)
        except ChecksumError:
            partial.restart()
            raise
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            last_error = exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            last_error = exc
            partial.resync()
        complete = (total is not None and partial.have == total) or (
            total is None and last_error is None and partial.have > 0
        )
        if complete:
            break
        if total is not None and partial.have > total:
            partial.restart()
        # Retries count consecutive attempts without progress: a flaky link that keeps
        # delivering bytes is resumed for as long as it takes.
        failures = 1 if partial.have > had else failures + 1
        if failures > retries:
            reason = f": {last_error}" if last_error else f" after {partial.have} of {total} bytes"
            raise DownloadError(
                f"download of {url} failed{reason} ({retries} retries); "
                f"{partial.have} bytes are kept in {partial.path} and the next download resumes them"
            ) from last_error
        last_error = None
        if cancel is not None:
            cancel.wait(_RETRY_PAUSE_S * failures)
        else:
            time.sleep(_RETRY_PAUSE_S * failures)

    digest = partial.hasher.hexdigest()
    size_ok = size_bytes is None or partial.have == size_bytes
    if not size_ok or (sha256 is not None and digest != sha256.lower()):
        got = f"{partial.have} bytes" if not size_ok else f"sha256 {digest}"
        partial.restart()
        if resumed:
            # The bytes kept from an earlier attempt may belong to another version: retry from zero once.
            return _download_locked(url, dest, size_bytes=size_bytes, sha256=sha256, progress=progress,
                                    cancel=cancel, retries=retries, timeout_s=timeout_s)
        raise ChecksumError(
            f"download of {url} is corrupt (got {got}, expected "
            f"{size_bytes if not size_ok else sha256}); the file was removed, nothing was cached"
        )
    os.replace(partial.path, dest)
    return digest


def size_text(num_bytes: Optional[int]) -> str:
    """Human size in MB (10^6 bytes, as download pages give it)."""
    return "unknown size" if num_bytes is None else f"{num_bytes / 1e6:.1f} MB"


def placement_hint(entry: ModelEntry) -> str:
    """How to get ``entry`` onto this machine by hand: URL, size, hash and the exact target path."""
    target = cache.checkpoint_path(entry.file_name)
    url = entry.download_url() or entry.url
    size = size_text(entry.size_bytes if entry.size_bytes is not None else entry.approx_size_bytes)
    sha = f"sha256 {entry.sha256}" if entry.sha256 else "no published sha256"
    return (
        f"On a machine with internet access download\n    {url}\n({size}, {sha}) and copy it to exactly\n"
        f"    {target}\n(set NAPARI_SAM2_HOME to move the cache folder), "
        f"or pass the file explicitly with checkpoint=PATH / --checkpoint PATH."
    )


def offline_error(entry: ModelEntry, why: str) -> ModelNotAvailableError:
    """The typed error for 'weights not here and not fetchable', telling the user what to do."""
    return ModelNotAvailableError(
        f"checkpoint for model {entry.name!r} ({entry.file_name}) is not in the cache and {why}.\n"
        + placement_hint(entry)
    )


def download_model(
    name: str,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[threading.Event] = None,
    *,
    force: bool = False,
    retries: int = 3,
    timeout_s: float = 30.0,
) -> Path:
    """Fetch the named checkpoint into the cache (no-op when already there and valid); returns its path.

    ``force`` re-downloads and ignores a hash recorded by an earlier download.
    Offline (``NAPARI_SAM2_OFFLINE=1``) or without network this raises
    `ModelNotAvailableError` saying which file to place where.
    """
    from sam2core.store.verify import verify_file

    entry = get_entry(name)
    if entry.is_package_asset:
        from sam2core.store.resolve import package_asset_path

        return package_asset_path(entry)
    dest = cache.checkpoint_path(entry.file_name)
    if dest.exists() and not force:
        result = verify_file(entry, dest)
        if result.ok:
            return dest
        dest.unlink()  # a corrupt file in our own cache: replace it
    if cache.is_offline():
        raise offline_error(entry, f"downloading is disabled ({cache.OFFLINE_ENV}=1)")
    url = entry.download_url()
    assert url is not None
    expected_sha = entry.sha256
    origin = "published"
    if expected_sha is None:
        record = None if force else cache.manifest_record(entry.file_name)
        expected_sha = record.get("sha256") if record else None
        origin = "recorded on first download"
    try:
        digest = download_file(url, dest, size_bytes=entry.size_bytes, sha256=expected_sha,
                               progress=progress, cancel=cancel, retries=retries, timeout_s=timeout_s)
    except DownloadError as exc:
        raise DownloadError(
            f"could not download the checkpoint for model {entry.name!r}: {exc}\n" + placement_hint(entry)
        ) from exc
    cache.record_verified(entry.file_name, dest, digest, origin=origin, url=url)
    return dest
