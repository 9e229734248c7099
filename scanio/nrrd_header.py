"""NRRD / NHDR header parser and validator (ours), run before ITK's NRRD reader sees the file.

Strict on purpose: a field given twice, an unknown type or encoding, a data file list or
pattern, a detached data file outside the header's folder, non-finite or zero spacing,
non-finite origin, singular space directions, and sizes beyond the cap are refused.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from scanio.errors import NotAScanError
from scanio.header_info import (
    MAX_HEADER_BYTES,
    HeaderInfo,
    bad,
    check_direction,
    check_origin,
    check_sizes,
    contained_data_file,
    parse_floats,
    parse_int,
)
from scanio.limits import open_regular

_TYPES = {}
for _names, _size in (
    (("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"), 1),
    (("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
      "unsigned short", "unsigned short int", "uint16", "uint16_t"), 2),
    (("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t"), 4),
    (("longlong", "long long", "long long int", "signed long long", "signed long long int",
      "int64", "int64_t", "ulonglong", "unsigned long long", "unsigned long long int", "uint64",
      "uint64_t"), 8),
    (("float",), 4),
    (("double",), 8),
):
    for _n in _names:
        _TYPES[_n] = _size
_ENCODINGS = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2",
              "ascii": "text", "text": "text", "txt": "text", "hex": "hex"}


def _header_lines(path: Path) -> tuple[list[str], int]:
    """Header lines (without the magic) and the byte offset just past the blank line (or EOF)."""
    with open_regular(path) as f:
        head = f.read(MAX_HEADER_BYTES + 1)
    if not head.startswith(b"NRRD"):
        raise NotAScanError(f"{path}: not a NRRD file (no 'NRRD' magic)", path)
    end = head.find(b"\n\n")
    end_crlf = head.find(b"\r\n\r\n")
    if end_crlf >= 0 and (end < 0 or end_crlf < end):
        text, data_offset = head[:end_crlf], end_crlf + 4
    elif end >= 0:
        text, data_offset = head[:end], end + 2
    else:
        if len(head) > MAX_HEADER_BYTES:
            raise bad(path, f"no end of header in the first {MAX_HEADER_BYTES} bytes")
        text, data_offset = head, len(head)
    lines = text.decode("latin-1").replace("\r\n", "\n").split("\n")
    magic = lines[0].strip()
    if not (magic.startswith("NRRD000") and magic[7:].isdigit()):
        raise bad(path, f"magic {magic!r} is not 'NRRD000N'")
    return lines[1:], data_offset


def parse_nrrd(path: Path) -> dict[str, str]:
    """Fields `{name: value}` (names lower-case, without key/value pairs `k:=v`)."""
    lines, _ = _header_lines(path)
    fields: dict[str, str] = {}
    for n, line in enumerate(lines, start=2):
        if fields.get("data file", "").upper().startswith("LIST"):
            break  # the rest are file names: refused by validate_nrrd
        if not line.strip() or line.startswith("#"):
            continue
        if ":=" in line:
            continue  # key/value pair: free text, ITK keeps it as metadata
        if ":" not in line:
            raise bad(path, f"line {n} {line[:60]!r} is neither 'field: value' nor a comment")
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "datafile":
            name = "data file"
        if name in fields:
            raise bad(path, f"field {name!r} is given twice")
        fields[name] = value.strip()
    return fields


def validate_nrrd(path: Path) -> HeaderInfo:
    """Check a `.nrrd`/`.nhdr` header; the returned `HeaderInfo` says where the data are."""
    lines, attached_offset = _header_lines(path)
    fields = parse_nrrd(path)
    for required in ("type", "dimension", "sizes", "encoding"):
        if required not in fields:
            raise bad(path, f"required field {required!r} is missing")
    type_name = fields["type"].lower()
    if type_name not in _TYPES:
        raise bad(path, f"type {fields['type']!r} is not a scalar type scanio reads")
    itemsize = _TYPES[type_name]
    dim = parse_int(path, fields["dimension"], "dimension", 1, 16)
    if not 2 <= dim <= 4:
        raise bad(path, f"dimension {dim}: a 3D volume (dimension 3, or 4 with one component axis) "
                        "is needed")
    size_parts = fields["sizes"].split()
    if len(size_parts) != dim:
        raise bad(path, f"sizes {fields['sizes']!r} must have {dim} numbers")
    sizes = check_sizes(path, [parse_int(path, s, "sizes", 0, 1 << 62) for s in size_parts])
    encoding = _ENCODINGS.get(fields["encoding"].lower())
    if encoding is None:
        raise bad(path, f"encoding {fields['encoding']!r} is not one of {', '.join(sorted(_ENCODINGS))}")
    if itemsize > 1 and encoding not in ("text",) and "endian" not in fields:
        raise bad(path, "field 'endian' is missing (needed for multi-byte voxels)")
    if "endian" in fields and fields["endian"].lower() not in ("little", "big"):
        raise bad(path, f"endian {fields['endian']!r} must be little or big")
    byte_skip = parse_int(path, fields.get("byte skip", "0"), "byte skip", -1, 1 << 40)
    line_skip = parse_int(path, fields.get("line skip", "0"), "line skip", 0, 1 << 20)
    if byte_skip == -1 and encoding != "raw":
        raise bad(path, "byte skip -1 is only meaningful for raw encoding")
    info = HeaderInfo(path=path, fmt="NRRD", sizes=sizes, itemsize=itemsize)
    _check_geometry(path, fields, dim, info)

    if "data file" in fields:
        name = fields["data file"]
        if name.upper().startswith("LIST") or "%" in name or len(name.split()) > 1:
            raise bad(path, f"data file {name!r}: lists and file-name patterns are not read; "
                            "put the voxels in one file")
        info.data_path = contained_data_file(path, name, "data file")
        offset = 0
    else:
        info.data_path = path
        offset = attached_offset
    if line_skip:
        offset = _skip_lines(info.data_path, offset, line_skip)
    info.compression = {"raw": "raw", "gzip": "gzip", "bzip2": "bzip2"}.get(encoding, "text")
    if encoding == "raw":
        info.data_offset = -1 if byte_skip == -1 else offset + byte_skip
    else:
        info.data_offset = offset
        if encoding in ("gzip", "bzip2"):
            info.skip_bytes = max(byte_skip, 0)  # decompressed bytes skipped before the voxels
        elif encoding == "text":
            info.min_text_bytes = 2 * info.num_voxels - 1
        else:  # hex: two characters a byte
            info.min_text_bytes = 2 * info.data_bytes
    return info


def _skip_lines(path: Path, offset: int, count: int) -> int:
    with open_regular(path) as f:
        f.seek(offset)
        for _ in range(count):
            line = f.readline(MAX_HEADER_BYTES)
            if not line:
                break
            offset += len(line)
    return offset


def _vector(path: Path, text: str, what: str):
    text = text.strip()
    if text.lower() == "none":
        return None
    if not (text.startswith("(") and text.endswith(")")):
        raise bad(path, f"{what} {text!r} must be a vector like (1,0,0) or none")
    return parse_floats(path, text[1:-1], what)


def _check_geometry(path: Path, fields: dict[str, str], dim: int, info: HeaderInfo) -> None:
    if "space directions" in fields:
        parts = fields["space directions"].split()
        if len(parts) != dim:
            raise bad(path, f"space directions {fields['space directions']!r} must have {dim} entries")
        vectors = [_vector(path, p, "space direction") for p in parts]
        spatial = [v for v in vectors if v is not None]
        if len(spatial) < 2 or len({len(v) for v in spatial}) != 1:
            raise bad(path, f"space directions {fields['space directions']!r} are inconsistent")
        matrix = np.array(spatial, dtype=np.float64).T
        if matrix.shape[0] == matrix.shape[1]:
            check_direction(path, matrix, "space directions")
        elif not np.all(np.isfinite(matrix)) or np.any(np.linalg.norm(matrix, axis=0) == 0):
            raise bad(path, f"space directions {fields['space directions']!r} are not finite or zero")
    if "spacings" in fields:
        values = parse_floats(path, fields["spacings"], "spacings")
        if len(values) != dim:
            raise bad(path, f"spacings {fields['spacings']!r} must have {dim} numbers")
        finite = [v for v in values if not math.isnan(v)]
        if len(finite) < min(dim, 3) or any(not math.isfinite(v) or v <= 0 for v in finite):
            raise bad(path, f"spacings {fields['spacings']!r}: voxel sizes must be finite and > 0 mm")
    if "space origin" in fields:
        origin = _vector(path, fields["space origin"], "space origin")
        if origin is None:
            raise bad(path, "space origin 'none' is not a position")
        check_origin(path, origin, "space origin")
