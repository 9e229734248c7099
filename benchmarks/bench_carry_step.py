"""Per-slice CPU cost of `carry_rule.carry_mask` without the decoder: ms per call on a synthetic frame.

A fake model's `decode_batch` returns fixed logits (three candidates around a ~60x70 px object),
so the table shows only the carrying rule's own work (gate, candidates, Dice, signals, output).
Usage: `python benchmarks/bench_carry_step.py [--size 512 1024] [--repeats 30] [--module M]`; `PYTHONPATH=.
... --module tests.sam2core._carry_rule_reference` times the full-frame rule kept as the tests' oracle (the "before").
"""

from __future__ import annotations

import argparse
import importlib
import time

import numpy as np
import torch

from sam2core.predictor.carry_rule import CarryConfig


class FixedLogitsModel:
    """Returns the same candidate logits for every call (decoder cost excluded)."""

    def __init__(self, logits: torch.Tensor, iou: torch.Tensor):
        self.logits, self.iou = logits, iou

    def decode_batch(self, embedding, boxes):
        if len(boxes) != self.logits.shape[0]:
            raise ValueError(f"FixedLogitsModel holds {self.logits.shape[0]} candidates, asked for {len(boxes)}")
        return self.logits, self.iou


def synthetic_case(size: int, learn, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, object]:
    """A (size, size) plane with a ~60x70 px bright ellipse, a darker neighbour; prev mask, 3 candidate logits."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = size * 0.45, size * 0.55
    dist = np.sqrt(((yy - cy) / 35.0) ** 2 + ((xx - cx) / 30.0) ** 2)  # 70 px tall, 60 px wide
    plane = 0.3 + 0.04 * rng.standard_normal((size, size))
    plane[dist < 1.0] = 0.6 + 0.04 * rng.standard_normal(int((dist < 1.0).sum()))
    plane[(np.abs(yy - cy) < 20) & (xx > cx + 28) & (xx < cx + 60)] = 0.45  # a neighbour of another intensity
    plane_t = torch.from_numpy(np.clip(plane, 0, 1).astype(np.float32))
    prompted = torch.from_numpy(dist < 1.0)
    prev = torch.from_numpy(dist < 0.95)
    logits = torch.from_numpy(np.stack([(1.0 - dist) * s for s in (20.0, 18.0, 16.0)]).astype(np.float32))
    logits[2] += torch.from_numpy(((np.abs(yy - cy) < 20) & (xx > cx + 28) & (xx < cx + 60)) * 12.0)  # a leak
    appearance = learn(plane_t, prompted)
    return plane_t, prev, logits, appearance


def time_call(fn, repeats: int) -> float:
    """Median ms per call (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the per-slice cost on one core)")
    parser.add_argument("--module", default="sam2core.predictor.carry_rule", help="module with carry_mask, AppearanceModel")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rule = importlib.import_module(args.module)
    configs = {  # spelled out: independent of the defaults
        "gate_all": CarryConfig(gate_all=True, signals_before_gate=False),
        "gate_new": CarryConfig(gate_all=False, signals_before_gate=False),
        "gate_all+before_gate": CarryConfig(gate_all=True, signals_before_gate=True),
        "gate_all+app_weight=1": CarryConfig(gate_all=True, appearance_weight=1.0),
    }
    print(f"# {args.module}", flush=True)
    print(f"{'size':>5} {'config':<22} {'appearance':>10} {'ms/call':>8}", flush=True)
    for size in args.size:
        plane, prev, logits, appearance = synthetic_case(size, rule.AppearanceModel.learn)
        model = FixedLogitsModel(logits, torch.tensor([0.9, 0.88, 0.85]))
        cases = [(name, config, appearance) for name, config in configs.items()] + [("gate_all", configs["gate_all"], None)]
        for name, config, app in cases:
            ms = time_call(lambda: rule.carry_mask(model, None, prev, config, plane=plane, appearance=app), args.repeats)
            print(f"{size:>5} {name:<22} {'yes' if app is not None else 'no':>10} {ms:>8.2f}", flush=True)

if __name__ == "__main__":
    main()
