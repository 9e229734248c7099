"""Part b of bench_workflow: the SAM 2 interactive workflow, our VideoPredictor vs the official SAM2VideoPredictor.

SAM 2.1 tiny, random weights (every tensor drawn, objects made present), synthetic 512² JPEG
frames (both predictors decode the same pixels). The workflow a user runs on N frames:

1. a box (object 1) and a click (object 2) on the middle frame;
2. propagate forward, then backward, from the middle frame;
3. a correction click (object 1) on frame 3N/4, re-propagated forward from there;
4. a correction click (object 1) on frame N/4, re-propagated backward from there.

Each (predictor, N) runs in a fresh subprocess: wall and CPU seconds of the whole workflow
(including the official `init_state`, which loads every frame), image-encoder runs ("frames
encoded"), peak RSS (VmHWM). Every returned mask (prompts and propagations) is compared with
the official run's: share of equal mask pixels over all outputs, and max |logit diff| / max
|logit|. Both predictors make corrected frames conditioning frames (our default; the
official predictor is set to `add_all_frames_to_correct_as_cond=True`, as in its demo).
Rows: `official`; `ours` (float32); `ours bf16` (precision="auto": bf16 only where the CPU
runs it natively, else the row is skipped).

    python benchmarks/bench_workflow.py --part b          # 1024 input, 32 and 128 frames (hours on 2 cores)
    python benchmarks/_workflow_sam2.py --frames 32 128 --image-size 1024
    python benchmarks/_workflow_sam2.py --frames 8 --image-size 256   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO_ROOT))

from bench_sam2 import MODEL, cpu_seconds, peak_rss_mib, random_state, write_frames  # noqa: E402

IMPLS = ("official", "ours", "ours bf16")
GRID = 4  # logits are kept on every GRID-th pixel for the max-difference column


def workflow_steps(num_frames: int, size: int) -> list[tuple]:
    """The workflow as (kind, frame_idx, obj_id, prompt or reverse) steps, frame coordinates in pixels."""
    middle, later, earlier = num_frames // 2, (3 * num_frames) // 4, num_frames // 4
    disc_y, disc_x = 0.45 * size, 0.35 * size
    return [
        ("prompt", middle, 1, dict(box=[disc_x - 0.16 * size, disc_y - 0.16 * size,
                                        disc_x + 0.16 * size, disc_y + 0.16 * size])),
        ("prompt", middle, 2, dict(points=[[0.7 * size, 0.25 * size]], labels=[1])),
        ("propagate", middle, None, False),
        ("propagate", middle, None, True),
        ("prompt", later, 1, dict(points=[[disc_x + 0.05 * size, disc_y + 0.05 * size],
                                          [disc_x + 0.14 * size, disc_y - 0.1 * size]], labels=[1, 0])),
        ("propagate", later, None, False),
        ("prompt", earlier, 1, dict(points=[[disc_x, disc_y], [disc_x - 0.12 * size, disc_y + 0.1 * size]],
                                    labels=[1, 0])),
        ("propagate", earlier, None, True),
    ]


# ---------------------------------------------------------------- one run (subprocess)
def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from tests.sam2core.sam2_oracle import build_official

    folder, out_dir = Path(args.folder), Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = torch.load(args.weights, mmap=True, weights_only=True)
    if args.impl == "official":
        official = build_official(MODEL, image_size=args.image_size, video=True)
        official.load_state_dict(weights, strict=True)
        official.eval()
        official.add_all_frames_to_correct_as_cond = True
        predictor = model = official
    else:
        from PIL import Image

        from sam2core import LazyFrames, VideoPredictor
        from sam2core.predictor.precision import native_bf16
        from sam2core.sam2_build import build_sam2

        if args.impl == "ours bf16" and not native_bf16(torch.device("cpu")):
            print(json.dumps(dict(skipped="no native bf16 on this CPU")))
            return
        model = build_sam2(MODEL, image_size=args.image_size)
        model.load_state_dict(weights, strict=True)
        model.eval()
        predictor = VideoPredictor(model, precision="auto" if args.impl == "ours bf16" else "fp32")

        def read_jpeg(index: int) -> torch.Tensor:
            rgb = np.array(Image.open(folder / f"{index:05d}.jpg").convert("RGB"))
            return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    del weights

    encoded = [0]
    real_forward_image = model.forward_image

    def counting_forward_image(image):
        encoded[0] += image.shape[0]
        return real_forward_image(image)

    model.forward_image = counting_forward_image
    rss_before = peak_rss_mib()
    outputs = []

    def keep(step: int, frame_idx: int, masks) -> None:
        logits = masks[:, 0].float().cpu().numpy()
        outputs.append(f"{step:02d}_{frame_idx:05d}")
        np.save(out_dir / f"{outputs[-1]}_grid.npy", logits[:, ::GRID, ::GRID])
        np.save(out_dir / f"{outputs[-1]}_bits.npy", np.packbits(logits > 0))

    start, cpu_start = time.perf_counter(), cpu_seconds()
    step_seconds = []
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        if args.impl == "official":
            state = predictor.init_state(str(folder))
        else:
            state = predictor.init_state(LazyFrames(args.num_frames, read_jpeg))
        for step, (kind, frame_idx, obj_id, what) in enumerate(workflow_steps(args.num_frames, args.frame_size)):
            step_start = time.perf_counter()
            if kind == "prompt":
                _, _, masks = predictor.add_new_points_or_box(state, frame_idx, obj_id, **what)
                keep(step, frame_idx, masks)
            else:
                for tracked_idx, _, masks in predictor.propagate_in_video(state, start_frame_idx=frame_idx,
                                                                          reverse=what):
                    keep(step, tracked_idx, masks)
            step_seconds.append(round(time.perf_counter() - step_start, 2))
    wall_s, cpu_s = time.perf_counter() - start, cpu_seconds() - cpu_start
    print(json.dumps(dict(wall_s=wall_s, cpu_s=cpu_s, encoded=encoded[0], outputs=len(outputs),
                          peak_rss_mib=peak_rss_mib(), rss_after_model_mib=rss_before, step_s=step_seconds)))


def save_random_weights(path: Path, image_size: int) -> None:
    """One random state dict for every run (drawn for the official model's keys, loaded strictly by both)."""
    import torch

    from tests.sam2core.sam2_oracle import build_official

    official = build_official(MODEL, image_size=image_size, video=True)
    torch.save(random_state(official), path)


def measure(impl: str, num_frames: int, folder: Path, out: Path, args) -> dict:
    command = [sys.executable, __file__, "--worker", "--impl", impl, "--num-frames", str(num_frames),
               "--folder", str(folder), "--out", str(out), "--image-size", str(args.image_size),
               "--frame-size", str(args.frame_size), "--threads", str(args.threads), "--weights", str(args.weights)]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TQDM_DISABLE="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} with {num_frames} frames failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(out: Path, ref: Path) -> tuple[float, float]:
    """(max |diff| / max |ref logit| on the grid, share of equal mask pixels) over every output."""
    worst, agree, total = 0.0, 0, 0
    names = sorted(p.name for p in ref.glob("*_bits.npy"))
    if sorted(p.name for p in out.glob("*_bits.npy")) != names:
        return float("inf"), 0.0
    for name in names:
        a, b = np.unpackbits(np.load(out / name)), np.unpackbits(np.load(ref / name))
        agree += int((a == b).sum())
        total += a.size
        grid = name.replace("_bits", "_grid")
        ga, gb = np.load(out / grid), np.load(ref / grid)
        worst = max(worst, float(np.abs(ga - gb).max() / max(np.abs(gb).max(), 1e-6)))
    return worst, agree / max(total, 1)


def run(args) -> None:
    """Measure every (predictor, frame count) and print the table."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_workflow_sam2_") as tmp:
        folder = Path(tmp) / "frames"
        write_frames(folder, max(args.frames), args.frame_size)
        args.weights = Path(tmp) / "weights.pt"
        save_random_weights(args.weights, args.image_size)
        for num_frames in args.frames:
            sub = Path(tmp) / f"frames_{num_frames}"
            sub.mkdir()
            for index in range(num_frames):  # the official loader takes every JPEG in a folder
                os.link(folder / f"{index:05d}.jpg", sub / f"{index:05d}.jpg")
            for impl in args.impls:
                out = Path(tmp) / f"out_{impl.replace(' ', '_')}_{num_frames}"
                res = measure(impl, num_frames, sub, out, args)
                if "skipped" in res:
                    print(f"  {impl:10s} {num_frames:4d} frames: skipped ({res['skipped']})", flush=True)
                    continue
                res["out"] = out
                results[(impl, num_frames)] = res
                print(f"  {impl:10s} {num_frames:4d} frames: {res['wall_s']:.1f} s wall, {res['cpu_s']:.1f} CPU s, "
                      f"{res['encoded']} encoded, peak RSS {res['peak_rss_mib']:.0f} MiB, steps {res['step_s']}",
                      flush=True)
        print(f"\nSAM 2.1 tiny, random weights, model input {args.image_size}², frames {args.frame_size}², 2 objects, "
              f"CPU, {args.threads} thread(s): prompt on the middle frame, propagate both ways, "
              f"2 corrections each re-propagated")
        header = ("| predictor | frames | wall s | speed vs official | CPU s | CPU speed vs official | frames encoded "
                  "| peak RSS MiB | masks equal | max diff / max logit |")
        print(header)
        print("|" + "|".join("---" for _ in header.split("|")[1:-1]) + "|")
        for (impl, num_frames), res in results.items():
            ref = results.get(("official", num_frames))
            worst, agree = compare(res["out"], ref["out"]) if ref else (float("nan"), float("nan"))
            speed = f"{ref['wall_s'] / res['wall_s']:.2f}x" if ref else "-"
            cpu_speed = f"{ref['cpu_s'] / res['cpu_s']:.2f}x" if ref else "-"
            print(f"| {impl} | {num_frames} | {res['wall_s']:.1f} | {speed} | {res['cpu_s']:.1f} | {cpu_speed} "
                  f"| {res['encoded']} | {res['peak_rss_mib']:.0f} | {100 * agree:.3f} % | {worst:.2e} |")
    low, high = min(args.frames), max(args.frames)
    if low != high:
        print(f"\npeak RSS at {high} frames vs {low} frames:")
        for impl in args.impls:
            if (impl, low) in results and (impl, high) in results:
                a, b = results[(impl, low)]["peak_rss_mib"], results[(impl, high)]["peak_rss_mib"]
                print(f"  {impl:10s} {b / a:.3f}x ({a:.0f} -> {b:.0f} MiB)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, nargs="+", default=[32, 128], help="sequence lengths")
    p.add_argument("--image-size", type=int, default=1024, help="model input size (SAM 2.1: 1024)")
    p.add_argument("--frame-size", type=int, default=512, help="synthetic frame side")
    p.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS,
                   help="rows to measure (official first: it is the reference)")
    p.add_argument("--threads", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl", help=argparse.SUPPRESS)
    p.add_argument("--num-frames", type=int, help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    if args.worker:
        worker(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
