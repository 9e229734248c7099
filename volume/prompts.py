"""Prompts written as text — `--box s,r0,c0,r1,c1`, `--point z,y,x[,label[,id]]`, a prompts JSON
file — parsed into objects and added to a `Session`. Shared by the `segment` CLI and the batch
manifest so that both speak exactly one prompt syntax.

Coordinates are voxel indices of the scan array `(z, y, x)`. A box is a slice index along the
propagation axis and a 2D box on that slice in the two other array axes, in `(z, y, x)` order:
for the axial view of a usual axial scan that is `z,y0,x0,y1,x1`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path


class PromptSpecError(ValueError):
    """A prompt given as text (CLI, prompts file, batch manifest) that cannot be used; the message says how to fix it."""


MAX_PROMPTS_FILE_BYTES = 10 << 20  # a prompts file larger than this is refused


def _numbers(text: str, what: str, counts: tuple[int, ...]) -> list[float]:
    try:
        values = [float(v) for v in str(text).replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise PromptSpecError(f"{what} {_clip(text)}: expected comma-separated numbers") from None
    if len(values) not in counts:
        raise PromptSpecError(f"{what} {_clip(text)}: expected {' or '.join(map(str, counts))} numbers")
    if not all(math.isfinite(v) for v in values):
        raise PromptSpecError(f"{what} {_clip(text)}: every number must be finite (no nan/inf)")
    return values


def _clip(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


def _as_int(value: float, what: str) -> int:
    if not math.isfinite(value) or value != int(value):
        raise PromptSpecError(f"{what} must be an integer; got {value}")
    return int(value)


def _json_numbers(value, what: str, counts: tuple[int, ...]) -> list[float]:
    """A JSON list of numbers (or the same as a comma-separated string) of one of `counts` lengths."""
    if isinstance(value, str):
        return _numbers(value, what, counts)
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise PromptSpecError(
            f"{what} {_clip(value)}: expected a list of {' or '.join(map(str, counts))} numbers")
    return _numbers(",".join(repr(float(v)) for v in value), what, counts)


def _read_prompts_file(path: Path):
    """The parsed JSON of a prompts file (regular, not huge, UTF-8), or `PromptSpecError`."""
    import os
    import stat

    try:
        st = os.stat(path)
    except OSError as exc:
        raise PromptSpecError(f"cannot read prompts file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise PromptSpecError(f"prompts file {path} is not a regular file (a folder, FIFO or device?)")
    if st.st_size > MAX_PROMPTS_FILE_BYTES:
        raise PromptSpecError(f"prompts file {path} is {st.st_size:,} bytes; more than "
                              f"{MAX_PROMPTS_FILE_BYTES:,} is not a prompts file")
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except OSError as exc:
        raise PromptSpecError(f"cannot read prompts file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PromptSpecError(f"prompts file {path} is not UTF-8 text (binary content?)") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise PromptSpecError(f"prompts file {path} is not valid JSON: {exc}") from None


def collect_prompts(boxes: list[str], points: list[str], prompts_file) -> dict[int, dict]:
    """Objects `{id: {"box": (s, r0, c0, r1, c1) or None, "points": [(z, y, x, label), ...]}}`."""
    objects: dict[int, dict] = {}

    def obj(obj_id: int) -> dict:
        if obj_id < 1:
            raise PromptSpecError(f"object ids start at 1; got {obj_id}")
        return objects.setdefault(obj_id, {"box": None, "points": []})

    if prompts_file:
        path = Path(prompts_file)
        data = _read_prompts_file(path)
        entries = data.get("objects") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise PromptSpecError(f'prompts file {path}: expected {{"objects": [...]}} or a list of objects')
        for k, entry in enumerate(entries):
            where = f"prompts file {path}: object #{k + 1}"
            if not isinstance(entry, dict):
                raise PromptSpecError(f"{where} is not a JSON object")
            raw_id = entry.get("id", k + 1)
            if isinstance(raw_id, bool) or not isinstance(raw_id, (int, float)):
                raise PromptSpecError(f"{where}: id {_clip(raw_id)} must be an integer >= 1")
            o = obj(_as_int(float(raw_id), f"{where}: id"))
            if entry.get("box") is not None:
                o["box"] = tuple(_json_numbers(entry["box"], f"{where}: box", (5,)))
            entry_points = entry.get("points", []) or []
            if not isinstance(entry_points, list):
                raise PromptSpecError(f"{where}: points {_clip(entry_points)} must be a list of [z, y, x, label]")
            for p in entry_points:
                values = _json_numbers(p, f"{where}: point", (3, 4))
                label = _as_int(values[3], f"{where}: point label") if len(values) == 4 else 1
                if label not in (0, 1):
                    raise PromptSpecError(f"{where}: point label must be 1 (positive) or 0 (negative); got {label}")
                o["points"].append((*values[:3], label))
            if o["box"] is None and not o["points"]:
                raise PromptSpecError(f"{where} has no prompt: give \"box\": [z, y0, x0, y1, x1] "
                                      "and/or \"points\": [[z, y, x, label], ...]")
    next_id = max(objects, default=0) + 1
    for text in boxes:
        values = _numbers(text, "--box", (5, 6))
        obj_id = _as_int(values[5], "--box id") if len(values) == 6 else next_id
        next_id = max(next_id, obj_id) + 1
        obj(obj_id)["box"] = tuple(values[:5])
    for text in points:
        values = _numbers(text, "--point", (3, 4, 5))
        label = _as_int(values[3], "--point label") if len(values) >= 4 else 1
        if label not in (0, 1):
            raise PromptSpecError(f"--point {text!r}: label must be 1 (positive) or 0 (negative)")
        obj_id = _as_int(values[4], "--point id") if len(values) == 5 else 1
        obj(obj_id)["points"].append((*values[:3], label))
    if not objects:
        raise PromptSpecError("no prompt given: use --box z,y0,x0,y1,x1, --point z,y,x or --prompts FILE")
    return objects


def apply_prompts(session, objects: dict[int, dict]) -> None:
    """Add each object's box (then its points, grouped by slice) to `session`."""
    import numpy as np

    for obj_id, prompt in sorted(objects.items()):
        if prompt["box"] is not None:
            s, r0, c0, r1, c1 = prompt["box"]
            session.add_box(obj_id, _as_int(s, "box slice"), (r0, c0, r1, c1))
        by_slice: dict[int, list] = {}
        for z, y, x, label in prompt["points"]:
            key = int(round((z, y, x)[session.slicing_axis]))
            by_slice.setdefault(key, []).append(((z, y, x), label))
        for items in by_slice.values():
            session.add_points(obj_id, np.array([p for p, _ in items]), np.array([l for _, l in items]))


def parse_extents(texts: list[str]) -> dict[int, tuple[int, int]]:
    """`OBJ:FIRST:LAST` strings (slice indices along the propagation axis) → {object: (first, last)}."""
    extents: dict[int, tuple[int, int]] = {}
    for text in texts or []:
        parts = str(text).replace(",", ":").split(":")
        if len(parts) != 3:
            raise PromptSpecError(f"an extent is OBJ:FIRST:LAST (e.g. 1:20:64); got {_clip(text)!r}")
        try:
            obj, first, last = (int(p) for p in parts)
        except ValueError:
            raise PromptSpecError(f"an extent is three integers OBJ:FIRST:LAST; got {_clip(text)!r}") from None
        if first > last or first < 0:
            raise PromptSpecError(f"extent {_clip(text)!r}: FIRST must be >= 0 and <= LAST")
        if obj in extents:
            raise PromptSpecError(f"object {obj} has two extents; give one")
        extents[obj] = (first, last)
    return extents


def apply_extents(session, extents: dict[int, tuple[int, int]]) -> None:
    """`Session.set_extent` for each object (after its prompts were added)."""
    for obj_id, (first, last) in sorted(extents.items()):
        if obj_id not in session.object_ids:
            raise PromptSpecError(f"extent given for object {obj_id}, which has no prompt")
        session.set_extent(obj_id, first, last)
