"""The development set (`shared/data/devset/cases.csv`): rows, reference masks and prompts.

Shared by `eval_devset.py` (the table), `fit_stop_rule.py` (leave-one-source-out choice of
the carrying thresholds) and the slow dev-set tests. A row is one structure of one scan;
its target is `isin(round(label), label_values)` on the image's grid (labels on another
grid, the DICOM rows, are resampled through world coordinates with nearest neighbour).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEVSET = REPO.parent / "shared" / "data" / "devset"


@dataclass(frozen=True)
class DevCase:
    """One row of cases.csv."""

    case: str
    image: Path
    label: Path
    structure: str
    label_values: tuple[int, ...]
    modality: str

    @property
    def name(self) -> str:
        return f"{self.case}/{self.structure}"

    @property
    def source(self) -> str:
        """Public source the scan comes from (the leave-one-out groups)."""
        for prefix, source in (("brats", "BraTS"), ("sts", "sarcoma"), ("ctlesion", "CT-lesion"),
                               ("totalseg", "TotalSegmentator")):
            if self.case.startswith(prefix):
                return source
        return self.case

    @property
    def is_lesion(self) -> bool:
        return self.source != "TotalSegmentator"

    @property
    def is_ct(self) -> bool:
        return self.modality.upper().startswith("CT")

    @property
    def group(self) -> str:
        return f"{'lesions' if self.is_lesion else 'organs'} {'CT' if self.is_ct else 'MR'}"


def load_cases(devset: Path = DEVSET, only: Optional[list[str]] = None) -> list[DevCase]:
    """Rows of cases.csv (paths resolved); `only`: names `case/structure` or case prefixes to keep."""
    rows = []
    with open(devset / "cases.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            item = DevCase(row["case"], (devset / row["image"]).resolve(), (devset / row["label"]).resolve(),
                           row["structure"], tuple(int(v) for v in row["label_values"].split("+")),
                           row["modality"])
            if only and not any(item.name == o or item.name.startswith(o) for o in only):
                continue
            rows.append(item)
    return rows


_SCANS: dict = {}


def read_case(item: DevCase) -> tuple[Any, np.ndarray]:
    """(scan, target mask `(z, y, x)` bool on the scan's grid)."""
    import scanio

    key = (str(item.image), str(item.label))
    if key not in _SCANS:
        _SCANS.clear()
        scan = scanio.read_scan(item.image)
        label = scanio.read_scan(item.label)
        if tuple(label.shape) != tuple(scan.shape) or not np.allclose(label.origin_mm, scan.origin_mm) \
                or not np.allclose(label.spacing_mm, scan.spacing_mm) or not np.allclose(label.direction, scan.direction):
            label = scanio.resample_like(label, like=scan, is_label=True)
        _SCANS[key] = (scan, np.rint(np.asarray(label.array, dtype=np.float32)).astype(np.int32))
    scan, label = _SCANS[key]
    return scan, np.isin(label, item.label_values)


def slices_holding(mask: np.ndarray, axis: int) -> np.ndarray:
    """Indices along `axis` of the slices where `mask` has voxels."""
    other = tuple(a for a in range(3) if a != axis)
    return np.flatnonzero(mask.any(axis=other))


def box_on_slice(mask: np.ndarray, axis: int, s: int) -> Optional[tuple[int, int, int, int]]:
    """Tight inclusive `(r0, c0, r1, c1)` box of the mask on slice `s` (slice rows/cols in (z, y, x) order)."""
    plane = np.take(mask, s, axis=axis)
    rows = np.flatnonzero(plane.any(axis=1))
    cols = np.flatnonzero(plane.any(axis=0))
    if rows.size == 0:
        return None
    r0, c0, r1, c1 = int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])
    # a structure one pixel thick on this slice: a box needs some area, so widen it by a pixel
    if r1 == r0:
        r0, r1 = (r0 - 1, r1) if r1 == plane.shape[0] - 1 else (r0, r1 + 1)
    if c1 == c0:
        c0, c1 = (c0 - 1, c1) if c1 == plane.shape[1] - 1 else (c0, c1 + 1)
    return r0, c0, r1, c1


def protocol_slices(mask: np.ndarray, axis: int, protocol: str) -> list[int]:
    """Prompted slices: the middle of the structure's extent (one-box, extent), or 25/50/75 % (three-boxes)."""
    zs = slices_holding(mask, axis)
    if protocol == "three-boxes":
        picks = [zs[int(round(q * (len(zs) - 1)))] for q in (0.25, 0.5, 0.75)]
        return sorted(set(int(z) for z in picks))
    return [int(zs[len(zs) // 2])]


def load_eval_model(cache: Optional[Path], engine: str = "auto", precision: str = "auto") -> tuple[Any, str]:
    """LiteMedSAM as the CLI and Session run it on this machine (engine/precision chosen), with
    its slice embeddings cached under `cache` (None: no cache); returns (model, "engine precision")."""
    from sam2core.build import load_model
    from sam2core.lite_medsam.engines import configure_engine

    model = load_model("lite_medsam", device="cpu")
    chosen = configure_engine(model, engine=engine, precision=precision)
    described = f"{chosen['engine']} {chosen['precision']}"
    if cache is not None:
        model = CachedEncoder(model, Path(cache) / "embeddings", f"lite_medsam-{chosen['engine']}-{chosen['precision']}")
    return model, described


class CachedEncoder:
    """An image model whose `encode_image` results are kept on disk, keyed by the frame's bytes.

    For evaluation only: the same slice under the same window is encoded once across runs,
    so carrying rules can be compared on many scans quickly. Everything else is delegated.
    """

    def __init__(self, model: Any, folder: Path, tag: str):
        self._model = model
        self._folder = Path(folder)
        self._folder.mkdir(parents=True, exist_ok=True)
        self._tag = tag
        self.hits = 0
        self.misses = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode_image(self, frame: Any) -> Any:
        import torch

        from sam2core.lite_medsam.model import ImageEmbedding
        from sam2core.lite_medsam.preprocess import FrameGeometry

        array = np.ascontiguousarray(np.asarray(frame.detach().cpu() if hasattr(frame, "detach") else frame,
                                                dtype=np.float32))
        digest = hashlib.sha1(self._tag.encode() + str(array.shape).encode() + array.tobytes()).hexdigest()
        path = self._folder / f"{digest}.npz"
        if path.exists():
            try:
                with np.load(path) as data:
                    geometry = FrameGeometry(**json.loads(str(data["geometry"])))
                    self.hits += 1
                    return ImageEmbedding(torch.from_numpy(data["features"]), _tuples(geometry))
            except Exception:  # a partial file from an interrupted run: encode again
                path.unlink(missing_ok=True)
        embedding = self._model.encode_image(frame)
        self.misses += 1
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, features=embedding.features.cpu().numpy(),
                 geometry=json.dumps(_geometry_dict(embedding.geometry)))
        tmp.replace(path)
        return embedding


def _geometry_dict(geometry: Any) -> dict:
    from dataclasses import asdict

    return asdict(geometry)


def _tuples(geometry: Any) -> Any:
    from dataclasses import fields, replace

    return replace(geometry, **{f.name: tuple(getattr(geometry, f.name)) for f in fields(geometry)
                                if isinstance(getattr(geometry, f.name), list)})
