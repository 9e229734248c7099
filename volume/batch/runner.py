"""Worker side of a batch: segment one scan, write its labels atomically, report a `ScanResult`.

Runs inside a Dask worker process (or any process): nothing here talks to the client.
The segmenter is pluggable: any picklable callable `segmenter(scan, job) -> Segmentation`;
the default `SessionSegmenter` runs a `volume.Session` with a model loaded once per process.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from volume.batch.manifest import ScanJob
from volume.batch.summary import STATUS_FAILED, STATUS_OK, ScanResult

DEFAULT_MODEL = "lite_medsam"
PARTIAL_DIR = ".partial"
OUTPUT_FORMATS = ("nifti", "seg")


@dataclass
class Segmentation:
    """What a segmenter returns: labels `(z, y, x)` of the scan's shape, and how many slices it encoded."""

    labels: np.ndarray
    slices_encoded: int


Segmenter = Callable[[Any, ScanJob], Segmentation]

# --- one model per process ----------------------------------------------------------------------

_MODEL_LOCK = threading.Lock()
_MODELS: dict[tuple, Any] = {}
_MODEL_LOADS = 0


def cached_model(name: str, device: Optional[str] = None, engine: str = "auto", precision: str = "auto"):
    """The named model, loaded the first time this process asks for it and reused after (one per worker).

    `engine`/`precision` choose what runs LiteMedSAM (`sam2core.load_model`); other models ignore them.
    """
    global _MODEL_LOADS
    options = {"engine": engine, "precision": precision} if name == "lite_medsam" else {}
    key = (name, str(device), *options.values())
    with _MODEL_LOCK:
        model = _MODELS.get(key)
        if model is None:
            from sam2core import load_model

            _apply_torch_threads()
            model = load_model(name, device=device, **options)
            _MODELS[key] = model
            _MODEL_LOADS += 1
        return model


def model_loads() -> int:
    """How many times this process has loaded a model (1 per model name after a batch)."""
    return _MODEL_LOADS


@dataclass
class SessionSegmenter:
    """Segment a scan with a `volume.Session`: every object of the job in one session, then propagate."""

    model: Optional[str] = None  # default model; a job's own `model` wins
    device: Optional[str] = None
    engine: str = "auto"  # LiteMedSAM: auto, torch, onnxruntime, openvino
    precision: str = "auto"  # LiteMedSAM encoder: auto, fp32, bf16, int8

    def model_name(self, job: ScanJob) -> str:
        return job.model or self.model or DEFAULT_MODEL

    def __call__(self, scan, job: ScanJob) -> Segmentation:
        from volume.session import Session

        model = cached_model(self.model_name(job), self.device, self.engine, self.precision)
        options = {}
        if job.axis:
            options["axis"] = job.axis
        if job.window:
            options["window"] = job.window
        session = Session(scan, model=model, device=self.device, **options)
        from volume.prompts import apply_extents, apply_prompts  # the segment CLI's prompt -> session code

        apply_prompts(session, {
            o.obj_id: {"box": o.box_zyx, "points": [(*p, lab) for p, lab in zip(o.points_zyx, o.point_labels)]}
            for o in job.objects
        })
        apply_extents(session, {o.obj_id: o.extent for o in job.objects if o.extent is not None})
        session.propagate()
        return Segmentation(np.asarray(session.labels), int(session.slices_encoded))


# --- the task -------------------------------------------------------------------------------------


def worker_label() -> str:
    """The Dask worker's address (or host:pid outside Dask), for the summary's `worker` column."""
    try:
        from distributed import get_worker

        return f"{get_worker().address} pid {os.getpid()}"
    except (ImportError, ValueError):
        return f"{socket.gethostname()} pid {os.getpid()}"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux `VmHWM`: not inherited from a parent)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # may include the parent's peak on Linux
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def output_path(job: ScanJob, out_dir: Path, output_format: str) -> Path:
    """`OUTDIR/<stem>.nii.gz`, or `OUTDIR/<stem>.dcm` (DICOM-SEG) for DICOM input with format `seg`."""
    if output_format == "seg" and is_dicom_input(job.scan_path):
        return out_dir / f"{job.stem}.dcm"
    return out_dir / f"{job.stem}.nii.gz"


def is_dicom_input(path: Path) -> bool:
    """A DICOM series folder or a single `.dcm` file."""
    return path.is_dir() or path.suffix.lower() == ".dcm"


def _format_per_object(values: dict[int, float], digits: Optional[int] = None) -> str:
    return ";".join(f"{k}:{round(v, digits) if digits is not None else int(v)}" for k, v in values.items())


def _write_atomically(labels: np.ndarray, scan, final: Path, job: ScanJob) -> None:
    """Write under `OUTDIR/.partial/` then rename into place, so `final` is either absent or complete."""
    from scanio import write_labels

    partial_dir = final.parent / PARTIAL_DIR
    partial_dir.mkdir(exist_ok=True)
    suffix = ".dcm" if final.name.endswith(".dcm") else ".nii.gz"
    tmp = partial_dir / f"{job.stem}.{uuid.uuid4().hex[:8]}{suffix}"
    try:
        names = {o.obj_id: o.name for o in job.objects}
        write_labels(tmp, labels, like=scan, overwrite=True, segment_names=names)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def run_scan(
    job: ScanJob,
    out_dir: str,
    segmenter: Segmenter,
    output_format: str = "nifti",
    fingerprint: str = "",
) -> ScanResult:
    """Read, segment and write one scan; any error becomes a `failed` result (never raised),

    except `MemoryError`, which is raised so that Dask retries the task (maybe on a worker
    with more room)."""
    from scanio import read_scan

    t0 = time.perf_counter()
    final = output_path(job, Path(out_dir), output_format)
    result = ScanResult(
        scan=str(job.scan_path),
        output=final.name,
        objects=";".join(f"{o.obj_id}:{o.name}" for o in job.objects),
        worker=worker_label(),
        fingerprint=fingerprint,
    )
    try:
        scan = read_scan(job.scan_path)
        seg = segmenter(scan, job)
        labels = np.asarray(seg.labels)
        if labels.shape != tuple(scan.array.shape):
            raise ValueError(f"segmenter returned labels of shape {labels.shape}, scan is {scan.array.shape}")
        voxel_ml = float(np.prod(scan.spacing_mm)) / 1000.0
        counts = np.bincount(labels.ravel().astype(np.int64), minlength=max(o.obj_id for o in job.objects) + 1)
        voxels = {o.obj_id: int(counts[o.obj_id]) for o in job.objects}
        _write_atomically(labels, scan, final, job)
        result.status = STATUS_OK
        result.voxels = _format_per_object(voxels)
        result.ml = _format_per_object({k: v * voxel_ml for k, v in voxels.items()}, digits=3)
        result.slices_encoded = int(seg.slices_encoded)
        result.shape_zyx = "x".join(str(s) for s in labels.shape)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing scan must never stop the batch
        result.status = STATUS_FAILED
        result.output = ""
        result.error = describe_error(exc)
    result.seconds = round(time.perf_counter() - t0, 3)
    result.peak_rss_mb = round(peak_rss_mb(), 1)
    return result


def describe_error(exc: BaseException) -> str:
    """`Type: message (at file:line)` on one line, for the summary's `error` column."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}{where}"


# --- worker setup -----------------------------------------------------------------------------------

try:
    from distributed import WorkerPlugin as _WorkerPluginBase
except ImportError:  # dask is optional for the rest of volume
    _WorkerPluginBase = object  # type: ignore[assignment,misc]


class TorchThreadsPlugin(_WorkerPluginBase):  # type: ignore[misc,valid-type]
    """Give torch this worker's share of cores: its threads divided by the scans it runs at once.

    A worker started with resources `scan=1` runs one scan at a time with all its threads;
    a worker without that resource runs one scan per thread, each with one torch thread.
    torch is not imported here (a stand-in segmenter may never need it): the count goes to
    `OMP_NUM_THREADS`/`MKL_NUM_THREADS` and is applied when `cached_model` first runs."""

    name = "napari-sam2-torch-threads"

    def __init__(self, torch_threads: Optional[int] = None):
        self.torch_threads = torch_threads

    def setup(self, worker) -> None:
        nthreads = int(worker.state.nthreads)
        slots = int(worker.state.total_resources.get("scan", nthreads)) or nthreads
        set_torch_threads(self.torch_threads or max(1, nthreads // max(1, min(slots, nthreads))))


_TORCH_THREADS: Optional[int] = None


def set_torch_threads(threads: int) -> None:
    """Use `threads` intra-op threads in this process, now if torch is loaded, else when it is."""
    global _TORCH_THREADS
    _TORCH_THREADS = int(threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(_TORCH_THREADS)
    if "torch" in sys.modules:
        _apply_torch_threads()


def _apply_torch_threads() -> None:
    if _TORCH_THREADS is not None:
        import torch

        if torch.get_num_threads() != _TORCH_THREADS:
            torch.set_num_threads(_TORCH_THREADS)
