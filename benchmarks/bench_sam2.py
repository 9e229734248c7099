"""Our streaming VideoPredictor vs the official SAM2VideoPredictor: seconds per propagated frame, peak RSS.

Same random-weight SAM 2.1 tiny model, same synthetic frames (JPEGs, so the official loader
and ours decode identical pixels), two objects prompted on frame 0 (clicks and a box),
forward propagation through every frame, CPU. Every measurement runs in a fresh subprocess
(peak RSS from /proc VmHWM, CPU time from `resource.getrusage`; on a shared machine CPU seconds per frame
compare more fairly than wall seconds). Outputs of each run are compared with the official
run on the same frames (logits on a 4-pixel grid): max |diff| / max |logit| and the share of
equal thresholded pixels.

    python benchmarks/bench_sam2.py                    # 1024² frames, 32 and 128 frames (slow on CPU)
    python benchmarks/bench_sam2.py --quick            # 256² model input, 8 and 32 frames
    python benchmarks/bench_sam2.py --frames 16 64 --image-size 512 --bf16

Rows: `official` (official predictor + official model), `ours` (our predictor + our model),
`ours+official-model` (our predictor driving the official model: isolates the predictor),
`ours bf16` (autocast, with --bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL = "sam2.1_hiera_tiny"
OBJ_SCORE_BIAS = "sam_mask_decoder.pred_obj_score_head.layers.2.bias"
GRID = 4  # outputs are compared on every GRID-th pixel (keeps the saved outputs small)


# ---------------------------------------------------------------- frames
def synthetic_frame(index: int, size: int) -> np.ndarray:
    """(y, x, 3) uint8: a disc and a bar moving over a smooth texture."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    disc = ((yy - 0.45 - 0.002 * index) ** 2 + (xx - 0.35 - 0.002 * index) ** 2) < 0.15 ** 2
    bar = (np.abs(yy - 0.25) < 0.08) & (np.abs(xx - 0.7 + 0.003 * index) < 0.15)
    image = np.stack([0.15 + 0.7 * disc, 0.25 + 0.6 * bar, 0.45 + 0.1 * np.sin(xx * 40 + yy * 23)], axis=-1)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_frames(folder: Path, num_frames: int, size: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(num_frames):
        path = folder / f"{index:05d}.jpg"
        if not path.exists():
            Image.fromarray(synthetic_frame(index, size)).save(path, quality=95)


def prompts(size: int) -> tuple[dict, dict]:
    clicks = dict(points=[[0.35 * size, 0.45 * size]], labels=[1])
    box = dict(box=[0.55 * size, 0.17 * size, 0.85 * size, 0.33 * size])
    return clicks, box


# ---------------------------------------------------------------- one measurement (subprocess)
def random_state(official_model, seed: int = 0):
    sys.path.insert(0, str(REPO_ROOT))
    from tests.sam2core.sam2_oracle import random_weights

    weights = random_weights(official_model, seed)
    weights[OBJ_SCORE_BIAS].fill_(3.0)  # objects present, so masks are not all "no object"
    return weights


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO_ROOT))
    from tests.sam2core.sam2_oracle import build_official

    folder, out_dir = Path(args.folder), Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    official = build_official(MODEL, image_size=args.image_size, video=True)
    weights = random_state(official)
    official.load_state_dict(weights, strict=True)
    official.eval()
    clicks, box = prompts(args.frame_size)

    if args.impl == "official":
        predictor, model = official, official
    else:
        from PIL import Image

        from sam2core import LazyFrames, VideoPredictor
        from sam2core.sam2_build import build_sam2

        if args.impl == "ours+official-model":
            model = official
        else:
            del official
            model = build_sam2(MODEL, image_size=args.image_size)
            model.load_state_dict(weights, strict=True)
            model.eval()
        del weights
        predictor = VideoPredictor(model, precision="bf16" if args.impl == "ours bf16" else "fp32")

        def read_jpeg(index: int) -> torch.Tensor:
            rgb = np.array(Image.open(folder / f"{index:05d}.jpg").convert("RGB"))
            return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.impl == "official":
            state = predictor.init_state(str(folder))
        else:
            state = predictor.init_state(LazyFrames(args.num_frames, read_jpeg))
        predictor.add_new_points_or_box(state, 0, 1, **clicks)
        predictor.add_new_points_or_box(state, 0, 2, **box)
        prompt_s = time.perf_counter() - start
        start, cpu_start = time.perf_counter(), cpu_seconds()
        count = 0
        for frame_idx, _, masks in predictor.propagate_in_video(state):
            np.save(out_dir / f"{frame_idx:05d}.npy", masks[:, 0, ::GRID, ::GRID].float().cpu().numpy())
            count += 1
        propagate_s, cpu_s = time.perf_counter() - start, cpu_seconds() - cpu_start
    maxrss_mib = peak_rss_mib()
    print(json.dumps(dict(prompt_s=prompt_s, propagate_s=propagate_s, frames=count,
                          s_per_frame=propagate_s / max(count - 1, 1), cpu_s_per_frame=cpu_s / max(count - 1, 1),
                          peak_rss_mib=maxrss_mib)))


def peak_rss_mib() -> float:
    """Peak resident memory of this process: VmHWM (Linux), else ru_maxrss (which can carry the parent's over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024.0 * 1024.0) if sys.platform == "darwin" else maxrss / 1024.0


def cpu_seconds() -> float:
    """CPU time of this process (user + system): far steadier than wall time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(impl: str, num_frames: int, folder: Path, out: Path, args) -> dict:
    command = [sys.executable, __file__, "--worker", "--impl", impl, "--num-frames", str(num_frames),
               "--folder", str(folder), "--out", str(out), "--image-size", str(args.image_size),
               "--frame-size", str(args.frame_size), "--threads", str(args.threads)]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TQDM_DISABLE="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} with {num_frames} frames failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(out: Path, ref: Path) -> tuple[float, float]:
    """(max |diff| / max |ref logit|, share of equal thresholded pixels) over every saved frame."""
    worst, agree, total = 0.0, 0, 0
    for path in sorted(ref.glob("*.npy")):
        a, b = np.load(out / path.name), np.load(path)
        worst = max(worst, float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6)))
        agree += int(((a > 0) == (b > 0)).sum())
        total += a.size
    return worst, agree / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=None, help="sequence lengths (default 32 128)")
    parser.add_argument("--image-size", type=int, default=None, help="model input size (default 1024)")
    parser.add_argument("--frame-size", type=int, default=None, help="synthetic frame side (default 1024)")
    parser.add_argument("--quick", action="store_true", help="256 model input, 512² frames, 8 and 32 frames")
    parser.add_argument("--bf16", action="store_true", help="also measure our predictor under bf16 autocast")
    parser.add_argument("--no-hybrid", action="store_true", help="skip our predictor driving the official model")
    parser.add_argument("--impls", nargs="+", default=None,
                        help="which rows to measure (official is always measured: it is the reference)")
    parser.add_argument("--threads", type=int, default=torch_threads_default())
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--num-frames", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    args.frames = args.frames or ([8, 32] if args.quick else [32, 128])
    args.image_size = args.image_size or (256 if args.quick else 1024)
    args.frame_size = args.frame_size or (512 if args.quick else 1024)
    impls = ["official", "ours"] + ([] if args.no_hybrid else ["ours+official-model"]) + (["ours bf16"] if args.bf16 else [])
    if args.impls:
        impls = ["official"] + [impl for impl in args.impls if impl != "official"]

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_sam2_") as tmp:
        folder = Path(tmp) / "frames"
        write_frames(folder, max(args.frames), args.frame_size)
        for num_frames in args.frames:
            sub = Path(tmp) / f"frames_{num_frames}"
            sub.mkdir()
            for index in range(num_frames):  # the official loader takes every JPEG in a folder
                os.link(folder / f"{index:05d}.jpg", sub / f"{index:05d}.jpg")
            results = {}
            for impl in impls:
                out = Path(tmp) / f"out_{impl.replace(' ', '_')}_{num_frames}"
                results[impl] = measure(impl, num_frames, sub, out, args)
                results[impl]["out"] = out
                print(f"  {impl:22s} {num_frames:4d} frames: {results[impl]['s_per_frame']:.3f} s/frame "
                      f"({results[impl]['cpu_s_per_frame']:.3f} CPU s/frame), "
                      f"peak RSS {results[impl]['peak_rss_mib']:.0f} MiB", flush=True)
            ref = results["official"]
            for impl in impls:
                worst, agree = compare(results[impl]["out"], ref["out"])
                rows.append((impl, num_frames, results[impl], ref, worst, agree))

    print(f"\nSAM 2.1 tiny, random weights, model input {args.image_size}², frames {args.frame_size}², "
          f"2 objects, CPU, {args.threads} thread(s)")
    header = (f"| {'predictor':22s} | frames | s/frame | speed vs official | CPU s/frame | CPU speed vs official "
              f"| peak RSS MiB | RSS vs official "
              f"| max diff / max logit | masks equal |")
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    for impl, num_frames, res, ref, worst, agree in rows:
        print(f"| {impl:22s} | {num_frames:6d} | {res['s_per_frame']:7.3f} | {ref['s_per_frame'] / res['s_per_frame']:16.2f}x "
              f"| {res['cpu_s_per_frame']:11.3f} | {ref['cpu_s_per_frame'] / res['cpu_s_per_frame']:20.2f}x "
              f"| {res['peak_rss_mib']:12.0f} | {res['peak_rss_mib'] / ref['peak_rss_mib']:14.2f}x "
              f"| {worst:20.2e} | {100 * agree:10.3f}% |")
    by_impl = {}
    for impl, num_frames, res, *_ in rows:
        by_impl.setdefault(impl, {})[num_frames] = res["peak_rss_mib"]
    low, high = min(args.frames), max(args.frames)
    if low != high:
        print(f"\npeak RSS at {high} frames vs {low} frames:")
        for impl, rss in by_impl.items():
            print(f"  {impl:22s} {rss[high] / rss[low]:.3f}x ({rss[low]:.0f} -> {rss[high]:.0f} MiB)")


def torch_threads_default() -> int:
    return max(1, min(4, os.cpu_count() or 1))


if __name__ == "__main__":
    main()
