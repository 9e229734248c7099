"""Cohort throughput: a plain serial loop of `Session` calls vs `segment_cohort` on Dask.

The shared scans (CT and MR, liver box from their reference labels) are repeated to make
`--tasks` scans; `--slices` crops each to that many slices around the prompt (the full scans
take ~2 s per slice on one CPU core with LiteMedSAM). Configurations:

- serial: one process, torch with `--cores` threads, model loaded once, then per scan
  read -> Session -> box -> propagate -> write.
- batch 1 worker x N threads, and N workers x 1 thread (N = `--cores`), on a LocalCluster
  started before timing (its start-up time is printed apart).

Prints scans/minute (model load included), Dask overhead per task (wall time not spent
inside the per-scan work, per scan, with the serial loop's figure as the baseline), and peak
memory per worker process. Usage: `python benchmarks/bench_batch.py --tasks 12`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SCANS = [("example_ct_sm.nii.gz", "example_seg.nii.gz"), ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz")]
LIVER = 5


def _data_dir() -> Path:
    env = os.environ.get("NAPARI_SAM2_SHARED_DATA")
    return (Path(env) if env else REPO.parent / "shared" / "data") / "totalseg"


def make_cohort(work: Path, tasks: int, slices: int) -> list[dict]:
    """Crop each shared scan around the liver's middle slice; repeat (symlinks) to `tasks` manifest rows."""
    import SimpleITK as sitk

    bases = []
    for scan_name, seg_name in SCANS:
        image = sitk.ReadImage(str(_data_dir() / scan_name))
        liver = sitk.GetArrayFromImage(sitk.ReadImage(str(_data_dir() / seg_name))) == LIVER
        zs = np.flatnonzero(liver.any(axis=(1, 2)))
        mid = int(zs[len(zs) // 2])
        n = min(slices or liver.shape[0], liver.shape[0])
        z0 = int(np.clip(mid - n // 2, 0, liver.shape[0] - n))
        path = work / f"base_{scan_name}"
        sitk.WriteImage(image[:, :, z0:z0 + n], str(path))
        ys, xs = np.nonzero(liver[mid])
        bases.append((path, f"{mid - z0},{ys.min()},{xs.min()},{ys.max()},{xs.max()}"))
    rows = []
    for i in range(tasks):
        path, box = bases[i % len(bases)]
        link = work / f"task{i:03d}_{path.name[5:]}"
        link.symlink_to(path)
        rows.append({"scan": str(link), "object_id": 1, "object_name": "liver", "box": box})
    return rows


def run_serial(rows: list[dict], out: Path, model_name: str, cores: int) -> dict:
    """The baseline: a plain loop of Session calls in this process."""
    import torch

    from scanio import read_scan, write_labels
    from sam2core import load_model
    from volume.session import Session

    torch.set_num_threads(cores)
    out.mkdir()
    t0 = time.perf_counter()
    model = load_model(model_name)
    inside = 0.0
    for row in rows:
        t = time.perf_counter()
        scan = read_scan(row["scan"])
        z, y0, x0, y1, x1 = (int(v) for v in row["box"].split(","))
        session = Session(scan, model=model)
        session.add_box(1, z, (y0, x0, y1, x1))
        labels = session.propagate()
        write_labels(out / Path(row["scan"]).name, labels, like=scan)
        inside += time.perf_counter() - t
    wall = time.perf_counter() - t0
    from volume.batch.runner import peak_rss_mb

    peak = peak_rss_mb()  # of this whole process (crops were made here too)
    return {"wall": wall, "inside": inside, "workers": 1, "peak": {"main": peak}, "start": 0.0, "failed": 0}


def run_batch(rows: list[dict], out: Path, model_name: str, workers: int, threads: int) -> dict:
    """`segment_cohort` on a fresh LocalCluster (started before the clock)."""
    from distributed import Client, LocalCluster

    from volume.batch import segment_cohort

    t = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                           resources={"scan": 1}, dashboard_address=None)
    client = Client(cluster)
    start = time.perf_counter() - t
    try:
        t0 = time.perf_counter()
        report = segment_cohort(rows, out, client=client, model=model_name, progress=False, log=lambda m: None)
        wall = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    peak: dict[str, float] = {}
    for r in report.results:
        peak[r.worker] = max(peak.get(r.worker, 0.0), r.peak_rss_mb)
    inside = sum(r.seconds for r in report.results)
    return {"wall": wall, "inside": inside, "workers": workers, "peak": peak, "start": start,
            "failed": len(report.failed)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=12, help="scans in the cohort (default 12)")
    parser.add_argument("--slices", type=int, default=0, help="crop each scan to this many slices (0: whole scan)")
    parser.add_argument("--cores", type=int, default=2, help="cores to share out (default 2)")
    parser.add_argument("--model", default="lite_medsam")
    parser.add_argument("--configs", default="serial,1xN,Nx1", help="comma list of serial, 1xN, Nx1")
    args = parser.parse_args(argv)
    if not _data_dir().is_dir():
        print(f"shared data not found at {_data_dir()}", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    try:
        rows = make_cohort(work, args.tasks, args.slices)
        n = args.cores
        plans = {"serial": ("serial loop", None), "1xN": (f"batch 1 worker x {n} threads", (1, n)),
                 "Nx1": (f"batch {n} workers x 1 thread", (n, 1))}
        results = []
        for key in args.configs.split(","):
            label, shape = plans[key]
            out = work / f"out_{key}"
            print(f"running {label} ...", file=sys.stderr, flush=True)
            res = run_serial(rows, out, args.model, n) if shape is None else run_batch(rows, out, args.model, *shape)
            results.append((label, res))
            print(f"  {label}: {res}", file=sys.stderr, flush=True)

        print(f"\n{args.tasks} tasks ({args.slices or 'all'} slices each), model {args.model}, "
              f"{os.cpu_count()} visible cores, load average {os.getloadavg()[0]:.1f}\n")
        print("| configuration | cluster start s | wall s | scans/min | overhead/task s | vs serial | peak MiB per worker | failed |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        serial_wall = next((r["wall"] for label, r in results if label == "serial loop"), None)
        for label, r in results:
            per_min = 60.0 * args.tasks / r["wall"]
            overhead = (r["wall"] - r["inside"] / r["workers"]) / args.tasks
            ratio = f"{serial_wall / r['wall']:.2f}x" if serial_wall else "-"
            peaks = ", ".join(f"{v:.0f}" for v in sorted(r["peak"].values()))
            print(f"| {label} | {r['start']:.1f} | {r['wall']:.1f} | {per_min:.2f} | {overhead:.2f} | {ratio} | {peaks} | {r['failed']} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
