"""What our own header parsers learn before any C++ reader sees a file, and shared checks on it.

The NIfTI, NRRD and MetaImage parsers (`scanio.nifti_header`, `scanio.nrrd_header`,
`scanio.metaio_header`) each return a `HeaderInfo`; `read.py` then checks the size cap and that
the data bytes are present, and only then lets SimpleITK read the file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from scanio.errors import BadHeaderError, UnsafeDataFileError
from scanio.limits import is_regular_file

MAX_HEADER_BYTES = 1 << 20  # a text header longer than this is refused
MAX_AXIS_SIZE = 1 << 31  # one axis of more voxels than this is refused


@dataclass
class HeaderInfo:
    """A validated header: sizes `(x, y, z[, t])` as ITK counts them, and where the data lies.

    `data_offset` is the byte offset of the data in `data_path` (-1: the data are the file's last
    bytes); `compression` is "raw", "gzip" (gzip or zlib), "bzip2" or "text" (ASCII/hex, checked
    by a lower bound on its length). `warnings` are documented choices to show the user.
    """

    path: Path
    fmt: str
    sizes: tuple[int, ...]
    itemsize: int
    components: int = 1
    data_path: Optional[Path] = None
    data_offset: int = 0
    compression: str = "raw"
    min_text_bytes: int = 0  # for "text" data: the least the file must hold
    skip_bytes: int = 0  # decompressed bytes before the voxels (NRRD byte skip of compressed data)
    warnings: list[str] = field(default_factory=list)

    @property
    def num_voxels(self) -> int:
        """Voxels (times components) the header claims."""
        n = self.components
        for s in self.sizes:
            n *= s
        return n

    @property
    def data_bytes(self) -> int:
        """Bytes of (decompressed) voxel data the header claims."""
        return self.num_voxels * self.itemsize


def bad(path, message: str) -> BadHeaderError:
    """A `BadHeaderError` naming the file and asking for a repaired or re-exported file."""
    return BadHeaderError(f"{path}: {message}; the header is damaged or hostile: re-export the scan", Path(path))


def parse_int(path, text: str, what: str, low: int, high: int) -> int:
    """An integer field in [low, high] or `BadHeaderError`."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise bad(path, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or value != int(value) or not low <= value <= high:
        raise bad(path, f"{what} {text!r} must be an integer in {low}..{high}")
    return int(value)


def parse_floats(path, text: str, what: str, count: Optional[int] = None) -> list[float]:
    """Whitespace/comma separated numbers (may be non-finite: callers decide)."""
    parts = text.replace(",", " ").split()
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise bad(path, f"{what} {text!r} is not a list of numbers") from None
    if count is not None and len(values) != count:
        raise bad(path, f"{what} {text!r} must have {count} numbers")
    return values


def check_sizes(path, sizes: Sequence[int]) -> tuple[int, ...]:
    """Every axis at least 1 and at most `MAX_AXIS_SIZE` voxels."""
    for k, s in enumerate(sizes):
        if not 1 <= int(s) <= MAX_AXIS_SIZE:
            raise bad(path, f"axis {k} has size {s}; sizes must lie in 1..{MAX_AXIS_SIZE}")
    return tuple(int(s) for s in sizes)


def check_spacing(path, spacing: Sequence[float], what: str = "spacing") -> None:
    """Spacing finite and > 0 on every axis."""
    for k, s in enumerate(spacing):
        if not math.isfinite(s) or s <= 0:
            raise bad(path, f"{what} {list(spacing)} has {s} on axis {k}; voxel sizes must be finite "
                            "and > 0 mm")


def check_origin(path, origin: Sequence[float], what: str = "origin") -> None:
    """Origin finite."""
    if not all(math.isfinite(v) for v in origin):
        raise bad(path, f"{what} {list(origin)} is not finite")


def check_direction(path, matrix: np.ndarray, what: str = "direction") -> None:
    """Direction (columns = axis vectors, any length) finite and far from singular."""
    m = np.asarray(matrix, dtype=np.float64)
    if not np.all(np.isfinite(m)):
        raise bad(path, f"{what} {m.round(6).tolist()} is not finite")
    norms = np.linalg.norm(m, axis=0)
    if np.any(norms <= 0):
        raise bad(path, f"{what} {m.round(6).tolist()} has a zero axis vector")
    unit = m / norms
    if abs(float(np.linalg.det(unit))) < 1e-3:
        raise bad(path, f"{what} {m.round(6).tolist()} is singular (axes parallel)")


def contained_data_file(header_path: Path, name: str, field_name: str) -> Path:
    """The detached data file `name` of `header_path`, if it is a regular file in the header's
    folder or below it; `UnsafeDataFileError` otherwise (absolute, `..`, outside, not regular).
    """
    header_path = Path(header_path)
    folder = header_path.parent
    if not name or "\x00" in name:
        raise UnsafeDataFileError(f"{header_path}: empty or invalid {field_name}", header_path)
    candidate = Path(name)
    parts = name.replace("\\", "/").split("/")
    if candidate.is_absolute() or name.startswith(("/", "\\", "~")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeDataFileError(
            f"{header_path}: {field_name} {name!r} is an absolute path; scanio reads detached data "
            "only from the header's own folder (or below it): move the data file there and name it "
            "relative to the header", header_path)
    if ".." in parts:
        raise UnsafeDataFileError(
            f"{header_path}: {field_name} {name!r} goes up through '..'; scanio reads detached data "
            "only from the header's own folder (or below it)", header_path)
    target = folder / candidate
    try:
        real_folder = os.path.realpath(folder)
        real_target = os.path.realpath(target)
    except OSError as exc:
        raise UnsafeDataFileError(f"{header_path}: {field_name} {name!r}: {exc}", header_path) from None
    if os.path.commonpath([real_folder, real_target]) != real_folder:
        raise UnsafeDataFileError(
            f"{header_path}: {field_name} {name!r} is a link that leads outside the header's folder "
            f"(to {real_target}); refused", header_path)
    if not is_regular_file(target):
        kind = "missing" if not os.path.lexists(target) else "not a regular file (FIFO, socket, device, folder?)"
        raise UnsafeDataFileError(
            f"{header_path}: {field_name} {name!r} is {kind}; the data file must be a regular file "
            "beside the header", header_path)
    return target
