"""NIfTI-1/-2 header validation with nibabel (raw fields, `check=False`) before ITK reads the file.

nibabel parses the binary header; we check what ITK would silently repair or trust: the magic
(single-file `n+1`/`n+2` only), dimensions, datatype, `vox_offset` (an integer past the header,
data present up to it plus the voxels), finite non-zero `pixdim`, finite quaternion and offsets,
a finite non-singular sform, a finite scaling. After ITK has read the geometry, `compare_forms`
records in the scan's warnings where qform, sform and pixdim disagree and which one was used.
"""

from __future__ import annotations

import gzip
import io
import math
from pathlib import Path

import numpy as np

from scanio.errors import NotAScanError
from scanio.header_info import HeaderInfo, bad, check_direction, check_origin
from scanio.limits import open_regular

_NIFTI1_SIZE, _NIFTI2_SIZE = 348, 540
_FORM_ATOL_MM = 1e-2  # translation disagreement tolerated between qform/sform/ITK
_FORM_ATOL = 1e-3  # matrix disagreement tolerated (per element, mm per voxel)


def _head(path: Path, gz: bool) -> bytes:
    with open_regular(path) as raw:
        if not gz:
            return raw.read(_NIFTI2_SIZE + 4)
        try:
            with gzip.GzipFile(fileobj=raw) as g:
                return g.read(_NIFTI2_SIZE + 4)
        except EOFError:
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) as g:  # a stream cut inside the header
                out = b""
                try:
                    while len(out) < _NIFTI2_SIZE + 4:
                        chunk = g.read1(64) if hasattr(g, "read1") else g.read(64)
                        if not chunk:
                            break
                        out += chunk
                except EOFError:
                    pass
                return out
        except OSError as exc:
            raise bad(path, f"gzip stream cannot be read ({exc})") from None


def read_nifti_header(path: Path):
    """The nibabel header of `path` (NIfTI-1 or -2, either byte order), not yet validated."""
    import nibabel as nib

    gz = path.name.lower().endswith(".gz")
    head = _head(path, gz)
    if len(head) < 4:
        raise NotAScanError(f"{path}: not a NIfTI file (empty or a few bytes)", path)
    size_le, size_be = int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")
    if _NIFTI1_SIZE in (size_le, size_be):
        cls, size = nib.Nifti1Header, _NIFTI1_SIZE
    elif _NIFTI2_SIZE in (size_le, size_be):
        cls, size = nib.Nifti2Header, _NIFTI2_SIZE
    else:
        raise NotAScanError(
            f"{path}: not a NIfTI file (its content does not match the extension)", path)
    if len(head) < size:
        raise bad(path, f"the file ends inside the {size}-byte NIfTI header ({len(head)} bytes)")
    try:
        return cls.from_fileobj(io.BytesIO(head[:size]), check=False)
    except Exception as exc:  # nibabel raises assorted errors on damaged headers
        raise bad(path, f"NIfTI header cannot be parsed ({type(exc).__name__}: {exc})") from None


def validate_nifti(path: Path) -> HeaderInfo:
    """Check a `.nii`/`.nii.gz` header; the returned `HeaderInfo` gives the data size and offset."""
    import nibabel as nib

    hdr = read_nifti_header(path)
    gz = path.name.lower().endswith(".gz")
    magic = bytes(hdr["magic"]).rstrip(b"\x00")
    pair_magic = magic in (b"ni1", b"ni2")
    if magic not in (b"n+1", b"n+2", b"ni1", b"ni2"):
        raise bad(path, f"magic {magic!r} is not a NIfTI magic ('n+1'/'n+2')")
    dim = [int(v) for v in hdr["dim"]]
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise bad(path, f"dim[0] = {ndim}; it must be 1..7")
    sizes = dim[1:ndim + 1]
    for k, s in enumerate(sizes):
        if not 1 <= s <= (1 << 31):
            raise bad(path, f"dim[{k + 1}] = {s}; sizes must be >= 1")
    code = int(hdr["datatype"])
    try:
        dtype = nib.nifti1.data_type_codes.dtype[code]
    except KeyError:
        raise bad(path, f"unknown datatype code {code}") from None
    itemsize = np.dtype(dtype).itemsize
    if itemsize == 0:
        raise bad(path, f"datatype code {code} has no voxel size")
    header_size = _NIFTI1_SIZE if isinstance(hdr, nib.Nifti1Header) and not isinstance(
        hdr, nib.Nifti2Header) else _NIFTI2_SIZE
    vox_offset = float(hdr["vox_offset"])
    if not math.isfinite(vox_offset) or vox_offset != int(vox_offset) or \
            not header_size + 4 <= vox_offset <= (1 << 40):
        raise bad(path, f"vox_offset {vox_offset} must be an integer >= {header_size + 4} "
                        "(the voxels start after the header)")
    info = HeaderInfo(path=path, fmt="NIfTI", sizes=tuple(sizes), itemsize=itemsize,
                      data_path=path, data_offset=int(vox_offset),
                      compression="gzip" if gz else "raw")
    if pair_magic:  # ITK reads the voxels from this file at vox_offset, never from a .img beside it
        info.warnings.append(f"{path}: NIfTI magic {magic.decode()!r} (header/image pair) in a single "
                             f"file: voxels read from this file at byte {int(vox_offset)}")
    _check_geometry(path, hdr, ndim, info)
    return info


def _check_geometry(path: Path, hdr, ndim: int, info: HeaderInfo) -> None:
    pixdim = [float(v) for v in hdr["pixdim"]]
    spatial = pixdim[1:min(ndim, 3) + 1]
    for k, p in enumerate(spatial, start=1):
        if not math.isfinite(p) or p == 0:
            raise bad(path, f"pixdim[{k}] = {p}; voxel sizes must be finite and non-zero")
    qcode, scode = int(hdr["qform_code"]), int(hdr["sform_code"])
    if any(p < 0 for p in spatial):
        if qcode > 0:  # the qform's rotation is then ambiguous: ITK and nibabel disagree
            raise bad(path, f"negative pixdim {spatial} with a qform: the orientation is ambiguous")
        info.warnings.append(
            f"{path}: negative pixdim {spatial}: voxel sizes taken as their absolute values")
    if qcode > 0:
        quat = [float(hdr[k]) for k in ("quatern_b", "quatern_c", "quatern_d")]
        offset = [float(hdr[k]) for k in ("qoffset_x", "qoffset_y", "qoffset_z")]
        if not all(math.isfinite(v) for v in quat) or sum(v * v for v in quat) > 1.0 + 1e-4:
            raise bad(path, f"qform quaternion {quat} is not a rotation")
        if not math.isfinite(pixdim[0]):
            raise bad(path, f"pixdim[0] (qfac) = {pixdim[0]} is not finite")
        check_origin(path, offset, "qoffset")
    if scode > 0:
        srow = np.array([hdr["srow_x"], hdr["srow_y"], hdr["srow_z"]], dtype=np.float64)
        check_origin(path, srow[:, 3], "sform offset")
        check_direction(path, srow[:, :3], "sform")
    slope, inter = float(hdr["scl_slope"]), float(hdr["scl_inter"])
    if slope != 0 and not (math.isfinite(slope) and math.isfinite(inter)):
        raise bad(path, f"scaling scl_slope={slope}, scl_inter={inter} is not finite")


def compare_forms(path: Path, image, info: HeaderInfo) -> None:
    """Warn (in `info.warnings`) when ITK's geometry, the qform and the sform disagree."""
    hdr = read_nifti_header(path)
    spacing = np.array(image.GetSpacing()[:3], dtype=np.float64)
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(image.GetDimension(), -1)[:3, :3]
    used = np.eye(4)
    used[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ direction @ np.diag(spacing)
    used[:3, 3] = np.diag([-1.0, -1.0, 1.0]) @ np.array(image.GetOrigin()[:3], dtype=np.float64)
    forms = {}
    for name, code in (("qform", "qform_code"), ("sform", "sform_code")):
        if int(hdr[code]) > 0:
            try:
                forms[name] = hdr.get_qform() if name == "qform" else hdr.get_sform()
            except Exception as exc:  # noqa: BLE001 - nibabel refuses e.g. negative pixdim
                info.warnings.append(f"{path}: the {name} cannot be evaluated ({exc}); geometry "
                                     "taken as ITK reads it — check the file")
    if not forms:
        return

    def differ(a, b) -> bool:
        return not (np.allclose(a[:3, :3], b[:3, :3], atol=_FORM_ATOL, rtol=0)
                    and np.allclose(a[:3, 3], b[:3, 3], atol=_FORM_ATOL_MM, rtol=0))

    agree = [name for name, m in forms.items() if not differ(m, used)]
    rest = [name for name in forms if name not in agree]
    if not rest:
        return
    source = " and ".join(agree) if agree else "pixdim with the header's orientation"
    for name in rest:
        delta = float(np.max(np.abs(forms[name][:3, :] - used[:3, :])))
        info.warnings.append(
            f"{path}: the {name} disagrees with the geometry used (from the {source}) by up to "
            f"{delta:.4g} mm; geometry taken from the {source}, as ITK reads it — check the file")
