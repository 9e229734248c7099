"""`OUTDIR/summary.csv`: one row per scan, written only by the client, always atomically.

Columns: scan, output, status (`ok` / `failed`), objects (`id:name;...`), voxels and ml per
object (`id:value;...`), slices_encoded, seconds, worker, peak_rss_mb, error, shape_zyx, fingerprint.
The fingerprint and shape let a re-run recognise finished scans (resume).
"""

from __future__ import annotations

import csv
import os
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Optional

SUMMARY_NAME = "summary.csv"
STATUS_OK = "ok"
STATUS_FAILED = "failed"


@dataclass
class ScanResult:
    """Outcome of one scan task, as one summary row (strings/numbers only, so it is CSV-safe)."""

    scan: str
    output: str = ""
    status: str = STATUS_FAILED
    objects: str = ""  # "1:liver;2:spleen"
    voxels: str = ""  # "1:12345;2:678"
    ml: str = ""  # "1:333.315;2:18.306"
    slices_encoded: int = 0
    seconds: float = 0.0
    worker: str = ""
    peak_rss_mb: float = 0.0  # the worker process's peak memory when the scan finished
    error: str = ""
    shape_zyx: str = ""  # "30x101x122"
    fingerprint: str = ""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def per_object(self, column: str) -> dict[int, float]:
        """`voxels` / `ml` as `{obj_id: value}`."""
        text = getattr(self, column)
        out = {}
        for item in filter(None, text.split(";")):
            key, value = item.split(":", 1)
            out[int(key)] = float(value)
        return out


COLUMNS = [f.name for f in fields(ScanResult)]


def summary_path(out_dir: os.PathLike) -> Path:
    return Path(out_dir) / SUMMARY_NAME


def read_summary(out_dir: os.PathLike) -> dict[str, ScanResult]:
    """Rows of an existing `summary.csv` keyed by scan path; empty when there is none."""
    path = summary_path(out_dir)
    if not path.is_file():
        return {}
    rows: dict[str, ScanResult] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            values = {k: (raw.get(k) or "") for k in COLUMNS}
            try:
                values["slices_encoded"] = int(values["slices_encoded"] or 0)
                values["seconds"] = float(values["seconds"] or 0.0)
                values["peak_rss_mb"] = float(values["peak_rss_mb"] or 0.0)
            except ValueError:
                continue  # a damaged row is treated as "not done"
            rows[values["scan"]] = ScanResult(**values)
    return rows


def write_summary(out_dir: os.PathLike, results: Iterable[ScanResult], order: Optional[list[str]] = None) -> Path:
    """Write all rows to `summary.csv` atomically (temp file in the same folder, then rename)."""
    path = summary_path(out_dir)
    rows = list(results)
    if order is not None:
        rank = {scan: i for i, scan in enumerate(order)}
        rows.sort(key=lambda r: rank.get(r.scan, len(rank)))
    tmp = path.parent / f".summary.{uuid.uuid4().hex[:8]}.csv.tmp"  # open(): the user's umask applies
    try:
        with open(tmp, "x", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: v for k, v in asdict(row).items()})
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
