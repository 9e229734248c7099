"""Client side of a batch: plan (resume), submit one Dask task per scan, collect, write the summary.

`segment_cohort(manifest, out_dir)` starts a `LocalCluster` when given no client or scheduler
address; with `client=` (a `distributed.Client`) or `scheduler="tcp://host:8786"` it runs on
that cluster unchanged. Only this side writes `summary.csv`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from volume.batch.manifest import FieldError, ScanJob, parse_manifest_rows, read_manifest
from volume.batch.runner import (
    DEFAULT_MODEL,
    OUTPUT_FORMATS,
    PARTIAL_DIR,
    SessionSegmenter,
    TorchThreadsPlugin,
    output_path,
    run_scan,
)
from volume.batch.summary import STATUS_FAILED, ScanResult, read_summary, write_summary

ManifestLike = Union[str, os.PathLike, Sequence[ScanJob], Sequence[dict]]
ProgressLike = Union[bool, Callable[[int, int], None]]
SCAN_RESOURCE = "scan"
SUMMARY_EVERY_S = 1.0  # the summary is rewritten (atomically) at most this often, and at the end


class BatchError(RuntimeError):
    """The batch could not run at all (bad options, no cluster); per-scan failures are summary rows instead."""


@dataclass
class CohortReport:
    """What a batch did: every scan's row (manifest order), which ran now and which were already done."""

    out_dir: Path
    results: list[ScanResult]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dashboard_link: Optional[str] = None

    @property
    def failed(self) -> list[ScanResult]:
        return [r for r in self.results if not r.ok]

    @property
    def ok(self) -> list[ScanResult]:
        return [r for r in self.results if r.ok]


def load_jobs(manifest: ManifestLike) -> list[ScanJob]:
    """A manifest path, a list of `ScanJob`s or a list of manifest-row dicts -> validated jobs."""
    if isinstance(manifest, (str, os.PathLike)):
        return read_manifest(manifest)
    items = list(manifest)
    if items and all(isinstance(j, ScanJob) for j in items):
        return items
    return parse_manifest_rows(items, base_dir=Path.cwd())


def output_shape_zyx(path: Path) -> tuple[int, ...]:
    """Shape of a written label file, read back from disk (`(z, y, x)`; DICOM-SEG: `(frames, rows, cols)`)."""
    if path.name.endswith(".dcm"):
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return (int(getattr(ds, "NumberOfFrames", 1)), int(ds.Rows), int(ds.Columns))
    from scanio import read_scan

    return tuple(read_scan(path).array.shape)


def is_complete(job: ScanJob, row: Optional[ScanResult], out_dir: Path, fingerprint: str, output_format: str) -> bool:
    """True when a previous run finished this exact job: an `ok` row with the same fingerprint and
    an output that exists and reads back with the recorded shape."""
    if row is None or not row.ok or row.fingerprint != fingerprint:
        return False
    path = output_path(job, out_dir, output_format)
    if row.output != path.name or not path.is_file():
        return False
    try:
        shape = output_shape_zyx(path)
    except Exception:  # noqa: BLE001 - unreadable output means "redo"
        return False
    expected = tuple(int(s) for s in row.shape_zyx.split("x")) if row.shape_zyx else ()
    if path.name.endswith(".dcm"):
        return len(expected) == 3 and shape[1:] == expected[1:]
    return shape == expected


def clean_partial(out_dir: Path) -> None:
    """Remove files left under `OUTDIR/.partial/` by tasks that were killed mid-write."""
    partial = out_dir / PARTIAL_DIR
    if partial.is_dir():
        for p in partial.iterdir():
            p.unlink(missing_ok=True)
        try:
            partial.rmdir()
        except OSError:
            pass


def _check_models(jobs: list[ScanJob], default_model: Optional[str]) -> None:
    try:
        from sam2core import list_models

        known = set(list_models())
    except ImportError:
        return
    problems = []
    if default_model and default_model not in known:
        problems.append((0, f"model {default_model!r} is unknown; known models: {', '.join(sorted(known))}"))
    for job in jobs:
        if job.model and job.model not in known:
            problems.append((job.rows[0], f"model {job.model!r} is unknown; known: {', '.join(sorted(known))}"))
    if problems:
        raise FieldError(None, problems)


def _start_local_cluster(workers: int, threads_per_worker: int, log: Callable[[str], None]):
    from distributed import Client, LocalCluster

    has_dashboard = importlib.util.find_spec("bokeh") is not None
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        resources={SCAN_RESOURCE: 1},
        dashboard_address=":0" if has_dashboard else None,
    )
    client = Client(cluster)
    link = client.dashboard_link if has_dashboard else None
    log(
        f"started a local Dask cluster: {workers} worker(s) x {threads_per_worker} thread(s); "
        + (f"dashboard: {link}" if link else "no dashboard (install bokeh>=3.1 to get one)")
    )
    return cluster, client, link


def _uses_scan_resource(client) -> bool:
    workers = client.scheduler_info().get("workers", {})
    return bool(workers) and all(SCAN_RESOURCE in (w.get("resources") or {}) for w in workers.values())


def _failed_from_exception(job: ScanJob, out_dir: Path, exc: BaseException, fingerprint: str) -> ScanResult:
    from distributed import KilledWorker

    text = " ".join(str(exc).split())
    if isinstance(exc, KilledWorker):
        text = f"KilledWorker: every worker that ran this scan died (out of memory?): {text}"
    else:
        text = f"{type(exc).__name__}: {text}"
    return ScanResult(
        scan=str(job.scan_path),
        status=STATUS_FAILED,
        objects=";".join(f"{o.obj_id}:{o.name}" for o in job.objects),
        error=text,
        fingerprint=fingerprint,
    )


def _existing_summary(out: Path) -> dict[str, ScanResult]:
    """The rows of an earlier run's `summary.csv`, after checking it can be parsed at all
    (`BatchError` naming the file and line otherwise; rows with bad numbers count as not done)."""
    import csv
    import io
    import stat

    from volume.batch.summary import summary_path

    path = summary_path(out)
    if not os.path.lexists(path):
        return {}
    hint = "move it away (or delete it) to start the batch afresh"
    try:
        st = os.stat(path)
    except OSError as exc:
        raise BatchError(f"{path}: cannot read the summary of an earlier run ({exc.strerror}); {hint}") from None
    if not stat.S_ISREG(st.st_mode):
        raise BatchError(f"{path}: the summary of an earlier run is not a regular file; {hint}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchError(f"{path}: the summary of an earlier run is not UTF-8 text (byte {exc.start}); {hint}") from None
    except OSError as exc:
        raise BatchError(f"{path}: cannot read the summary of an earlier run ({exc.strerror}); {hint}") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise BatchError(f"{path}: line {line} of the summary of an earlier run holds a NUL byte; {hint}")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        for _ in reader:
            pass
    except csv.Error as exc:
        raise BatchError(f"{path}: line {reader.line_num} of the summary of an earlier run cannot be parsed "
                         f"({exc}); {hint}") from None
    if header is None or "scan" not in header:
        raise BatchError(f"{path}: the summary of an earlier run has no 'scan' column; {hint}")
    try:
        return read_summary(out)
    except (ValueError, TypeError, KeyError, csv.Error) as exc:
        raise BatchError(f"{path}: the summary of an earlier run is damaged ({exc}); {hint}") from None


def segment_cohort(
    manifest: ManifestLike,
    out_dir: Union[str, os.PathLike],
    client: Any = None,
    *,
    model: Optional[str] = None,
    output_format: str = "nifti",
    scheduler: Optional[str] = None,
    workers: Optional[int] = None,
    threads_per_worker: Optional[int] = None,
    segmenter: Optional[Callable] = None,
    device: Optional[str] = None,
    engine: str = "auto",
    precision: str = "auto",
    retries: int = 2,
    progress: ProgressLike = True,
    cancel: Optional[threading.Event] = None,
    log: Optional[Callable[[str], None]] = None,
) -> CohortReport:
    """Segment every scan of `manifest` into `out_dir` on Dask, one task per scan; resume-safe.

    client: a `distributed.Client` to run on (or a scheduler address); None starts a
    `LocalCluster` of `workers` processes x `threads_per_worker` threads (closed at the end).
    segmenter: picklable `segmenter(scan, job) -> Segmentation`; default `SessionSegmenter(model)`.
    engine/precision: what runs LiteMedSAM on the workers (`sam2core.load_model`; default auto).
    Scans whose output is already complete and valid are skipped; failures become `failed`
    rows in `out_dir/summary.csv` and never stop the batch. `progress` True shows a tqdm bar of
    scans done / total (finished earlier count as done), or is called as `progress(done, total)`;
    setting `cancel` stops waiting and cancels the rest.
    """
    t0 = time.perf_counter()
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if output_format not in OUTPUT_FORMATS:
        raise BatchError(f"output format {output_format!r} must be one of {', '.join(OUTPUT_FORMATS)}")
    jobs = load_jobs(manifest)  # raises ManifestError before any work
    if segmenter is None:
        _check_models(jobs, model)
        segmenter = SessionSegmenter(model=model, device=device, engine=engine, precision=precision)
    default_model = getattr(segmenter, "model", None) or model or DEFAULT_MODEL
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean_partial(out)

    rows = _existing_summary(out)
    kind = f"{type(segmenter).__module__}.{type(segmenter).__qualname__}"
    fingerprints = {
        job.scan_path: job.fingerprint(model=default_model, output_format=output_format, segmenter=kind) for job in jobs
    }
    order = [str(j.scan_path) for j in jobs]
    todo, skipped = [], []
    for job in jobs:
        if is_complete(job, rows.get(str(job.scan_path)), out, fingerprints[job.scan_path], output_format):
            skipped.append(str(job.scan_path))
        else:
            todo.append(job)
    if skipped:
        log(f"{len(skipped)} of {len(jobs)} scan(s) already done in {out}; skipping them")

    report = CohortReport(out, [], ran=[str(j.scan_path) for j in todo], skipped=skipped)
    if todo:
        report.dashboard_link = _run_jobs(
            todo, out, rows, order, fingerprints, segmenter, output_format, client, scheduler,
            workers, threads_per_worker, retries, progress, cancel, log,
        )
    report.results = [rows[s] for s in order if s in rows]
    report.seconds = time.perf_counter() - t0
    return report


def _run_jobs(
    todo, out, rows, order, fingerprints, segmenter, output_format, client, scheduler,
    workers, threads_per_worker, retries, progress, cancel, log,
) -> Optional[str]:
    from distributed import Client, as_completed

    cluster = own_client = None
    link = None
    if isinstance(client, str):
        scheduler, client = client, None
    try:
        if client is None and scheduler:
            client = own_client = Client(scheduler)
            log(f"connected to Dask scheduler {scheduler}; dashboard: {client.dashboard_link}")
        elif client is None:
            tpw = max(1, int(threads_per_worker or 1))
            n = workers or max(1, (os.cpu_count() or 1) // tpw)
            n = max(1, min(int(n), len(todo)))
            cluster, client, link = _start_local_cluster(n, tpw, log)
            own_client = client
        client.register_plugin(TorchThreadsPlugin(), name=TorchThreadsPlugin.name)
        resources = {SCAN_RESOURCE: 1} if _uses_scan_resource(client) else None

        by_key = {}
        futures = []
        for job in todo:
            fp = fingerprints[job.scan_path]
            fut = client.submit(
                run_scan, job, str(out), segmenter, output_format, fp,
                key=f"napari-sam2-segment-{job.stem}-{fp}", retries=retries, resources=resources,
            )
            by_key[fut.key] = job
            futures.append(fut)

        already = len(order) - len(todo)
        bar = _progress_bar(progress, len(order), already)
        done = 0
        last_write = 0.0
        unwritten = False
        pending = as_completed(futures)
        try:
            while not pending.is_empty():
                if cancel is not None and cancel.is_set():
                    client.cancel(futures)
                    log(f"cancelled: {len(todo) - done} scan(s) not done")
                    break
                batch = pending.next_batch(block=False)
                if not batch:
                    time.sleep(0.1)
                    continue
                for fut in batch:
                    job = by_key[fut.key]
                    if fut.status == "finished":
                        result = fut.result()
                    elif fut.status == "cancelled":
                        continue
                    else:
                        result = _failed_from_exception(job, out, fut.exception(), fingerprints[job.scan_path])
                    rows[result.scan] = result
                    unwritten = True
                    fut.release()
                    done += 1
                    bar(already + done, result)
                if time.monotonic() - last_write >= SUMMARY_EVERY_S:  # whole-file rewrites, so not per row
                    write_summary(out, rows.values(), order=order)
                    last_write, unwritten = time.monotonic(), False
        finally:
            if unwritten:
                write_summary(out, rows.values(), order=order)
            bar(None, None)
    finally:
        if own_client is not None:
            own_client.close()
        if cluster is not None:
            cluster.close()
        clean_partial(out)
    return link


def _progress_bar(progress: ProgressLike, total: int, already: int = 0) -> Callable:
    """`update(done, result)`; `update(None, None)` closes it."""
    if callable(progress):
        def update(done, result):
            if done is not None:
                progress(done, total)
        return update
    if not progress:
        return lambda done, result: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=already, desc="scans", unit="scan", file=sys.stderr)
    failed = 0

    def update(done, result):
        nonlocal failed
        if done is None:
            bar.close()
            return
        failed += 0 if result.ok else 1
        bar.set_postfix(failed=failed)
        bar.update(1)
    return update
