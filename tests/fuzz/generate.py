"""Seeded generator of damaged and hostile inputs for the fuzz suite (small files in a temp dir).

`generate_cases(root, seed)` writes every case under `root` and returns a list of case dicts:

- `id`, `fmt` (nifti, nrrd, metaimage, dicom-series, dicom-file, special, prompts, manifest,
  summary, cli), `cls` (control, truncation, bitflip, absurd, nonfinite, detached, special,
  sizebomb, inconsistent, trailing, types, encoding),
- `kind`: "read" (`scanio.read_scan(path)`), "cli" (`napari_sam2.cli.main(argv)` in process),
  "manifest" (`volume.batch.read_manifest(path)`), "summary" (the batch's summary check),
- `expect`: "ok" (a valid control: must read exactly as `ref`), "error" (a typed error),
  "either" (a typed error or exactly `ref`), "any" (a typed error or a read with finite
  geometry), "warn" (a typed error or a read that records a warning),
- `ref`: an .npz with the expected array and geometry, `sentinels`: files outside the input the
  case points at (their content must never appear in voxels, their atime must not change).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import socket
import zlib
from pathlib import Path

import numpy as np

SHAPE_ZYX = (5, 6, 7)
SPACING_XYZ = (0.75, 0.8, 2.5)
ORIGIN_XYZ = (-12.5, 30.25, 7.0)
MARKER = b"OUTSIDE!SENTINEL"  # the sentinel's content: must never show up in voxels
_FACTORY = Path(__file__).resolve().parents[1] / "scanio" / "dicom_factory.py"


class Gen:
    """Writes cases under `root` with a seeded RNG; `cases` accumulates their descriptions."""

    def __init__(self, root: Path, seed: int):
        self.root = Path(root)
        self.rng = np.random.default_rng(seed)
        self.cases: list[dict] = []
        self.outside = self.root / "outside"
        self.outside.mkdir(parents=True, exist_ok=True)
        self.array = self.rng.integers(-1000, 2000, size=SHAPE_ZYX).astype(np.int16)
        self.ref = self.root / "ref_int16.npz"
        np.savez(self.ref, array=self.array, spacing_xyz=np.array(SPACING_XYZ),
                 origin_xyz=np.array(ORIGIN_XYZ), direction=np.eye(3).ravel())

    def folder(self, case_id: str) -> Path:
        d = self.root / "cases" / case_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    def sentinel(self, case_id: str) -> Path:
        """A file outside every case folder, its atime set before its mtime (so a read shows)."""
        path = self.outside / f"sentinel_{case_id}.raw"
        path.write_bytes(MARKER * 4096)
        st = os.stat(path)
        os.utime(path, (st.st_mtime - 10_000, st.st_mtime))
        return path

    def add(self, case_id: str, fmt: str, cls: str, expect: str, *, path=None, kind: str = "read",
            argv=None, ref=None, sentinels=(), torch: bool = False, **extra) -> None:
        self.cases.append(dict(
            id=case_id, fmt=fmt, cls=cls, expect=expect, kind=kind,
            path=str(path) if path is not None else None, argv=argv,
            ref=str(ref) if ref is not None else None,
            sentinels=[str(s) for s in sentinels], torch=torch, **extra))


# ----------------------------------------------------------------------------- NIfTI

def _nifti_bytes(gen: Gen, mutate=None, nifti2: bool = False) -> bytes:
    import nibabel as nib

    xyz = np.ascontiguousarray(np.transpose(gen.array, (2, 1, 0)))
    affine = np.diag([-SPACING_XYZ[0], -SPACING_XYZ[1], SPACING_XYZ[2], 1.0])  # LPS -> RAS
    affine[:3, 3] = [-ORIGIN_XYZ[0], -ORIGIN_XYZ[1], ORIGIN_XYZ[2]]
    cls = nib.Nifti2Image if nifti2 else nib.Nifti1Image
    img = cls(xyz, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    hdr = img.header
    hdr.set_data_dtype(np.int16)
    hdr["scl_slope"], hdr["scl_inter"] = 1.0, 0.0
    hdr["vox_offset"] = 544 if nifti2 else 352
    if mutate is not None:
        mutate(hdr)
    block = hdr.binaryblock
    offset = int(hdr["vox_offset"]) if np.isfinite(hdr["vox_offset"]) and 0 < hdr["vox_offset"] < 4096 \
        else len(block) + 4
    pad = b"\0" * max(0, offset - len(block))
    return block + pad + xyz.tobytes(order="F")


def _write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data, 6, mtime=0) if gz else data)
    return path


def nifti_cases(gen: Gen) -> None:
    valid = _nifti_bytes(gen)
    for ext, gz in ((".nii", False), (".nii.gz", True)):
        tag = "niigz" if gz else "nii"
        gen.add(f"{tag}-control", "nifti", "control", "ok",
                path=_write(gen.folder(f"{tag}-control") / f"scan{ext}", valid, gz), ref=gen.ref)
    # NIfTI-2: read exactly, or (SimpleITK builds without it) refused with a typed error
    gen.add("nii2-valid", "nifti", "control", "either",
            path=_write(gen.folder("nii2-valid") / "scan.nii", _nifti_bytes(gen, nifti2=True)), ref=gen.ref)
    # truncation: at many offsets, raw and gzip
    for cut in (0, 1, 3, 4, 100, 347, 348, 351, 352, 353, 400, len(valid) // 2, len(valid) - 2, len(valid) - 1):
        gen.add(f"nii-trunc{cut}", "nifti", "truncation", "either",
                path=_write(gen.folder(f"nii-trunc{cut}") / "scan.nii", valid[:cut]), ref=gen.ref)
    packed = gzip.compress(valid, 6, mtime=0)
    for cut in (10, 30, len(packed) // 3, len(packed) // 2, len(packed) - 12, len(packed) - 8, len(packed) - 1):
        path = gen.folder(f"niigz-trunc{cut}") / "scan.nii.gz"
        path.write_bytes(packed[:cut])
        gen.add(f"niigz-trunc{cut}", "nifti", "truncation", "either", path=path, ref=gen.ref)
    # data cut inside a valid gzip stream (the stream itself complete)
    for keep in (352, 360, len(valid) - 100, len(valid) - 1):
        gen.add(f"niigz-short{keep}", "nifti", "truncation", "error",
                path=_write(gen.folder(f"niigz-short{keep}") / "scan.nii.gz", valid[:keep], gz=True))
    # trailing bytes: garbage after the voxels, and a gzip bomb of zeros after a valid NIfTI
    gen.add("nii-trailing", "nifti", "trailing", "ok", ref=gen.ref,
            path=_write(gen.folder("nii-trailing") / "scan.nii", valid + b"\x7f" * 5000))
    bomb = gen.folder("niigz-trailing-bomb") / "scan.nii.gz"
    with gzip.GzipFile(bomb, "wb", compresslevel=9, mtime=0) as f:
        f.write(valid)
        zeros = b"\0" * (1 << 22)
        for _ in range(64):  # 256 MiB of zeros, ~250 KiB on disk
            f.write(zeros)
    gen.add("niigz-trailing-bomb", "nifti", "sizebomb", "ok", path=bomb, ref=gen.ref)

    def field(name, value, index=None):
        def mutate(h):
            if index is None:
                h[name] = value
            else:
                arr = h[name].copy()
                arr[index] = value
                h[name] = arr
        return mutate

    absurd = {
        "dim0-neg": field("dim", -1, 0), "dim0-zero": field("dim", 0, 0), "dim0-8": field("dim", 8, 0),
        "dim0-100": field("dim", 100, 0), "dim1-zero": field("dim", 0, 1), "dim2-neg": field("dim", -5, 2),
        "dim3-neg": field("dim", -32768, 3), "datatype-999": field("datatype", 999),
        "datatype-0": field("datatype", 0), "datatype-rgb": field("datatype", 128),
        "datatype-f128": field("datatype", 1536), "bitpix-3": field("bitpix", 3),
        "voxoffset-0": field("vox_offset", 0), "voxoffset-100": field("vox_offset", 100),
        "voxoffset-353": field("vox_offset", 353), "voxoffset-1e9": field("vox_offset", 1e9),
        "voxoffset-neg": field("vox_offset", -352), "voxoffset-frac": field("vox_offset", 352.5),
        "quatern-big": field("quatern_b", 7.0),
        "magic-garbage": field("magic", b"xyz"), "dim4-2": lambda h: (field("dim", 4, 0)(h), field("dim", 2, 4)(h)),
        "sform-singular": lambda h: (field("srow_x", np.zeros(4))(h), field("qform_code", 0)(h)),
    }
    for name, mutate in absurd.items():
        gen.add(f"nii-{name}", "nifti", "absurd", "any",
                path=_write(gen.folder(f"nii-{name}") / "scan.nii", _nifti_bytes(gen, mutate)))
    nonfinite = {}
    for k in (1, 2, 3):
        for label, value in (("nan", np.nan), ("inf", np.inf), ("zero", 0.0)):
            nonfinite[f"pixdim{k}-{label}"] = field("pixdim", value, k)
    for key in ("qoffset_x", "qoffset_z", "quatern_c"):
        nonfinite[f"{key}-nan"] = field(key, np.nan)
        nonfinite[f"{key}-inf"] = field(key, np.inf)
    for row in ("srow_x", "srow_z"):
        for label, value in (("nan", np.nan), ("inf", -np.inf)):
            def mutate(h, row=row, value=value):
                arr = h[row].copy()
                arr[3] = value
                h[row] = arr
            nonfinite[f"{row}-{label}"] = mutate
    nonfinite["slope-nan"] = lambda h: (field("scl_slope", np.nan)(h), field("scl_inter", 5.0)(h))
    nonfinite["slope-inf"] = field("scl_slope", np.inf)
    nonfinite["inter-nan"] = field("scl_inter", np.nan)
    for name, mutate in nonfinite.items():
        gz = name.endswith("inf") and "pixdim" in name
        ext = ".nii.gz" if gz else ".nii"
        gen.add(f"nii-{name}", "nifti", "nonfinite", "error",
                path=_write(gen.folder(f"nii-{name}") / f"scan{ext}", _nifti_bytes(gen, mutate), gz))
    # documented choices: disagreeing forms must be reported, negative pixdim too
    def sform_shift(h):
        aff = h.get_sform()
        aff[:3, 3] += 25.0
        h.set_sform(aff, code=2)
    def sform_scale(h):
        aff = h.get_sform()
        aff[:3, :3] *= 1.5
        h.set_sform(aff, code=2)
        h.set_qform(None, code=0)
    for name, mutate in (("forms-disagree", sform_shift), ("sform-vs-pixdim", sform_scale),
                         ("magic-ni1", field("magic", b"ni1")),
                         ("pixdim-negative", field("pixdim", -SPACING_XYZ[0], 1))):
        gen.add(f"nii-{name}", "nifti", "inconsistent", "warn",
                path=_write(gen.folder(f"nii-{name}") / "scan.nii", _nifti_bytes(gen, mutate)))
    # size bombs: headers claiming huge volumes over a few bytes of data
    for name, dims, gz in (("1024cube-gz", (1024, 1024, 1024), True), ("1024cube", (1024, 1024, 1024), False),
                           ("32767cube", (32767, 32767, 32767), True), ("flat-2e9", (32767, 32767, 2), False)):
        def mutate(h, dims=dims):
            d = h["dim"].copy()
            d[1:4] = dims
            h["dim"] = d
            h.set_data_dtype(np.int32)
        data = _nifti_bytes(gen, mutate)
        if gz:
            data = data + b"\0" * (2 << 20)
        gen.add(f"nii-bomb-{name}", "nifti", "sizebomb", "error",
                path=_write(gen.folder(f"nii-bomb-{name}") / ("scan.nii.gz" if gz else "scan.nii"), data, gz))
    # bit flips in the header
    for k in range(24):
        data = bytearray(valid)
        for _ in range(int(gen.rng.integers(1, 4))):
            pos = int(gen.rng.integers(0, 352))
            data[pos] ^= 1 << int(gen.rng.integers(0, 8))
        gz = k % 3 == 0
        gen.add(f"nii-flip{k}", "nifti", "bitflip", "any",
                path=_write(gen.folder(f"nii-flip{k}") / ("scan.nii.gz" if gz else "scan.nii"), bytes(data), gz))


# ----------------------------------------------------------------------------- NRRD

def _nrrd_header(fields: dict) -> bytes:
    lines = ["NRRD0004"] + [f"{k}: {v}" for k, v in fields.items() if v is not None]
    return ("\n".join(lines) + "\n").encode("latin-1")


def _nrrd_fields(**overrides) -> dict:
    sx, sy, sz = SPACING_XYZ
    fields = {
        "type": "short", "dimension": "3", "space": "left-posterior-superior",
        "sizes": f"{SHAPE_ZYX[2]} {SHAPE_ZYX[1]} {SHAPE_ZYX[0]}",
        "space directions": f"({sx},0,0) (0,{sy},0) (0,0,{sz})", "kinds": "domain domain domain",
        "endian": "little", "encoding": "raw",
        "space origin": f"({ORIGIN_XYZ[0]},{ORIGIN_XYZ[1]},{ORIGIN_XYZ[2]})",
    }
    fields.update(overrides)
    return fields


def _nrrd(gen: Gen, **overrides) -> bytes:
    fields = _nrrd_fields(**overrides)
    data = gen.array.astype("<i2").tobytes()
    if fields.get("encoding") == "gzip":
        data = gzip.compress(data, 6, mtime=0)
    return _nrrd_header(fields) + b"\n" + data


def _detached_targets(gen: Gen, case_id: str, folder: Path) -> list[tuple[str, str, list]]:
    """(name, data-file value, sentinels) for the detached-file tricks of one case folder."""
    sent = gen.sentinel(case_id)
    targets = [
        ("absolute", str(sent), [sent]),
        ("dotdot", os.path.relpath(sent, folder), [sent]),
        ("sub-dotdot", "sub/../" + os.path.relpath(sent, folder), [sent]),
        ("dev-zero", "/dev/zero", []),
        ("proc-environ", "/proc/self/environ", []),
        ("etc-passwd", "/etc/passwd", []),
        ("missing", "no_such_file.raw", []),
    ]
    (folder / "sub").mkdir(exist_ok=True)
    link = folder / "link.raw"
    link.symlink_to(sent)
    targets.append(("symlink-out", "link.raw", [sent]))
    zlink = folder / "zero.raw"
    zlink.symlink_to("/dev/zero")
    targets.append(("symlink-devzero", "zero.raw", []))
    os.mkfifo(folder / "pipe.raw")
    targets.append(("fifo", "pipe.raw", []))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(folder / "sock.raw"))
        targets.append(("socket", "sock.raw", []))
    except OSError:
        pass
    finally:
        sock.close()
    targets.append(("folder", "sub", []))
    return targets


def nrrd_cases(gen: Gen) -> None:
    raw_file = _nrrd(gen)
    gz_file = _nrrd(gen, encoding="gzip")
    for name, data in (("raw", raw_file), ("gzip", gz_file)):
        gen.add(f"nrrd-control-{name}", "nrrd", "control", "ok", ref=gen.ref,
                path=_write(gen.folder(f"nrrd-control-{name}") / "scan.nrrd", data))
    folder = gen.folder("nhdr-control")
    (folder / "scan.raw").write_bytes(gen.array.astype("<i2").tobytes())
    (folder / "scan.nhdr").write_bytes(_nrrd_header(_nrrd_fields(**{"data file": "scan.raw"})))
    gen.add("nhdr-control", "nrrd", "control", "ok", path=folder / "scan.nhdr", ref=gen.ref)
    folder = gen.folder("nhdr-control-sub")
    (folder / "data").mkdir()
    (folder / "data" / "scan.raw.gz").write_bytes(gzip.compress(gen.array.astype("<i2").tobytes()))
    (folder / "scan.nhdr").write_bytes(_nrrd_header(_nrrd_fields(encoding="gzip", **{"data file": "data/scan.raw.gz"})))
    gen.add("nhdr-control-sub", "nrrd", "control", "ok", path=folder / "scan.nhdr", ref=gen.ref)
    # detached-file tricks
    for case_base in ("nhdr", "nrrd"):
        probe = gen.folder(f"{case_base}-detached")
        for name, value, sentinels in _detached_targets(gen, f"{case_base}-detached", probe):
            case_id = f"{case_base}-detached-{name}"
            header = _nrrd_header(_nrrd_fields(type="uchar", endian=None, **{"data file": value}))
            path = probe / f"{name}.{case_base}"
            path.write_bytes(header)
            gen.add(case_id, "nrrd", "detached", "error", path=path, sentinels=sentinels)
    for name, value in (("list", "LIST\nscan.raw"), ("pattern", "slice%03d.raw 0 4 1 2")):
        folder = gen.folder(f"nhdr-{name}")
        (folder / "scan.raw").write_bytes(gen.array.astype("<i2").tobytes())
        (folder / "scan.nhdr").write_bytes(_nrrd_header(_nrrd_fields(**{"data file": value})))
        gen.add(f"nhdr-{name}", "nrrd", "detached", "error", path=folder / "scan.nhdr")
    # truncation
    header_len = len(raw_file) - gen.array.nbytes
    for cut in (0, 4, 20, header_len - 2, header_len, header_len + 10, len(raw_file) - 1):
        gen.add(f"nrrd-trunc{cut}", "nrrd", "truncation", "either", ref=gen.ref,
                path=_write(gen.folder(f"nrrd-trunc{cut}") / "scan.nrrd", raw_file[:cut]))
    gz_header = len(_nrrd_header(_nrrd_fields(encoding="gzip"))) + 1
    for cut in (gz_header + 5, gz_header + 40, len(gz_file) - 9, len(gz_file) - 1):
        gen.add(f"nrrd-gztrunc{cut}", "nrrd", "truncation", "either", ref=gen.ref,
                path=_write(gen.folder(f"nrrd-gztrunc{cut}") / "scan.nrrd", gz_file[:cut]))
    # absurd and non-finite header values
    absurd = {
        "dim-neg": {"dimension": "-1"}, "dim-0": {"dimension": "0"}, "dim-17": {"dimension": "17"},
        "dim-1e6": {"dimension": "1000000"}, "dim-text": {"dimension": "three"},
        "sizes-0": {"sizes": "7 0 5"}, "sizes-neg": {"sizes": "7 -6 5"}, "sizes-count": {"sizes": "7 6"},
        "sizes-frac": {"sizes": "7 6.5 5"}, "type-block": {"type": "block"}, "type-foo": {"type": "foo"},
        "encoding-foo": {"encoding": "lzma"}, "endian-missing": {"endian": None},
        "endian-middle": {"endian": "middle"}, "byteskip-huge": {"byte skip": "1000000000"},
        "byteskip-neg2": {"byte skip": "-2"}, "lineskip-huge": {"line skip": "1000000"},
        "ascii-short": {"encoding": "ascii"}, "hex-short": {"encoding": "hex"},
        "gzip-not-gzip": {"encoding": "gzip"}, "bzip2-not-bzip2": {"encoding": "bzip2"},
        "dirs-count": {"space directions": "(1,0,0) (0,1,0)"},
        "dirs-garbage": {"space directions": "(1,0,0) (0,1 0) [0,0,1]"},
    }
    for name, overrides in absurd.items():
        gen.add(f"nrrd-{name}", "nrrd", "absurd", "any",
                path=_write(gen.folder(f"nrrd-{name}") / "scan.nrrd", _nrrd(gen, **overrides)))
    sx, sy, sz = SPACING_XYZ
    nonfinite = {
        "dir-nan": {"space directions": f"(nan,0,0) (0,{sy},0) (0,0,{sz})"},
        "dir-inf": {"space directions": f"({sx},0,0) (0,inf,0) (0,0,{sz})"},
        "dir-zero": {"space directions": f"(0,0,0) (0,{sy},0) (0,0,{sz})"},
        "dir-parallel": {"space directions": f"({sx},0,0) ({sx},0,0) (0,0,{sz})"},
        "origin-nan": {"space origin": "(nan,0,0)"}, "origin-inf": {"space origin": "(0,-inf,0)"},
        "spacings-nan": {"space directions": None, "space origin": None, "space": None, "spacings": "nan 1 1"},
        "spacings-zero": {"space directions": None, "space origin": None, "space": None, "spacings": "1 0 1"},
        "spacings-neg": {"space directions": None, "space origin": None, "space": None, "spacings": "1 1 -2"},
        "spacings-inf": {"space directions": None, "space origin": None, "space": None, "spacings": "inf 1 1"},
    }
    for name, overrides in nonfinite.items():
        gen.add(f"nrrd-{name}", "nrrd", "nonfinite", "error",
                path=_write(gen.folder(f"nrrd-{name}") / "scan.nrrd", _nrrd(gen, **overrides)))
    dup = _nrrd_header(_nrrd_fields()) .replace(b"encoding: raw\n", b"encoding: raw\nsizes: 700 600 500\n")
    gen.add("nrrd-duplicate-field", "nrrd", "absurd", "error",
            path=_write(gen.folder("nrrd-duplicate-field") / "scan.nrrd", dup + b"\n" + gen.array.tobytes()))
    for name, dims, typ in (("bomb-2e12", "20000 20000 5000", "short"), ("bomb-1024", "1024 1024 1024", "int")):
        gen.add(f"nrrd-{name}", "nrrd", "sizebomb", "error",
                path=_write(gen.folder(f"nrrd-{name}") / "scan.nrrd",
                            _nrrd(gen, sizes=dims, type=typ, encoding="gzip")))
    folder = gen.folder("nhdr-bomb-devzero")
    link = folder / "zero.raw"
    link.symlink_to("/dev/zero")
    (folder / "scan.nhdr").write_bytes(_nrrd_header(_nrrd_fields(sizes="1024 1024 1024", **{"data file": "zero.raw"})))
    gen.add("nhdr-bomb-devzero", "nrrd", "sizebomb", "error", path=folder / "scan.nhdr")
    for k in range(20):
        data = bytearray(raw_file)
        for _ in range(int(gen.rng.integers(1, 3))):
            pos = int(gen.rng.integers(0, header_len))
            data[pos] ^= 1 << int(gen.rng.integers(0, 7))
        gen.add(f"nrrd-flip{k}", "nrrd", "bitflip", "any",
                path=_write(gen.folder(f"nrrd-flip{k}") / "scan.nrrd", bytes(data)))


# ----------------------------------------------------------------------------- MetaImage

def _mha_fields(**overrides) -> dict:
    fields = {
        "ObjectType": "Image", "NDims": "3", "BinaryData": "True", "BinaryDataByteOrderMSB": "False",
        "CompressedData": "False", "TransformMatrix": "1 0 0 0 1 0 0 0 1",
        "Offset": " ".join(str(v) for v in ORIGIN_XYZ),
        "ElementSpacing": " ".join(str(v) for v in SPACING_XYZ),
        "DimSize": f"{SHAPE_ZYX[2]} {SHAPE_ZYX[1]} {SHAPE_ZYX[0]}", "ElementType": "MET_SHORT",
    }
    fields.update(overrides)
    return fields


def _mha(gen: Gen, data_file: str = "LOCAL", compressed: bool = False, **overrides) -> bytes:
    fields = _mha_fields(**overrides)
    data = gen.array.astype("<i2").tobytes()
    if compressed:
        data = zlib.compress(data)
        fields["CompressedData"] = "True"
        fields.setdefault("CompressedDataSize", str(len(data)))
    fields["ElementDataFile"] = data_file
    text = "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None)
    return text.encode("latin-1") + (data if data_file == "LOCAL" else b"")


def metaimage_cases(gen: Gen) -> None:
    local = _mha(gen)
    packed = _mha(gen, compressed=True)
    gen.add("mha-control", "metaimage", "control", "ok", ref=gen.ref,
            path=_write(gen.folder("mha-control") / "scan.mha", local))
    gen.add("mha-control-zlib", "metaimage", "control", "ok", ref=gen.ref,
            path=_write(gen.folder("mha-control-zlib") / "scan.mha", packed))
    folder = gen.folder("mhd-control")
    (folder / "scan.raw").write_bytes(gen.array.astype("<i2").tobytes())
    (folder / "scan.mhd").write_bytes(_mha(gen, data_file="scan.raw"))
    gen.add("mhd-control", "metaimage", "control", "ok", path=folder / "scan.mhd", ref=gen.ref)
    for case_base in ("mhd", "mha"):
        probe = gen.folder(f"{case_base}-detached")
        for name, value, sentinels in _detached_targets(gen, f"{case_base}-detached", probe):
            path = probe / f"{name}.{case_base}"
            path.write_bytes(_mha(gen, data_file=value, ElementType="MET_UCHAR"))
            gen.add(f"{case_base}-detached-{name}", "metaimage", "detached", "error", path=path,
                    sentinels=sentinels)
    for name, value in (("list", "LIST"), ("pattern", "slice%03d.raw 1 5 1")):
        folder = gen.folder(f"mhd-{name}")
        (folder / "scan.raw").write_bytes(gen.array.tobytes())
        (folder / "scan.mhd").write_bytes(_mha(gen, data_file=value))
        gen.add(f"mhd-{name}", "metaimage", "detached", "error", path=folder / "scan.mhd")
    header_len = len(local) - gen.array.nbytes
    for cut in (0, 10, header_len // 2, header_len - 1, header_len, header_len + 100, len(local) - 1):
        gen.add(f"mha-trunc{cut}", "metaimage", "truncation", "either", ref=gen.ref,
                path=_write(gen.folder(f"mha-trunc{cut}") / "scan.mha", local[:cut]))
    zheader = len(packed) - len(zlib.compress(gen.array.astype("<i2").tobytes()))
    for cut in (zheader + 3, zheader + 50, len(packed) - 4, len(packed) - 1):
        gen.add(f"mha-ztrunc{cut}", "metaimage", "truncation", "either", ref=gen.ref,
                path=_write(gen.folder(f"mha-ztrunc{cut}") / "scan.mha", packed[:cut]))
    absurd = {
        "ndims-neg1": {"NDims": "-1"}, "ndims-0": {"NDims": "0"}, "ndims-99": {"NDims": "99"},
        "ndims-1e6": {"NDims": "1000000"}, "ndims-1e6-float": {"NDims": "1e6"},
        "ndims-text": {"NDims": "three"}, "ndims-missing": {"NDims": None},
        "dimsize-0": {"DimSize": "7 0 5"}, "dimsize-neg": {"DimSize": "7 -6 5"},
        "dimsize-count": {"DimSize": "7 6"}, "dimsize-missing": {"DimSize": None},
        "eltype-foo": {"ElementType": "MET_FOO"}, "eltype-string": {"ElementType": "MET_STRING"},
        "eltype-missing": {"ElementType": None}, "channels-0": {"ElementNumberOfChannels": "0"},
        "channels-1e9": {"ElementNumberOfChannels": "1000000000"},
        "headersize-huge": {"HeaderSize": "1000000000"}, "headersize-neg5": {"HeaderSize": "-5"},
        "ascii": {"BinaryData": "False"}, "objecttype-mesh": {"ObjectType": "Mesh"},
        "matrix-count": {"TransformMatrix": "1 0 0 1"},
    }
    for name, overrides in absurd.items():
        gen.add(f"mha-{name}", "metaimage", "absurd", "any",
                path=_write(gen.folder(f"mha-{name}") / "scan.mha", _mha(gen, **overrides)))
    gen.add("mha-compressedsize-huge", "metaimage", "absurd", "error",
            path=_write(gen.folder("mha-compressedsize-huge") / "scan.mha",
                        _mha(gen, compressed=True, CompressedDataSize="1000000000000")))
    gen.add("mha-not-zlib", "metaimage", "absurd", "error",
            path=_write(gen.folder("mha-not-zlib") / "scan.mha", _mha(gen, CompressedData="True")))
    nonfinite = {
        "spacing-nan": {"ElementSpacing": "nan 1 1"}, "spacing-inf": {"ElementSpacing": "1 inf 1"},
        "spacing-zero": {"ElementSpacing": "1 1 0"}, "spacing-neg": {"ElementSpacing": "-1 1 1"},
        "offset-nan": {"Offset": "0 nan 0"}, "offset-inf": {"Offset": "inf 0 0"},
        "matrix-nan": {"TransformMatrix": "1 0 0 0 nan 0 0 0 1"},
        "matrix-singular": {"TransformMatrix": "1 0 0 1 0 0 0 0 1"},
        "matrix-zero": {"TransformMatrix": "0 0 0 0 0 0 0 0 0"},
        "elementsize-nan": {"ElementSize": "nan nan nan"},
    }
    for name, overrides in nonfinite.items():
        gen.add(f"mha-{name}", "metaimage", "nonfinite", "error",
                path=_write(gen.folder(f"mha-{name}") / "scan.mha", _mha(gen, **overrides)))
    dup = _mha(gen).replace(b"NDims = 3\n", b"NDims = 3\nNDims = 99\n")
    gen.add("mha-duplicate-key", "metaimage", "absurd", "error",
            path=_write(gen.folder("mha-duplicate-key") / "scan.mha", dup))
    for name, dims, typ in (("bomb-1024", "1024 1024 1024", "MET_INT"), ("bomb-huge", "60000 60000 60000", "MET_DOUBLE")):
        gen.add(f"mha-{name}", "metaimage", "sizebomb", "error",
                path=_write(gen.folder(f"mha-{name}") / "scan.mha", _mha(gen, compressed=True, DimSize=dims, ElementType=typ)))
    folder = gen.folder("mhd-bomb-devzero")
    (folder / "zero.raw").symlink_to("/dev/zero")
    (folder / "scan.mhd").write_bytes(_mha(gen, data_file="zero.raw", DimSize="1024 1024 1024"))
    gen.add("mhd-bomb-devzero", "metaimage", "sizebomb", "error", path=folder / "scan.mhd")
    for k in range(20):
        data = bytearray(local)
        for _ in range(int(gen.rng.integers(1, 3))):
            pos = int(gen.rng.integers(0, header_len))
            data[pos] ^= 1 << int(gen.rng.integers(0, 7))
        gen.add(f"mha-flip{k}", "metaimage", "bitflip", "any",
                path=_write(gen.folder(f"mha-flip{k}") / "scan.mha", bytes(data)))


# ----------------------------------------------------------------------------- DICOM

def _factory():
    spec = importlib.util.spec_from_file_location("fuzz_dicom_factory", _FACTORY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dicom_ref(gen: Gen, stored: np.ndarray, spacing_z: float, pixel_spacing=(0.8, 0.6),
               origin=(-10.0, 20.0, 30.0), name="ref_dicom.npz") -> Path:
    path = gen.root / name
    np.savez(path, array=stored.astype(np.int32) - 1024, spacing_xyz=np.array([pixel_spacing[1], pixel_spacing[0], spacing_z]),
             origin_xyz=np.array(origin), direction=np.eye(3).ravel())
    return path


def _edit(path: Path, **attrs) -> None:
    import pydicom

    ds = pydicom.dcmread(str(path))
    for key, value in attrs.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(str(path), enforce_file_format=True)


def dicom_cases(gen: Gen) -> None:
    import pydicom
    from pydicom import config

    config.settings.writing_validation_mode = config.IGNORE
    config.settings.reading_validation_mode = config.IGNORE
    factory = _factory()
    stored = gen.rng.integers(0, 3000, size=(5, 8, 9)).astype(np.uint16)
    ref = _dicom_ref(gen, stored, 2.0)

    def series(case_id: str) -> tuple[Path, list[Path]]:
        folder = gen.folder(case_id) / "series"
        return folder, factory.write_series(folder, stored)

    folder, _ = series("dcm-control")
    gen.add("dcm-control", "dicom-series", "control", "ok", path=folder, ref=ref)
    folder, files = series("dcm-control-slice")
    gen.add("dcm-control-slice", "dicom-file", "control", "ok", path=files[2], ref=ref)
    for which in (0, 2, 4):
        # cuts from the end count from the truncated file's own size: random SOP Instance UIDs make
        # files differ by a few bytes, and a cut past a shorter file's end would leave it whole
        for cut in (60, 131, 140, 300, 600, -100, -1):
            case_id = f"dcm-trunc-s{which}-{cut}"
            folder, files = series(case_id)
            data = files[which].read_bytes()
            files[which].write_bytes(data[:cut])
            assert len(data[:cut]) < len(data)
            gen.add(case_id, "dicom-series", "truncation", "error", path=folder)
    for k in range(16):
        case_id = f"dcm-flip{k}"
        folder, files = series(case_id)
        victim = files[int(gen.rng.integers(0, len(files)))]
        data = bytearray(victim.read_bytes())
        for _ in range(int(gen.rng.integers(1, 4))):
            pos = int(gen.rng.integers(132, len(data) - stored[0].nbytes))
            data[pos] ^= 1 << int(gen.rng.integers(0, 8))
        victim.write_bytes(bytes(data))
        gen.add(case_id, "dicom-series", "bitflip", "any", path=folder)
    edits = {
        "spacing-zero": dict(PixelSpacing=["0", "0"]), "spacing-neg": dict(PixelSpacing=["-0.8", "0.6"]),
        "spacing-inf": dict(PixelSpacing=["inf", "0.6"]), "spacing-nan": dict(PixelSpacing=["nan", "nan"]),
        "position-nan": dict(ImagePositionPatient=["nan", "20", "34"]),
        "position-inf": dict(ImagePositionPatient=["-10", "inf", "34"]),
        "orientation-zero": dict(ImageOrientationPatient=["0"] * 6),
        "orientation-parallel": dict(ImageOrientationPatient=["1", "0", "0", "1", "0", "0"]),
        "orientation-nan": dict(ImageOrientationPatient=["nan", "0", "0", "0", "1", "0"]),
        "slope-nan": dict(RescaleSlope="nan"), "slope-inf": dict(RescaleSlope="inf"),
        "slope-zero": dict(RescaleSlope="0"), "intercept-inf": dict(RescaleIntercept="-inf"),
        "rows-more": dict(Rows=800), "rows-cols-65535": dict(Rows=65535, Columns=65535),
        "all-rows-more": dict(Rows=800), "all-rows-cols-65535": dict(Rows=65535, Columns=65535),
        "all-rows-cols-4096": dict(Rows=4096, Columns=4096), "all-bits-32": dict(BitsAllocated=32),
        "rows-zero": dict(Rows=0), "cols-1": dict(Columns=1), "bits-12": dict(BitsAllocated=12),
        "mixed-size": None, "duplicate-position": dict(ImagePositionPatient=["-10", "20", "32"]),
    }
    for name, attrs in edits.items():
        case_id = f"dcm-{name}"
        folder, files = series(case_id)
        if name == "mixed-size":
            factory.write_slice(files[3], stored[3][:4], (-10.0, 20.0, 36.0), instance_number=4)
        elif name.startswith("all-"):
            for f in files:
                _edit(f, **attrs)
        else:
            _edit(files[2], **attrs)
        cls = "nonfinite" if any(t in name for t in ("nan", "inf", "zero", "neg", "parallel")) else "inconsistent"
        gen.add(case_id, "dicom-series", cls, "error", path=folder)
    # special files inside a DICOM folder are skipped (with a warning), the series reads exactly
    for name in ("fifo", "devzero-link", "socket"):
        case_id = f"dcm-special-{name}"
        folder, _ = series(case_id)
        if name == "fifo":
            os.mkfifo(folder / "zz_pipe.dcm")
        elif name == "devzero-link":
            (folder / "zz_zero.dcm").symlink_to("/dev/zero")
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(str(folder / "zz_sock.dcm"))
            except OSError:
                continue
            finally:
                sock.close()
        gen.add(case_id, "dicom-series", "special", "warn", path=folder)
    case_id = "dcm-missing-slice"
    folder, files = series(case_id)
    files[2].unlink()
    gen.add(case_id, "dicom-series", "inconsistent", "warn", path=folder)
    # enhanced multi-frame files
    positions = np.array([[-10.0, 20.0, 30.0 + 2.0 * k] for k in range(5)])
    folder = gen.folder("dcm-enhanced-control")
    enhanced = factory.write_enhanced(folder / "mf.dcm", stored, positions)
    gen.add("dcm-enhanced-control", "dicom-file", "control", "ok", path=enhanced, ref=ref)
    for name, frames in (("frames-2e31", 2**31 - 1), ("frames-6", 6), ("frames-1e6", 1_000_000)):
        folder = gen.folder(f"dcm-enhanced-{name}")
        path = factory.write_enhanced(folder / "mf.dcm", stored, positions)
        _edit(path, NumberOfFrames=frames)
        gen.add(f"dcm-enhanced-{name}", "dicom-file", "inconsistent", "error", path=path)
    size = enhanced.stat().st_size
    for cut in (100, 140, 500, size // 2, size - 50, size - 1):
        folder = gen.folder(f"dcm-enhanced-trunc{cut}")
        path = folder / "mf.dcm"
        path.write_bytes(enhanced.read_bytes()[:cut])
        gen.add(f"dcm-enhanced-trunc{cut}", "dicom-file", "truncation", "error", path=path)
    folder = gen.folder("dcm-enhanced-pixels-short")
    path = factory.write_enhanced(folder / "mf.dcm", stored, positions)
    ds = pydicom.dcmread(str(path))
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    ds.save_as(str(path), enforce_file_format=True)
    gen.add("dcm-enhanced-pixels-short", "dicom-file", "inconsistent", "error", path=path)
    # a directly given special or non-DICOM file
    folder = gen.folder("dcm-direct")
    os.mkfifo(folder / "pipe.dcm")
    gen.add("dcm-direct-fifo", "special", "special", "error", path=folder / "pipe.dcm")
    (folder / "zero.dcm").symlink_to("/dev/zero")
    gen.add("dcm-direct-devzero", "special", "special", "error", path=folder / "zero.dcm")
    (folder / "text.dcm").write_bytes(b"this is not DICOM\n" * 10)
    gen.add("dcm-direct-text", "dicom-file", "absurd", "error", path=folder / "text.dcm")


def special_cases(gen: Gen) -> None:
    """FIFOs, sockets, devices and folders given as the scan itself."""
    folder = gen.folder("special")
    for ext in (".nii", ".nii.gz", ".nrrd", ".mha", ".dcm", ""):
        name = f"pipe{ext}" if ext else "pipe"
        os.mkfifo(folder / name)
        gen.add(f"special-fifo{ext or '-noext'}", "special", "special", "error", path=folder / name)
    for ext in (".nii.gz", ".nhdr", ".mhd", ".nii"):
        (folder / f"zero{ext}").symlink_to("/dev/zero")
        gen.add(f"special-devzero{ext}", "special", "special", "error", path=folder / f"zero{ext}")
    (folder / "urandom.mha").symlink_to("/dev/urandom")
    gen.add("special-urandom.mha", "special", "special", "error", path=folder / "urandom.mha")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(folder / "sock.nii"))
        gen.add("special-socket.nii", "special", "special", "error", path=folder / "sock.nii")
    except OSError:
        pass
    finally:
        sock.close()
    (folder / "dir.nii.gz").mkdir()
    gen.add("special-folder.nii.gz", "special", "special", "error", path=folder / "dir.nii.gz")
    (folder / "empty_dir").mkdir()
    gen.add("special-empty-folder", "special", "special", "error", path=folder / "empty_dir")
    (folder / "loop.nii").symlink_to(folder / "loop.nii")
    gen.add("special-symlink-loop", "special", "special", "error", path=folder / "loop.nii")


# ----------------------------------------------------------------------------- prompts, manifests, CLI

def prompt_cases(gen: Gen) -> None:
    """`napari-sam2 segment` with bad prompts (files and flags): exit 2 and one line, before any model."""
    folder = gen.folder("prompts")
    scan = gen.root / "cases" / "nii-control" / "scan.nii"
    out = folder / "out.nii.gz"
    files = {
        "box-number": {"objects": [{"id": 1, "box": 5}]},
        "box-text": {"objects": [{"id": 1, "box": "abc"}]},
        "box-nested": {"objects": [{"id": 1, "box": [[1, 2], [3, 4], 5]}]},
        "box-nan": {"objects": [{"id": 1, "box": [1, float("nan"), 2, 3, 4]}]},
        "box-inf": {"objects": [{"id": 1, "box": [1, 1, float("inf"), 3, 4]}]},
        "box-bool": {"objects": [{"id": 1, "box": [True, 1, 1, 3, 4]}]},
        "box-short": {"objects": [{"id": 1, "box": [1, 2, 3]}]},
        "points-number": {"objects": [{"id": 1, "points": 5}]},
        "points-flat": {"objects": [{"id": 1, "points": [1, 2, 3]}]},
        "points-short": {"objects": [{"id": 1, "points": [[1, 2]]}]},
        "point-label-7": {"objects": [{"id": 1, "points": [[1, 2, 3, 7]]}]},
        "point-dict": {"objects": [{"id": 1, "points": [{"z": 1}]}]},
        "id-text": {"objects": [{"id": "abc", "box": [1, 1, 1, 3, 4]}]},
        "id-zero": {"objects": [{"id": 0, "box": [1, 1, 1, 3, 4]}]},
        "id-frac": {"objects": [{"id": 1.5, "box": [1, 1, 1, 3, 4]}]},
        "id-list": {"objects": [{"id": [1], "box": [1, 1, 1, 3, 4]}]},
        "no-prompt": {"objects": [{"id": 1}]},
        "objects-number": {"objects": 3},
        "top-number": 42,
        "top-string": "box",
        "object-string": {"objects": ["box"]},
        "empty-objects": {"objects": []},
    }
    for name, content in files.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(content))
        gen.add(f"prompts-{name}", "prompts", "types", "error", kind="cli", torch=True,
                argv=["segment", str(scan), "-o", str(out), "--prompts", str(path), "-q"])
    raw = {
        "binary": b"\xff\xfe\x00\x01garbage\x80\x81", "empty": b"", "truncated": b'{"objects": [{"id": 1, "box": [1,',
        "nan-token": b'{"objects": [{"id": 1, "box": [1, NaN, 2, 3, 4]}]}',
        "infinity-token": b'{"objects": [{"id": 1, "box": [1, 2, Infinity, 3, 4]}]}',
        "deep": b"[" * 100_000 + b"]" * 100_000, "utf16": '{"objects": []}'.encode("utf-16"),
    }
    for name, content in raw.items():
        path = folder / f"raw-{name}.json"
        path.write_bytes(content)
        gen.add(f"prompts-raw-{name}", "prompts", "encoding", "error", kind="cli", torch=True,
                argv=["segment", str(scan), "-o", str(out), "--prompts", str(path), "-q"])
    os.mkfifo(folder / "pipe.json")
    gen.add("prompts-fifo", "prompts", "special", "error", kind="cli", torch=True,
            argv=["segment", str(scan), "-o", str(out), "--prompts", str(folder / "pipe.json"), "-q"])
    flags = {
        "box-nan": ["--box", "nan,1,1,3,4"], "box-inf": ["--box", "1,inf,1,3,4"],
        "box-garbage": ["--box", "1,a,1,3,4"], "box-few": ["--box", "1,2"],
        "point-label-5": ["--point", "1,2,3,5"], "point-nan": ["--point", "1,nan,3"],
        "window-inf": ["--box", "1,1,1,3,4", "--window", "40,inf"],
        "window-nan": ["--box", "1,1,1,3,4", "--window", "nan,400"],
        "device-banana": ["--box", "1,1,1,3,4", "--device", "banana"],
        "absent-0": ["--box", "1,1,1,3,4", "--absent-slices", "0"],
        "out-is-folder": ["--box", "1,1,1,3,4", "-o", str(folder)],
        "out-no-folder": ["--box", "1,1,1,3,4", "-o", str(folder / "nope" / "x.nii.gz")],
        "model-unknown": ["--box", "1,1,1,3,4", "--model", "no_such_model"],
    }
    for name, extra in flags.items():
        argv = ["segment", str(scan), "-o", str(out), "-q", *extra]
        if "-o" in extra:
            argv = ["segment", str(scan), "-q", *extra]
        gen.add(f"segment-{name}", "cli", "types", "error", kind="cli", torch=True, argv=argv)


def manifest_cases(gen: Gen) -> None:
    """Manifests read by `volume.batch.read_manifest`, and a few through `napari-sam2 batch`."""
    folder = gen.folder("manifests")
    scan = gen.root / "cases" / "nii-control" / "scan.nii"
    good_csv = f'scan,box\n{scan},"2,1,1,4,5"\n'.encode()
    (folder / "good.csv").write_bytes(good_csv)
    gen.add("manifest-control-csv", "manifest", "control", "ok", kind="manifest", path=folder / "good.csv")
    (folder / "good.jsonl").write_text(json.dumps({"scan": str(scan), "points": [[2, 3, 3, 1]]}) + "\n")
    gen.add("manifest-control-jsonl", "manifest", "control", "ok", kind="manifest", path=folder / "good.jsonl")
    csv_cases = {
        "box-inf": f'scan,box\n{scan},"2,inf,1,4,5"\n', "box-nan": f'scan,box\n{scan},"nan,1,1,4,5"\n',
        "box-text": f"scan,box\n{scan},hello\n", "points-garbage": f"scan,points\n{scan},1;2;x\n",
        "no-prompt": f"scan,box\n{scan},\n", "unknown-column": f"scan,colour\n{scan},red\n",
        "no-scan-column": "path2,box\nx,1\n", "missing-scan": 'scan,box\n/nonexistent/x.nii,"1,1,1,2,2"\n',
        "id-huge": f'scan,object_id,box\n{scan},1e300,"2,1,1,4,5"\n', "id-nan": f'scan,object_id,box\n{scan},nan,"2,1,1,4,5"\n',
        "axis-bad": f'scan,axis,box\n{scan},diagonal,"2,1,1,4,5"\n', "extra-cells": f"scan,box\n{scan},2,1,1,4,5\n",
        "unbalanced-quote": f'scan,box\n{scan},"2,1,1,4,5\n', "empty": "", "header-only": "scan,box\n",
        "field-200k": f'scan,object_name,box\n{scan},{"x" * 200_000},"2,1,1,4,5"\n',
        "scan-nul": 'scan,box\n/tmp/a\x00b.nii,"2,1,1,4,5"\n',
    }
    for name, text in csv_cases.items():
        path = folder / f"{name}.csv"
        path.write_bytes(text.encode("utf-8"))
        gen.add(f"manifest-csv-{name}", "manifest", "types", "error", kind="manifest", path=path)
    binary = {"invalid-utf8": b"scan,box\n\xff\xfe\xfa,1\n", "binary": bytes(range(256)) * 4,
              "nul-bytes": b"scan,box\n\x00\x00\x00\n"}
    for name, data in binary.items():
        path = folder / f"{name}.csv"
        path.write_bytes(data)
        gen.add(f"manifest-csv-{name}", "manifest", "encoding", "error", kind="manifest", path=path)
    jsonl = {
        "points-5": {"scan": str(scan), "points": 5}, "box-dict": {"scan": str(scan), "box": {"z": 1}},
        "scan-number": {"scan": 5, "box": "2,1,1,4,5"}, "scan-list": {"scan": [str(scan)], "box": "2,1,1,4,5"},
        "id-bool": {"scan": str(scan), "object_id": True, "box": "2,1,1,4,5"},
        "id-list": {"scan": str(scan), "object_id": [1], "box": "2,1,1,4,5"},
        "axis-list": {"scan": str(scan), "axis": ["axial"], "box": "2,1,1,4,5"},
        "points-nested": {"scan": str(scan), "points": [[[1, 2, 3]]]},
        "box-bool": {"scan": str(scan), "box": [True, False, 1, 2, 3]},
    }
    for name, obj in jsonl.items():
        path = folder / f"{name}.jsonl"
        path.write_text(json.dumps(obj) + "\n")
        gen.add(f"manifest-jsonl-{name}", "manifest", "types", "error", kind="manifest", path=path)
    raw_jsonl = {"nan-token": f'{{"scan": "{scan}", "box": [2, NaN, 1, 4, 5]}}\n',
                 "infinity-token": f'{{"scan": "{scan}", "box": [2, 1, 1, Infinity, 5]}}\n',
                 "array-line": "[1, 2, 3]\n", "truncated": '{"scan": "x", "box": [1,\n',
                 "deep": "[" * 50_000 + "]" * 50_000 + "\n"}
    for name, text in raw_jsonl.items():
        path = folder / f"raw-{name}.jsonl"
        path.write_text(text)
        gen.add(f"manifest-jsonl-raw-{name}", "manifest", "encoding", "error", kind="manifest", path=path)
    os.mkfifo(folder / "pipe.csv")
    gen.add("manifest-fifo", "manifest", "special", "error", kind="manifest", path=folder / "pipe.csv")
    (folder / "dir.csv").mkdir()
    gen.add("manifest-folder", "manifest", "special", "error", kind="manifest", path=folder / "dir.csv")
    # through the CLI: exit 2 and one line
    afile = folder / "a_file"
    afile.write_text("x")
    for name, argv in (
        ("inf", ["batch", str(folder / "box-inf.csv"), "-o", str(folder / "out1")]),
        ("invalid-utf8", ["batch", str(folder / "invalid-utf8.csv"), "-o", str(folder / "out2")]),
        ("points-5", ["batch", str(folder / "points-5.jsonl"), "-o", str(folder / "out3")]),
        ("out-is-file", ["batch", str(folder / "good.csv"), "-o", str(afile)]),
        ("device-banana", ["batch", str(folder / "good.csv"), "-o", str(folder / "out4"), "--device", "banana"]),
        ("workers-0", ["batch", str(folder / "good.csv"), "-o", str(folder / "out5"), "--workers", "0"]),
        ("fifo", ["batch", str(folder / "pipe.csv"), "-o", str(folder / "out6")]),
        ("segmenter-bad", ["batch", str(folder / "good.csv"), "-o", str(folder / "out7"), "--segmenter", "no_such_mod:f"]),
    ):
        gen.add(f"batch-cli-{name}", "manifest", "types", "error", kind="cli", argv=argv)


def summary_cases(gen: Gen) -> None:
    """An earlier run's `summary.csv` that is damaged: the batch must say so, not crash."""
    folder = gen.folder("summaries")
    damaged = {
        "control": (b"scan,output,status\n/x.nii,/o.nii.gz,ok\n", "ok"),
        "garbage-binary": (bytes(range(256)) * 8, "error"), "nul": (b"scan,status\n\x00\x00,ok\n", "error"),
        "invalid-utf8": (b"scan,status\n\xff\xfe,ok\n", "error"), "no-scan-column": (b"a,b\n1,2\n", "error"),
        "bad-numbers": (b"scan,status,seconds\n/x.nii,ok,abc\n", "ok"),
        "field-200k": (b"scan,status\n" + b"x" * 200_000 + b",ok\n", "error"),
        "empty": (b"", "error"),
    }
    for name, (data, expect) in damaged.items():
        out = folder / name
        out.mkdir()
        (out / "summary.csv").write_bytes(data)
        gen.add(f"summary-{name}", "summary", "control" if expect == "ok" else "encoding", expect,
                kind="summary", path=out)
    out = folder / "folder-summary"
    (out / "summary.csv").mkdir(parents=True)
    gen.add("summary-is-folder", "summary", "special", "error", kind="summary", path=out)


def info_cli_cases(gen: Gen) -> None:
    """`napari-sam2 info` and `eval` on some hostile scans: one line, exit 2, no traceback."""
    picked = [c for c in gen.cases if c["kind"] == "read" and c["expect"] == "error"
              and c["cls"] in ("detached", "special", "sizebomb", "nonfinite")]
    for case in picked[::3]:
        gen.add(f"info-{case['id']}", "cli", case["cls"], "error", kind="cli", argv=["info", case["path"]],
                sentinels=case["sentinels"])
    floats = gen.folder("eval-float")
    import SimpleITK as sitk

    prob = sitk.GetImageFromArray((gen.rng.random(SHAPE_ZYX)).astype(np.float32))
    sitk.WriteImage(prob, str(floats / "prob.nii.gz"))
    labels = sitk.GetImageFromArray((gen.rng.random(SHAPE_ZYX) > 0.5).astype(np.uint8))
    sitk.WriteImage(labels, str(floats / "labels.nii.gz"))
    gen.add("eval-float-labels", "cli", "types", "error", kind="cli",
            argv=["eval", str(floats / "prob.nii.gz"), str(floats / "labels.nii.gz")])
    gen.add("eval-control", "cli", "control", "ok", kind="cli",
            argv=["eval", str(floats / "labels.nii.gz"), str(floats / "labels.nii.gz")])
    gen.add("info-control", "cli", "control", "ok", kind="cli",
            argv=["info", str(gen.root / "cases" / "mha-control" / "scan.mha")])


def generate_cases(root: Path, seed: int = 13) -> list[dict]:
    """Write every case under `root`; return their descriptions (see the module docstring)."""
    gen = Gen(root, seed)
    for make in (nifti_cases, nrrd_cases, metaimage_cases, dicom_cases, special_cases, prompt_cases,
                 manifest_cases, summary_cases, info_cli_cases):
        make(gen)
    ids = [c["id"] for c in gen.cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return gen.cases


if __name__ == "__main__":
    import sys

    cases = generate_cases(Path(sys.argv[1]))
    print(len(cases))
