"""Cohort manifests: which scans to segment, with which objects and prompts.

One row per (scan, object), as CSV with a header or as JSON lines, same field names:

| field | required | meaning |
| --- | --- | --- |
| `scan` | yes | path of the scan (NIfTI/NRRD/MHA file or DICOM series folder); relative paths are relative to the manifest; or a PACS series `dicomweb://HOST[:PORT]/PATH?series=UID`, fetched into the local cache (`scanio.dicomweb`) before the batch starts |
| `object_id` | no | label value of the object, integer >= 1 (default: 1, 2, ... in row order per scan) |
| `object_name` / `name` | no | name of the object (default `object_<id>`) |
| `box` | one of box/points | `z,y0,x0,y1,x1` voxel indices of the scan array: a box on axial slice `z` (with another `axis`: `slice,r0,c0,r1,c1` as in `volume.session`) |
| `points` | one of box/points | `z,y,x[,label]` separated by `;` (label 1 positive, default; 0 negative) |

The prompt syntax is `napari-sam2 segment`'s `--box`/`--point` (`volume.prompts`).
| `extent` | no | `FIRST:LAST`: the object lies on these slices (inclusive); propagation never goes past them (`Session.set_extent`) |
| `axis` | no | slicing axis for this scan (`axial`, `coronal`, `sagittal`) |
| `window` | no | intensity window for this scan (`auto`, a preset name or `level,width`) |
| `model` | no | model name for this scan (overrides the batch default) |

`axis`, `window` and `model` must agree on every row of one scan (they describe the session).
Every problem is reported with its row number before any work starts.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

AXES = ("axial", "coronal", "sagittal")
FIELDS = ("scan", "object_id", "object_name", "box", "points", "extent", "axis", "window", "model")
_FIELD_ALIASES = {"name": "object_name", "path": "scan", "id": "object_id", "label": "object_id"}
_MAX_LISTED_PROBLEMS = 20


class ManifestError(ValueError):
    """A manifest cannot be used; `problems` lists `(row, message)` for every bad row (row 0 = whole file)."""

    def __init__(self, manifest: Union[str, Path, None], problems: Sequence[tuple[int, str]]):
        self.manifest = str(manifest) if manifest is not None else "<manifest>"
        self.problems = list(problems)
        self.row = self.problems[0][0] if self.problems else 0
        listed = [f"  row {row}: {msg}" if row else f"  {msg}" for row, msg in self.problems[:_MAX_LISTED_PROBLEMS]]
        more = len(self.problems) - len(listed)
        if more > 0:
            listed.append(f"  ... and {more} more")
        super().__init__(
            f"bad manifest {self.manifest} ({len(self.problems)} problem(s); rows count from 1, "
            f"not counting the CSV header): fix these rows and run again:\n" + "\n".join(listed)
        )


class ManifestFormatError(ManifestError):
    """The file itself cannot be read as a manifest (unknown extension, no `scan` column, bad JSON)."""


class MissingScanError(ManifestError):
    """A row names a scan path that does not exist."""


class PromptError(ManifestError):
    """A row's box or points cannot be parsed, or the row has no prompt at all."""


class FieldError(ManifestError):
    """A row has a bad object id, axis, or per-scan options that disagree between rows."""


@dataclass(frozen=True)
class ObjectPrompt:
    """One object of a scan and its prompt, in scan voxel indices `(z, y, x)`."""

    obj_id: int
    name: str
    box_zyx: Optional[tuple] = None  # (slice, r0, c0, r1, c1): axial (z, y0, x0, y1, x1); slice is an int
    points_zyx: tuple[tuple[float, float, float], ...] = ()  # (z, y, x) per point
    point_labels: tuple[int, ...] = ()  # 1 positive, 0 negative, one per point
    row: int = 0
    extent: Optional[tuple[int, int]] = None  # (first, last) slice the object lies on


@dataclass(frozen=True)
class ScanJob:
    """All objects of one scan: the unit of work of a batch (one session per scan)."""

    scan_path: Path
    objects: tuple[ObjectPrompt, ...]
    axis: Optional[str] = None
    window: Optional[str] = None
    model: Optional[str] = None
    rows: tuple[int, ...] = field(default=())

    @property
    def stem(self) -> str:
        """Output name stem: the file name without `.nii.gz`/`.nrrd`/..., or the DICOM folder name."""
        return scan_stem(self.scan_path)

    def fingerprint(self, *, model: Optional[str] = None, output_format: str = "nifti", segmenter: str = "") -> str:
        """Hash of everything that decides the output: prompts, options, model, segmenter, format, scan size/time."""
        payload = {
            "scan": str(self.scan_path),
            "scan_stat": _stat_signature(self.scan_path),
            "objects": [asdict(o) | {"row": None} for o in self.objects],
            "axis": self.axis,
            "window": self.window,
            "model": self.model or model,
            "format": output_format,
            "segmenter": segmenter,
        }
        return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def scan_stem(path: Union[str, Path]) -> str:
    """`/a/b/ct_01.nii.gz` -> `ct_01`; a DICOM folder `/a/series7/` -> `series7`."""
    name = Path(path).name
    for ext in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm", ".gz"):
        if name.lower().endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return name


def _stat_signature(path: Path) -> list[int]:
    try:
        if path.is_dir():
            stats = [p.stat() for p in path.iterdir() if p.is_file()]
            return [len(stats), sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)]
        st = path.stat()
        return [1, st.st_size, st.st_mtime_ns]
    except OSError:
        return [0, 0, 0]


# --- prompt syntax: the one of `napari-sam2 segment --box/--point` (`volume.prompts`) ----------


def _prompt_syntax():
    from volume import prompts

    return prompts


def _parts(text: str) -> list[str]:
    return [p for p in str(text).replace(" ", "").strip("[]()").split(",") if p != ""]


def parse_prompt(box: Any = None, points: Any = None) -> tuple[Optional[tuple], tuple, tuple]:
    """A row's `box` (`"s,r0,c0,r1,c1"` or 5 numbers) and `points` (`"z,y,x[,label];..."` or a list)
    -> `(box, points_zyx, labels)`, parsed by `volume.prompts.collect_prompts` (the segment CLI's syntax);
    raises `ValueError` saying what is wrong."""
    syntax = _prompt_syntax()
    if not _blank(box) and not (isinstance(box, str) or _number_list(box)):
        raise ValueError(f"box {_clip(box)} must be 'z,y0,x0,y1,x1' or a list of 5 numbers")
    box_texts = [] if _blank(box) else [_box_text(box)]
    if _blank(points):
        point_texts: list[str] = []
    elif isinstance(points, str):
        point_texts = [p.strip() for p in points.split(";") if p.strip()]
    elif isinstance(points, (list, tuple)) and all(isinstance(p, str) or _number_list(p) for p in points):
        point_texts = [p if isinstance(p, str) else ",".join(str(v) for v in p) for p in points]
    else:
        raise ValueError(f"points {_clip(points)} must be 'z,y,x[,label];...' or a list of [z, y, x, label]")
    # the object id is the manifest's own column: no trailing id inside a prompt
    for text in box_texts:
        if len(_parts(text)) != 5:
            raise ValueError(f"box {text!r} must be 5 numbers s,r0,c0,r1,c1 (axial: z,y0,x0,y1,x1)")
    for text in point_texts:
        if len(_parts(text)) not in (3, 4):
            raise ValueError(f"point {text!r} must be z,y,x or z,y,x,label")
    if not box_texts and not point_texts:
        raise ValueError("no prompt: give a box 'z,y0,x0,y1,x1' and/or points 'z,y,x[,label];...'")
    try:
        (prompt,) = syntax.collect_prompts(box_texts, point_texts, None).values()
    except syntax.PromptSpecError as exc:
        raise ValueError(str(exc)) from None
    parsed_box = prompt["box"]
    if parsed_box is not None:
        s, r0, c0, r1, c1 = parsed_box
        if s != int(s) or min(parsed_box) < 0:
            raise ValueError(f"box {box_texts[0]!r}: the slice must be an integer and no index negative")
        if r0 == r1 or c0 == c1:
            raise ValueError(f"box {box_texts[0]!r} has no area (r0 == r1 or c0 == c1)")
        parsed_box = (int(s), *(float(v) for v in parsed_box[1:]))
    coords = tuple(tuple(float(v) for v in p[:3]) for p in prompt["points"])
    if any(min(c) < 0 for c in coords):
        raise ValueError(f"points {point_texts} have a negative index")
    labels = tuple(int(p[3]) for p in prompt["points"])
    return parsed_box, coords, labels


def _number_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def _clip(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _box_text(value: Any) -> str:
    return value if isinstance(value, str) else ",".join(str(v) for v in value)


# --- reading ----------------------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


MAX_MANIFEST_BYTES = 64 << 20  # a manifest larger than this is refused
MAX_FIELD_CHARS = 4096  # one cell longer than this is refused


def _manifest_text(path: Path) -> str:
    """The manifest's text: a regular file, not huge, UTF-8 (else `ManifestFormatError`)."""
    import stat

    try:
        st = os.stat(path)
    except (OSError, ValueError):
        raise ManifestFormatError(path, [(0, f"manifest file {path} does not exist")]) from None
    if not stat.S_ISREG(st.st_mode):
        raise ManifestFormatError(path, [(0, f"manifest {path} is not a regular file (folder, FIFO, device?)")])
    if st.st_size > MAX_MANIFEST_BYTES:
        raise ManifestFormatError(path, [(0, f"manifest is {st.st_size:,} bytes; more than {MAX_MANIFEST_BYTES:,} "
                                             "is not a manifest")])
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ManifestFormatError(path, [(0, f"line {line} is not UTF-8 text (byte {exc.start}): save the "
                                             "manifest as UTF-8")]) from None


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson", ".json"):
        if not path.is_file():
            raise ManifestFormatError(path, [(0, f"manifest file {path} does not exist")])
        raise ManifestFormatError(path, [(0, f"unknown manifest type {suffix!r}: use .csv or .jsonl")])
    text = _manifest_text(path)
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ManifestFormatError(path, [(0, f"line {line} holds a NUL byte: not a text manifest")])
    if suffix == ".csv":
        import io

        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        rows = []
        try:
            for r in reader:
                rows.append(dict(r))
        except csv.Error as exc:
            raise ManifestFormatError(path, [(len(rows) + 1, f"CSV cannot be parsed: {exc}")]) from None
        return rows
    if suffix in (".jsonl", ".ndjson", ".json"):
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line, parse_constant=_no_constant)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise ManifestFormatError(path, [(n, f"line is not JSON: {getattr(exc, 'msg', exc)}")]) from None
            except ValueError as exc:
                raise ManifestFormatError(path, [(n, str(exc))]) from None
            if not isinstance(obj, dict):
                raise ManifestFormatError(path, [(n, "each JSON line must be an object {\"scan\": ...}")])
            rows.append(obj)
        return rows
    raise ManifestFormatError(path, [(0, f"unknown manifest type {suffix!r}: use .csv or .jsonl")])


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a manifest may hold")


def _normalise_keys(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if key is None:  # csv: more cells than header columns
            continue
        k = str(key).strip().lower()
        out[_FIELD_ALIASES.get(k, k)] = value.strip() if isinstance(value, str) else value
    return out


def _fetch_remote(scan: str, fetched: dict[str, str]) -> str:
    """A `dicomweb://` scan fetched (resumably, once per URL) into the local cache: its folder;
    a path is returned as it is. A fetch that fails raises `ValueError` with the reason."""
    from scanio.dicomweb import is_dicomweb_url

    if not is_dicomweb_url(scan):
        return scan
    if scan not in fetched:
        from scanio.errors import ScanIOError

        try:
            from scanio.dicomweb import fetch

            fetched[scan] = str(fetch(scan).folder)
        except ImportError:
            raise ValueError("a dicomweb:// scan needs dicomweb-client: pip install 'napari-sam2[pacs]'") from None
        except ScanIOError as exc:
            raise ValueError(str(exc)) from None
    return fetched[scan]


def read_manifest(path: Union[str, Path]) -> list[ScanJob]:
    """Read and validate a CSV/JSON-lines manifest into one `ScanJob` per scan (manifest order)."""
    path = Path(path)
    raw_rows = _read_rows(path)
    return parse_manifest_rows(raw_rows, base_dir=path.parent, manifest=path)


def parse_manifest_rows(
    rows: Sequence[dict[str, Any]], base_dir: Union[str, Path] = ".", manifest: Union[str, Path, None] = None
) -> list[ScanJob]:
    """Validate manifest rows (dicts with the manifest fields) into `ScanJob`s; raises `ManifestError`."""
    base_dir = Path(base_dir)
    problems: list[tuple[int, str, type]] = []
    if not rows:
        raise ManifestFormatError(manifest, [(0, "manifest has no rows")])
    first = _normalise_keys(rows[0])
    if "scan" not in first:
        raise ManifestFormatError(manifest, [(0, f"no 'scan' column (columns: {', '.join(first) or 'none'})")])
    unknown = sorted(set(first) - set(FIELDS))
    if unknown:
        raise ManifestFormatError(manifest, [(0, f"unknown column(s) {unknown}; known: {', '.join(FIELDS)}")])

    by_scan: dict[Path, dict[str, Any]] = {}
    fetched: dict[str, str] = {}  # dicomweb:// URL -> its local cache folder
    for n, raw in enumerate(rows, start=1):
        if None in raw:  # csv.DictReader puts cells beyond the header under None
            problems.append((n, "more cells than header columns: quote prompts that hold commas, "
                                'e.g. "15,40,20,80,60"', ManifestFormatError))
            continue
        row = _normalise_keys(raw)
        long_fields = [k for k, v in row.items() if len(str(v)) > MAX_FIELD_CHARS]
        if long_fields:
            problems.append((n, f"field(s) {long_fields} longer than {MAX_FIELD_CHARS} characters", ManifestFormatError))
            continue
        bad_keys = sorted(set(row) - set(FIELDS))
        if bad_keys:
            problems.append((n, f"unknown field(s) {bad_keys}", ManifestFormatError))
            continue
        if _blank(row.get("scan")):
            problems.append((n, "no scan path", MissingScanError))
            continue
        if not isinstance(row["scan"], str):
            problems.append((n, f"scan {_clip(row['scan'])} must be a path (text)", FieldError))
            continue
        try:
            scan_path = Path(_fetch_remote(str(row["scan"]), fetched)).expanduser()
            if not scan_path.is_absolute():
                scan_path = base_dir / scan_path
            scan_path = Path(os.path.abspath(scan_path))  # not resolve(): a symlink is its own scan
            exists = scan_path.exists()
        except (ValueError, OSError, RuntimeError) as exc:
            problems.append((n, f"scan {_clip(row['scan'])} is not a usable path ({exc})", MissingScanError))
            continue
        if not exists:
            problems.append((n, f"scan {scan_path} does not exist", MissingScanError))
            continue
        entry = by_scan.setdefault(scan_path, {"objects": [], "rows": [], "options": None, "ids": set()})

        wrong = [k for k in ("axis", "window", "model", "object_name")
                 if not _blank(row.get(k)) and not isinstance(row[k], (str, int, float))]
        if wrong:
            problems.append((n, f"field(s) {wrong} must be text", FieldError))
            continue
        options = {k: (None if _blank(row.get(k)) else str(row[k]).strip()) for k in ("axis", "window", "model")}
        if options["axis"] is not None:
            options["axis"] = options["axis"].lower()
            if options["axis"] not in AXES:
                problems.append((n, f"axis {options['axis']!r} must be one of {', '.join(AXES)}", FieldError))
        if entry["options"] is None:
            entry["options"] = options
        elif entry["options"] != options:
            problems.append(
                (n, f"axis/window/model {options} differ from the first row of scan {scan_path.name} "
                    f"({entry['options']}): one scan is one session", FieldError)
            )

        obj_id = len(entry["objects"]) + 1
        if not _blank(row.get("object_id")):
            try:
                if isinstance(row["object_id"], bool):
                    raise ValueError
                value = float(str(row["object_id"]))
                if not math.isfinite(value) or value != int(value) or value < 1 or value > 65535:
                    raise ValueError
                obj_id = int(value)
            except ValueError:
                problems.append((n, f"object_id {row['object_id']!r} must be an integer 1..65535", FieldError))
                continue
        if obj_id in entry["ids"]:
            problems.append((n, f"object_id {obj_id} appears twice for scan {scan_path.name}", FieldError))
            continue

        try:
            box, coords, labels = parse_prompt(row.get("box"), row.get("points"))
        except (ValueError, TypeError) as exc:
            problems.append((n, str(exc), PromptError))
            continue
        extent = None
        if not _blank(row.get("extent")):
            from volume.prompts import PromptSpecError, parse_extents

            try:
                extent = parse_extents([f"{obj_id}:{row['extent']}"])[obj_id]
            except PromptSpecError:
                problems.append((n, f"extent {_clip(row['extent'])} must be FIRST:LAST slice indices "
                                    "(integers, FIRST <= LAST)", FieldError))
                continue
        name = f"object_{obj_id}" if _blank(row.get("object_name")) else str(row["object_name"])
        entry["ids"].add(obj_id)
        entry["rows"].append(n)
        entry["objects"].append(ObjectPrompt(obj_id, name, box, coords, labels, row=n, extent=extent))

    jobs = [
        ScanJob(path, tuple(e["objects"]), rows=tuple(e["rows"]), **(e["options"] or {}))
        for path, e in by_scan.items()
        if e["objects"]
    ]
    stems: dict[str, Path] = {}
    for job in jobs:
        other = stems.setdefault(job.stem, job.scan_path)
        if other != job.scan_path:
            problems.append(
                (job.rows[0], f"scans {other} and {job.scan_path} would both be written as "
                              f"{job.stem}.*: rename one", FieldError)
            )
    if problems:
        problems.sort(key=lambda p: p[0])
        raise problems[0][2](manifest, [(row, msg) for row, msg, _ in problems])
    return jobs
