"""Limits on what readers open and allocate: regular files only, a size cap, bounded streams.

Every file scanio hands to a reader (its own, pydicom's, SimpleITK's) is first checked to be a
regular file, so that a FIFO, a socket or a device (`/dev/zero`) can never block or feed a read.
Every volume's `voxels x bytes` is compared with a cap before anything is allocated: by default
half of the memory this process may still use (available RAM, and the address-space limit
`RLIMIT_AS` when one is set); the environment variable `NAPARI_SAM2_MAX_VOXELS` replaces it by a
voxel count (e.g. `NAPARI_SAM2_MAX_VOXELS=4e9`).
"""

from __future__ import annotations

import bz2
import gzip
import os
import stat
import zlib
from pathlib import Path
from typing import BinaryIO, Optional

from scanio.errors import CorruptFileError, NotAScanError, ScanTooLargeError

MAX_VOXELS_ENV = "NAPARI_SAM2_MAX_VOXELS"
MEMORY_SHARE = 0.5  # of the memory this process may still use
_FALLBACK_MEMORY_BYTES = 8 << 30  # when nothing can be measured
_CHUNK = 1 << 20


def check_regular_file(path, what: str = "file") -> os.stat_result:
    """`os.stat` of `path` (links followed) when it is a regular file, else `NotAScanError`.

    Called before any reader opens a file: FIFOs, sockets and devices are refused so that no read
    can block or run forever.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise NotAScanError(f"{path}: cannot open the {what} ({exc.strerror})", path) from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device" if
                (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) else "not a regular file")
        raise NotAScanError(
            f"{path}: the {what} is {kind}, not a regular file; scanio reads only regular files "
            "(copy the data into a file)", path)
    return st


def is_regular_file(path) -> bool:
    """True for a regular file (links followed); never blocks."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def open_regular(path) -> BinaryIO:
    """Open a file for binary reading, refusing anything but a regular file (without blocking)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotAScanError(f"{path}: not a regular file; scanio reads only regular files", Path(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _available_memory_bytes() -> int:
    """Memory this process may still allocate: MemAvailable, bounded by RLIMIT_AS minus what is mapped."""
    available = None
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = _FALLBACK_MEMORY_BYTES
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            mapped = 0
            with open("/proc/self/statm", "rb") as f:
                mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            available = min(available, max(0, soft - mapped))
    except (ImportError, OSError, ValueError, IndexError):
        pass
    return int(available)


def max_voxels_from_env() -> Optional[int]:
    """The voxel cap set by `NAPARI_SAM2_MAX_VOXELS`, or None when unset; a bad value is an error."""
    text = os.environ.get(MAX_VOXELS_ENV, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 1 and value < 1e18):
        raise ScanTooLargeError(f"{MAX_VOXELS_ENV}={text!r} must be a positive number of voxels, e.g. 2e9; "
                                "fix or unset it")
    return int(value)


def check_size(path, shape: tuple, itemsize: int, what: str = "image") -> int:
    """Refuse a volume whose `voxels x itemsize` exceeds the cap; returns its byte count.

    `shape` is any sequence of non-negative ints (already checked to be ints). The cap is
    `NAPARI_SAM2_MAX_VOXELS` voxels when set, else `MEMORY_SHARE` of the memory still available.
    """
    voxels = 1
    for n in shape:
        voxels *= int(n)
    nbytes = voxels * int(itemsize)
    env_cap = max_voxels_from_env()
    if env_cap is not None:
        if voxels > env_cap:
            raise ScanTooLargeError(
                f"{path}: the {what} claims {_shape_text(shape)} = {voxels:,} voxels, more than the "
                f"cap of {env_cap:,} set by {MAX_VOXELS_ENV}; raise it if the file is genuine",
                Path(path))
        return nbytes
    budget = int(_available_memory_bytes() * MEMORY_SHARE)
    if nbytes > budget:
        raise ScanTooLargeError(
            f"{path}: the {what} claims {_shape_text(shape)} voxels of {itemsize} byte(s) = "
            f"{nbytes / 2**20:,.0f} MiB, more than {MEMORY_SHARE:.0%} of the memory available "
            f"({budget / 2**20:,.0f} MiB); a damaged header? If the file is genuine, set "
            f"{MAX_VOXELS_ENV} (e.g. {MAX_VOXELS_ENV}={max(voxels, 1):.3g}) to raise the cap",
            Path(path))
    return nbytes


def _shape_text(shape) -> str:
    return "x".join(str(int(n)) for n in shape)


def bytes_available(path, offset: int, need: int, compression: str = "raw") -> int:
    """How many data bytes `path` holds from `offset` on, counting at most `need` (+1 for raw).

    `compression`: "raw", "gzip" (gzip or zlib stream, detected), or "bzip2". Compressed data is
    decompressed in a bounded stream that stops once `need` bytes have arrived, so a
    decompression bomb costs no more than the header claims (which was already capped).
    A damaged compressed stream raises `CorruptFileError`.
    """
    path = Path(path)
    st = check_regular_file(path)
    if compression == "raw":
        return max(0, st.st_size - offset)
    got = 0
    try:
        with open_regular(path) as raw:
            raw.seek(offset)
            if compression == "bzip2":
                stream = bz2.BZ2File(raw)
                while got < need:
                    chunk = stream.read(min(_CHUNK, need - got))
                    if not chunk:
                        break
                    got += len(chunk)
                return got
            magic = raw.read(2)
            raw.seek(offset)
            if magic == b"\x1f\x8b":
                stream = gzip.GzipFile(fileobj=raw)
                while got < need:
                    chunk = stream.read(min(_CHUNK, need - got))
                    if not chunk:
                        break
                    got += len(chunk)
                return got
            inflater = zlib.decompressobj()
            while got < need:
                data = inflater.unconsumed_tail or raw.read(_CHUNK)
                if not data:
                    break
                got += len(inflater.decompress(data, min(_CHUNK, need - got)))
                if inflater.eof:
                    break
            return got
    except EOFError:
        return got  # a truncated stream: what arrived is what there is
    except (OSError, zlib.error, ValueError) as exc:
        raise CorruptFileError(
            f"{path}: compressed data cannot be decompressed ({type(exc).__name__}: {exc}); "
            "the file is damaged", path) from None


def check_data_present(path, offset: int, need: int, compression: str = "raw",
                       what: str = "voxel data") -> None:
    """`CorruptFileError` unless `path` holds `need` bytes of data from `offset` on."""
    got = bytes_available(path, offset, need, compression)
    if got < need:
        raise CorruptFileError(
            f"{path}: truncated: the header needs {need:,} bytes of {what}"
            f"{f' from byte {offset}' if offset else ''}, the file holds {got:,}", Path(path))
