"""Run fuzz cases in worker subprocesses (memory limit, per-case timeout, respawn after a crash)
and sort each outcome into a class.

Outcome classes:
- `correct`: read (or accepted) and right: a control matching its reference, or a damaged
  input read exactly as its original, or read with the warning the case calls for;
- `typed_error`: a typed scanio/manifest/batch error, or a CLI exit 1/2 without a traceback;
- `silent_wrong`: read without a word although wrong (geometry not finite, values differ from
  the original, a refused-by-design input accepted without a warning);
- `outside_read`: a file outside the input was read (its content in the voxels or output, or
  its atime changed);
- `untyped_error`, `memory_error`: another exception or a MemoryError escaped;
- `crash`: the process died (signal, abort); `timeout`: the case ran past its time.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = Path(__file__).with_name("worker.py")
CLASSES = ("correct", "typed_error", "silent_wrong", "outside_read", "untyped_error", "memory_error",
           "crash", "timeout")
ALLOWED = {
    "ok": {"correct"},
    "error": {"typed_error"},
    "either": {"correct", "typed_error"},
    "any": {"correct", "typed_error"},
    "warn": {"correct", "typed_error"},
}


def _spawn(code_root: Path, limit_mb: int, cases: list[dict], tmp: Path):
    cases_file = tmp / f"chunk_{cases[0]['id']}_{len(cases)}.json"
    cases_file.write_text(json.dumps(cases))
    env = dict(os.environ, PYTHONPATH=str(code_root), PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS="1", NAPARI_SAM2_DEBUG="")
    env.pop("NAPARI_SAM2_MAX_VOXELS", None)
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(code_root), str(limit_mb), str(cases_file)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
        cwd=str(tmp))


def _lines(proc, timeout_s: float):
    """Next JSON message from the worker, or None on timeout / "EOF" when it died."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    if not ready:
        return None
    line = proc.stdout.readline()
    if not line:
        return "EOF"
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return {"noise": line[:100].decode("latin-1")}


def run_chunk(code_root: Path, limit_mb: int, cases: list[dict], case_timeout_s: float,
              startup_timeout_s: float = 180.0) -> dict[str, dict]:
    """Results `{case id: result}` for `cases`, run in as many worker processes as crashes need."""
    results: dict[str, dict] = {}
    todo = list(cases)
    with tempfile.TemporaryDirectory(prefix="fuzz_worker_") as tmp_name:
        tmp = Path(tmp_name)
        while todo:
            proc = _spawn(code_root, limit_mb, todo, tmp)
            current, timeout, t0 = None, startup_timeout_s, time.monotonic()
            try:
                while True:
                    msg = _lines(proc, timeout)
                    if msg is None or msg == "EOF":
                        break
                    if "ready" in msg:
                        timeout = case_timeout_s
                    elif "start" in msg:
                        current, t0 = msg["start"], time.monotonic()
                    elif "id" in msg:
                        results[msg["id"]] = msg
                        current = None
                if current is None and msg in (None, "EOF") and len(results) < len(cases):
                    # died or hung outside a case (startup): count it against the next case
                    current = next(c["id"] for c in todo if c["id"] not in results)
                if current is not None:
                    if msg is None:
                        results[current] = {"id": current, "outcome": "timeout", "seconds": case_timeout_s}
                    else:
                        proc.wait(timeout=30)
                        results[current] = {"id": current, "outcome": "crash",
                                            "error": f"worker exit {proc.returncode}",
                                            "seconds": round(time.monotonic() - t0, 3)}
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                proc.stdout.close()
            todo = [c for c in todo if c["id"] not in results]
    return results


def run_cases(cases: list[dict], code_root: Path, *, chunk: int = 60, limit_mb: int = 3072,
              torch_limit_mb: int = 6144, case_timeout_s: float = 20.0,
              torch_case_timeout_s: float = 60.0) -> dict[str, dict]:
    """All results; torch-needing cases (segment CLI) run in their own chunks with a higher
    memory limit and timeout (the segment command may load a model on a loaded CI machine)."""
    results: dict[str, dict] = {}
    plain = [c for c in cases if not c.get("torch")]
    heavy = [c for c in cases if c.get("torch")]
    for group, limit, timeout in ((plain, limit_mb, case_timeout_s), (heavy, torch_limit_mb, torch_case_timeout_s)):
        for start in range(0, len(group), chunk):
            results.update(run_chunk(code_root, limit, group[start:start + chunk], timeout))
    return results


def atimes(cases: list[dict]) -> dict[str, float]:
    """atime of every sentinel, before the run."""
    return {s: os.stat(s).st_atime for c in cases for s in c["sentinels"]}


def classify(case: dict, result: dict, atime_before: dict[str, float]) -> str:
    """The outcome class of one case (see the module docstring)."""
    touched = any(os.stat(s).st_atime != atime_before[s] for s in case["sentinels"])
    outcome = result.get("outcome")
    if touched or result.get("leak"):
        return "outside_read"
    if outcome == "typed":
        return "typed_error"
    if outcome in ("timeout", "crash"):
        return outcome
    if outcome == "memory":
        return "memory_error"
    if outcome == "untyped":
        return "untyped_error"
    # read
    expect = case["expect"]
    if not result.get("finite", False):
        return "silent_wrong"
    if expect in ("ok", "either") and result.get("matches_ref") is False:
        return "silent_wrong"
    if expect == "error" and not result.get("warnings"):
        return "silent_wrong"
    if expect == "warn" and not result.get("warnings"):
        return "silent_wrong"
    return "correct"


def passes(case: dict, klass: str) -> bool:
    return klass in ALLOWED[case["expect"]]


def table(cases: list[dict], classes: dict[str, str], key: str) -> str:
    """Counts of outcome classes per `key` (fmt or cls) as a text table."""
    groups = sorted({c[key] for c in cases})
    present = [k for k in CLASSES if any(classes[c["id"]] == k for c in cases)]
    head = f"{key:14s} {'cases':>5s} " + " ".join(f"{k:>13s}" for k in present)
    rows = [head]
    for g in groups:
        members = [c for c in cases if c[key] == g]
        counts = [sum(classes[c["id"]] == k for c in members) for k in present]
        rows.append(f"{g:14s} {len(members):5d} " + " ".join(f"{n:13d}" for n in counts))
    totals = [sum(classes[c["id"]] == k for c in cases) for k in present]
    rows.append(f"{'total':14s} {len(cases):5d} " + " ".join(f"{n:13d}" for n in totals))
    return "\n".join(rows)


def main() -> int:
    """`python tests/fuzz/runner.py [CODE_ROOT] [--seed N]`: generate, run, print the tables."""
    import argparse
    import importlib.util

    parser = argparse.ArgumentParser()
    parser.add_argument("code_root", nargs="?", default=str(Path(__file__).resolve().parents[2]))
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", default=None, help="write per-case classes here")
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("fuzz_generate", Path(__file__).with_name("generate.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    with tempfile.TemporaryDirectory(prefix="fuzz_cases_") as root:
        t0 = time.perf_counter()
        cases = gen.generate_cases(Path(root), args.seed)
        t1 = time.perf_counter()
        before = atimes(cases)
        results = run_cases(cases, Path(args.code_root))
        t2 = time.perf_counter()
        classes = {c["id"]: classify(c, results[c["id"]], before) for c in cases}
    print(f"{len(cases)} cases: generated in {t1 - t0:.1f} s, run in {t2 - t1:.1f} s")
    print(table(cases, classes, "fmt"))
    print()
    print(table(cases, classes, "cls"))
    failed = [c for c in cases if not passes(c, classes[c["id"]])]
    print(f"\n{len(failed)} case(s) outside what they allow:")
    for c in failed:
        r = results[c["id"]]
        print(f"  {c['id']}: {classes[c['id']]} (expect {c['expect']}) {r.get('error', '')} {str(r.get('message', ''))[:160]}")
    if args.json:
        Path(args.json).write_text(json.dumps({c["id"]: {"class": classes[c["id"]], "fmt": c["fmt"], "cls": c["cls"],
                                                          "expect": c["expect"], "result": results[c["id"]]}
                                               for c in cases}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
