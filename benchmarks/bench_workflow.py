"""End-to-end workflows as a user runs them, timed side by side in one run.

Part a (LiteMedSAM): `napari-sam2 segment` of five organs (spleen, kidneys, liver, stomach) on
`example_ct_sm` and of the liver on the bundled DICOM sample, with `--engine torch --precision
fp32` (today's path) vs `--engine auto --precision auto`: wall seconds of the whole command
(interpreter start, reading, model load, propagation, writing), the seconds the command reports
itself, its CPU seconds (user + system: on a shared, busy machine the ratio of CPU seconds is
steadier than that of wall seconds), and the 3D Dice per organ against the reference labels.
Each configuration runs in a fresh `NAPARI_SAM2_HOME`, whose first `auto` run (export +
measurement, reported separately) is not timed. Boxes: the tight box of the reference label
on its largest slice.

Part b (SAM 2 interactive workflow vs the official predictor, 1024 input, 32 and 128 frames):
benchmarks/_workflow_sam2.py (run it directly for other sizes, e.g. `--frames 16 --image-size 512`).

    python benchmarks/bench_workflow.py [--part a|b|all] [--repeats 1] [--data ../shared/data/totalseg]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FIVE_ORGANS = {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "liver": 5, "stomach": 6}
SAMPLE_LIVER = 5
CONFIGS = {"torch fp32 (today)": ("torch", "fp32"), "auto": ("auto", "auto")}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else 1.0


def largest_slice_box(mask_zyx: np.ndarray) -> tuple[int, int, int, int, int]:
    """(z, y0, x0, y1, x1) of the mask's tight box on its largest axial slice."""
    z = int(np.argmax(mask_zyx.reshape(mask_zyx.shape[0], -1).sum(axis=1)))
    ys, xs = np.nonzero(mask_zyx[z])
    return z, int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())


def napari_sam2_command() -> list[str]:
    """The installed CLI beside this interpreter, else `python -m napari_sam2.cli`."""
    script = Path(sys.executable).with_name("napari-sam2")
    return [str(script)] if script.exists() else [sys.executable, "-m", "napari_sam2.cli"]


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_segment(scan: str, boxes: dict[int, tuple], out: Path, engine: str, precision: str,
                home: Path) -> tuple[float, float, float]:
    """Run `napari-sam2 segment`; (wall seconds, seconds the command reports, its CPU seconds)."""
    argv = [*napari_sam2_command(), "segment", scan, "-o", str(out), "--overwrite", "-q",
            "--engine", engine, "--precision", precision]
    for obj_id, box in boxes.items():
        argv += ["--box", ",".join(str(v) for v in (*box, obj_id))]
    env = {**os.environ, "NAPARI_SAM2_HOME": str(home)}
    start, cpu_start = time.perf_counter(), children_cpu_seconds()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO)
    wall, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu_start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    reported = re.search(r"; ([0-9.]+) s ->", done.stdout)
    return wall, float(reported.group(1)) if reported else float("nan"), cpu


def part_a_cases(data: Path) -> list[dict]:
    """The two LiteMedSAM cases: scan path, boxes per object id, reference masks per object id."""
    import scanio
    from sample_data import sample_ct_path, sample_labels_path

    cases = []
    ct_sm = data / "example_ct_sm.nii.gz"
    if ct_sm.exists():
        seg = np.asarray(scanio.read_scan(data / "example_seg.nii.gz").array)
        refs = {i + 1: seg == label for i, label in enumerate(FIVE_ORGANS.values())}
        cases.append({"name": "example_ct_sm, 5 organs", "scan": str(ct_sm), "names": list(FIVE_ORGANS),
                      "boxes": {k: largest_slice_box(m) for k, m in refs.items()}, "refs": refs})
    else:
        print(f"note: {ct_sm} not found: the five-organ case is skipped")
    scan = scanio.read_scan(sample_ct_path())
    labels = np.asarray(scanio.resample_like(scanio.read_scan(sample_labels_path()), like=scan, is_label=True).array)
    liver = labels == SAMPLE_LIVER
    cases.append({"name": "bundled DICOM sample, liver", "scan": str(sample_ct_path()), "names": ["liver"],
                  "boxes": {1: largest_slice_box(liver)}, "refs": {1: liver}})
    return cases


def run_part_a(args) -> None:
    """Print part a's table (see the module docstring)."""
    import scanio

    cases = part_a_cases(args.data)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for label, (engine, precision) in CONFIGS.items():
            home = tmp_path / f"home-{engine}"
            home.mkdir()
            if engine != "torch":  # first run of a machine: export + measurement (reported, not timed below)
                first, _, _ = run_segment(cases[-1]["scan"], cases[-1]["boxes"], tmp_path / "warm.nii.gz",
                                          engine, precision, home)
                choice = _auto_choice(home)
                print(f"first '{engine}' run (graphs exported, engines measured): {first:.1f} s wall; {choice}")
            for case in cases:
                out = tmp_path / f"{engine}-{len(rows)}.nii.gz"
                walls, reported, cpus = [], [], []
                for _ in range(args.repeats):
                    wall, own, cpu = run_segment(case["scan"], case["boxes"], out, engine, precision, home)
                    walls.append(wall)
                    reported.append(own)
                    cpus.append(cpu)
                labels = np.asarray(scanio.read_scan(out).array)
                dices = [dice(labels == obj_id, ref) for obj_id, ref in case["refs"].items()]
                rows.append({"case": case["name"], "config": label, "wall": min(walls), "own": min(reported),
                             "cpu": min(cpus),
                             "dice": dict(zip(case["names"], dices))})

    print("\n| case | engine | wall s | command's own s | CPU s | speed-up (wall) | speed-up (CPU s) | "
          "Dice per organ | mean Dice |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    baseline = {row["case"]: row for row in rows if row["config"] == next(iter(CONFIGS))}
    for row in rows:
        base = baseline[row["case"]]
        per = ", ".join(f"{k} {v:.3f}" for k, v in row["dice"].items())
        print(f"| {row['case']} | {row['config']} | {row['wall']:.1f} | {row['own']:.1f} | {row['cpu']:.1f} | "
              f"{base['wall'] / row['wall']:.2f}x | {base['cpu'] / row['cpu']:.2f}x | {per} | "
              f"{np.mean(list(row['dice'].values())):.3f} |")
    for row in rows:
        if row["config"] != next(iter(CONFIGS)):
            base = baseline[row["case"]]
            worst = max(abs(row["dice"][k] - base["dice"][k]) for k in row["dice"])
            print(f"{row['case']}: {row['config']} vs today: max |Δ Dice| per organ {worst:.4f}")


def _auto_choice(home: Path) -> str:
    """What the auto choice file under `home` says (engine, precision, measured ms)."""
    import json

    path = home / "engines" / "auto_choice.json"
    try:
        entry = next(iter(json.loads(path.read_text()).values()))
    except (OSError, ValueError, StopIteration):
        return "no measurement recorded (a single candidate: nothing to choose)"
    encode = ", ".join(f"{k} {v:.0f} ms" for k, v in sorted(entry["encode_ms"].items(), key=lambda kv: kv[1]))
    decode = ", ".join(f"{k} {v:.0f} ms" for k, v in sorted(entry["decode_ms"].items(), key=lambda kv: kv[1]))
    return (f"auto picked the encoder on {' '.join(entry['choice'])} and the decoder on {entry['decoder']} "
            f"(measured, encode: {encode}; 3-box decode: {decode})")


def run_part_b(args) -> None:
    """Part b (SAM 2 workflow vs the official predictor) lives in _workflow_sam2.py; its options: that file's -h."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _workflow_sam2 import main as part_b

    part_b([])


PARTS: dict[str, Callable] = {"a": run_part_a, "b": run_part_b}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all", choices=["a", "b", "all"])
    parser.add_argument("--repeats", type=int, default=1, help="runs per configuration (best is kept)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "totalseg")
    args = parser.parse_args(argv)
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in (["a", "b"] if args.part == "all" else [args.part]):
        if name not in PARTS:
            print(f"part {name}: not in this version of the benchmark")
            continue
        print(f"\n## part {name}")
        PARTS[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
