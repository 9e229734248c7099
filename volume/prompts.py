"""Prompts written as text — `--box s,r0,c0,r1,c1`, `--point z,y,x[,label[,id]]`, a prompts JSON
file — parsed into objects and added to a `Session`. Shared by the `segment` CLI and the batch
manifest so that both speak exactly one prompt syntax.

Coordinates are voxel indices of the scan array `(z, y, x)`. A box is a slice index along the
propagation axis and a 2D box on that slice in the two other array axes, in `(z, y, x)` order:
for the axial view of a usual axial scan that is `z,y0,x0,y1,x1`.
"""

from __future__ import annotations

import json
from pathlib import Path


class PromptSpecError(ValueError):
    """A prompt given as text (CLI, prompts file, batch manifest) that cannot be used; the message says how to fix it."""


def _numbers(text: str, what: str, counts: tuple[int, ...]) -> list[float]:
    try:
        values = [float(v) for v in str(text).replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise PromptSpecError(f"{what} {text!r}: expected comma-separated numbers") from None
    if len(values) not in counts:
        raise PromptSpecError(f"{what} {text!r}: expected {' or '.join(map(str, counts))} numbers")
    return values


def _as_int(value: float, what: str) -> int:
    if value != int(value):
        raise PromptSpecError(f"{what} must be an integer; got {value}")
    return int(value)


def collect_prompts(boxes: list[str], points: list[str], prompts_file) -> dict[int, dict]:
    """Objects `{id: {"box": (s, r0, c0, r1, c1) or None, "points": [(z, y, x, label), ...]}}`."""
    objects: dict[int, dict] = {}

    def obj(obj_id: int) -> dict:
        if obj_id < 1:
            raise PromptSpecError(f"object ids start at 1; got {obj_id}")
        return objects.setdefault(obj_id, {"box": None, "points": []})

    if prompts_file:
        path = Path(prompts_file)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise PromptSpecError(f"cannot read prompts file {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise PromptSpecError(f"prompts file {path} is not valid JSON: {exc}") from None
        entries = data.get("objects") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise PromptSpecError(f'prompts file {path}: expected {{"objects": [...]}} or a list of objects')
        for k, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise PromptSpecError(f"prompts file {path}: object #{k + 1} is not a JSON object")
            o = obj(_as_int(float(entry.get("id", k + 1)), f"{path}: id"))
            if entry.get("box") is not None:
                o["box"] = tuple(_numbers(",".join(map(str, entry["box"])), f"{path}: box", (5,)))
            for p in entry.get("points", []) or []:
                values = _numbers(",".join(map(str, p)), f"{path}: point", (3, 4))
                o["points"].append((*values[:3], int(values[3]) if len(values) == 4 else 1))
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
