"""MetaImage (`.mha`/`.mhd`) header parser and validator (ours), run before ITK MetaIO sees the file.

ITK's MetaIO crashes on some headers (`NDims = -1`, `99`, `1000000` segfault or abort) and
trusts others (an `ElementDataFile` anywhere on disk, a `CompressedDataSize` of terabytes):
such headers are refused here. Strict on purpose: a key given twice, an unknown element type,
ASCII data, file lists and patterns are refused too.
"""

from __future__ import annotations

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
    check_spacing,
    contained_data_file,
    parse_floats,
    parse_int,
)
from scanio.limits import open_regular

_ELEMENT_SIZES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
    "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}
_KNOWN_BOOL = {"true": True, "false": False, "1": True, "0": False}
_GEOMETRY_KEYS = ("offset", "position", "origin")
_MATRIX_KEYS = ("transformmatrix", "rotation", "orientation")


def parse_metaio(path: Path) -> tuple[dict[str, str], int]:
    """Fields `{lower-case key: value}` up to `ElementDataFile`, and the byte offset after it."""
    with open_regular(path) as f:
        head = f.read(MAX_HEADER_BYTES + 1)
    fields: dict[str, str] = {}
    pos = 0
    while True:
        end = head.find(b"\n", pos)
        if end < 0:
            if len(head) > MAX_HEADER_BYTES:
                raise bad(path, f"no ElementDataFile in the first {MAX_HEADER_BYTES} bytes")
            end = len(head)
        raw_line = head[pos:end]
        line = raw_line.decode("latin-1").strip()
        next_pos = end + 1
        if line:
            sep = line.find("=")
            if sep < 0:
                sep = line.find(":")
            if sep <= 0:
                if not fields:
                    raise NotAScanError(f"{path}: not a MetaImage file (no 'Key = Value' header)", path)
                raise bad(path, f"header line {line[:60]!r} is not 'Key = Value'")
            key, value = line[:sep].strip().lower(), line[sep + 1:].strip()
            if key in fields:
                raise bad(path, f"key {line[:sep].strip()!r} is given twice")
            fields[key] = value
            if key == "elementdatafile":
                return fields, min(next_pos, len(head))
        if end >= len(head):
            if not fields or ("ndims" not in fields and "objecttype" not in fields):
                raise NotAScanError(f"{path}: not a MetaImage file (no NDims/ObjectType)", path)
            raise bad(path, "the header has no ElementDataFile line")
        pos = next_pos


def validate_metaio(path: Path) -> HeaderInfo:
    """Check a `.mha`/`.mhd` header; the returned `HeaderInfo` says where the data are."""
    fields, header_end = parse_metaio(path)
    if "objecttype" in fields and fields["objecttype"].lower() != "image":
        raise NotAScanError(f"{path}: MetaIO ObjectType {fields['objecttype']!r} is not an Image", path)
    if "ndims" not in fields:
        raise bad(path, "NDims is missing")
    ndims = parse_int(path, fields["ndims"], "NDims", 1, 4)
    if ndims < 2:
        raise bad(path, f"NDims = {ndims}; a 3D volume is needed")
    if "dimsize" not in fields:
        raise bad(path, "DimSize is missing")
    dim_parts = fields["dimsize"].split()
    if len(dim_parts) != ndims:
        raise bad(path, f"DimSize {fields['dimsize']!r} must have NDims = {ndims} numbers")
    sizes = check_sizes(path, [parse_int(path, s, "DimSize", 0, 1 << 62) for s in dim_parts])
    element = fields.get("elementtype", "").upper()
    if element not in _ELEMENT_SIZES:
        raise bad(path, f"ElementType {fields.get('elementtype')!r} is not a scalar type scanio reads")
    components = parse_int(path, fields.get("elementnumberofchannels", "1"),
                           "ElementNumberOfChannels", 1, 1024)
    for key in ("binarydata", "compresseddata", "binarydatabyteordermsb", "elementbyteordermsb"):
        if key in fields and fields[key].lower() not in _KNOWN_BOOL:
            raise bad(path, f"{key} = {fields[key]!r} must be True or False")
    if not _KNOWN_BOOL.get(fields.get("binarydata", "true").lower(), True):
        raise bad(path, "BinaryData = False (ASCII voxels) is not read; save the image as binary")
    compressed = _KNOWN_BOOL.get(fields.get("compresseddata", "false").lower(), False)
    info = HeaderInfo(path=path, fmt="MetaImage", sizes=sizes, itemsize=_ELEMENT_SIZES[element],
                      components=components, compression="gzip" if compressed else "raw")
    _check_geometry(path, fields, ndims)

    name = fields["elementdatafile"]
    header_size = parse_int(path, fields.get("headersize", "0"), "HeaderSize", -1, 1 << 40)
    if name.upper() == "LOCAL":
        info.data_path, info.data_offset = path, header_end
    else:
        if name.upper().startswith("LIST") or "%" in name or len(name.split()) > 1:
            raise bad(path, f"ElementDataFile {name!r}: lists and file-name patterns are not read; "
                            "put the voxels in one file")
        info.data_path = contained_data_file(path, name, "ElementDataFile")
        info.data_offset = header_size
    if header_size == -1 and compressed:
        raise bad(path, "HeaderSize = -1 is only meaningful for uncompressed data")
    if compressed and "compresseddatasize" in fields:
        claimed = parse_int(path, fields["compresseddatasize"], "CompressedDataSize", 0, 1 << 50)
        available = info.data_path.stat().st_size - max(info.data_offset, 0)
        if claimed > available:
            raise bad(path, f"CompressedDataSize = {claimed} but only {available} bytes follow")
    return info


def _check_geometry(path: Path, fields: dict[str, str], ndims: int) -> None:
    spatial = min(ndims, 3)
    for key in ("elementspacing", "elementsize"):
        if key in fields:
            values = parse_floats(path, fields[key], key)
            if len(values) < spatial:
                raise bad(path, f"{key} {fields[key]!r} must have {ndims} numbers")
            check_spacing(path, values[:spatial], "ElementSpacing" if key == "elementspacing" else "ElementSize")
    given = [k for k in _GEOMETRY_KEYS if k in fields]
    for key in given:
        values = parse_floats(path, fields[key], key)
        if len(values) < spatial:
            raise bad(path, f"{key} {fields[key]!r} must have {ndims} numbers")
        check_origin(path, values, key.capitalize())
    for key in (k for k in _MATRIX_KEYS if k in fields):
        values = parse_floats(path, fields[key], key)
        if len(values) != ndims * ndims:
            raise bad(path, f"{key} {fields[key]!r} must have {ndims * ndims} numbers")
        matrix = np.array(values, dtype=np.float64).reshape(ndims, ndims)
        check_direction(path, matrix[:spatial, :spatial], key.capitalize())
    if "centerofrotation" in fields:
        check_origin(path, parse_floats(path, fields["centerofrotation"], "CenterOfRotation"),
                     "CenterOfRotation")
