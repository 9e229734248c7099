"""Fuzz worker: runs a chunk of cases in this process under an address-space limit.

    python tests/fuzz/worker.py CODE_ROOT LIMIT_MB CASES.json

Prints one JSON line `{"start": id}` before each case and one `{"id": ..., ...}` result after
it, so the parent knows which case was running when a crash or a hang killed this process.
`CODE_ROOT` is the checkout whose `scanio`/`volume`/`napari_sam2` are tested (the "before" run
points it at an older worktree).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import sys
import time
from pathlib import Path

MARKER = b"OUTSIDE!SENTINEL"


def _emit(stream, obj) -> None:
    stream.write(json.dumps(obj) + "\n")
    stream.flush()


def _check_read(scan, case) -> dict:
    import numpy as np

    array = np.asarray(scan.array)
    spacing = np.asarray(scan.spacing_mm, dtype=np.float64)
    origin = np.asarray(scan.origin_mm, dtype=np.float64)
    direction = np.asarray(scan.direction, dtype=np.float64)
    finite = bool(np.all(np.isfinite(spacing)) and np.all(spacing > 0) and np.all(np.isfinite(origin))
                  and np.all(np.isfinite(direction)) and abs(np.linalg.det(direction)) > 1e-3)
    values_finite = bool(np.all(np.isfinite(array))) if array.dtype.kind == "f" else True
    result = {"outcome": "read", "finite": finite and values_finite,
              "leak": MARKER in np.ascontiguousarray(array).tobytes(),
              "warnings": len(scan.metadata.get("warnings", [])), "shape": list(array.shape)}
    if case.get("ref"):
        ref = np.load(case["ref"])
        same = (array.shape == ref["array"].shape and np.array_equal(array, ref["array"])
                and np.allclose(spacing[::-1], ref["spacing_xyz"], atol=1e-4)
                and np.allclose(origin, ref["origin_xyz"], atol=1e-3)
                and np.allclose(direction.ravel(), ref["direction"], atol=1e-4))
        result["matches_ref"] = bool(same)
    return result


def run_case(case) -> dict:
    kind = case["kind"]
    if kind == "read":
        import scanio

        try:
            scan = scanio.read_scan(case["path"])
        except scanio.ScanIOError as exc:
            return {"outcome": "typed", "error": type(exc).__name__, "message": str(exc)[:300]}
        return _check_read(scan, case)
    if kind == "manifest":
        from volume.batch import ManifestError, read_manifest

        try:
            jobs = read_manifest(case["path"])
        except ManifestError as exc:
            return {"outcome": "typed", "error": type(exc).__name__, "message": str(exc)[:300]}
        return {"outcome": "read", "finite": True, "leak": False, "warnings": 0, "jobs": len(jobs)}
    if kind == "summary":
        from volume.batch import cohort

        check = getattr(cohort, "_existing_summary", None) or cohort.read_summary
        try:
            rows = check(Path(case["path"]))
        except cohort.BatchError as exc:
            return {"outcome": "typed", "error": type(exc).__name__, "message": str(exc)[:300]}
        return {"outcome": "read", "finite": True, "leak": False, "warnings": 0, "rows": len(rows)}
    if kind == "cli":
        from napari_sam2.cli import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(case["argv"])
            except SystemExit as exc:  # argparse
                rc = exc.code if isinstance(exc.code, int) else 2
        text = err.getvalue()
        if "Traceback" in text:
            return {"outcome": "untyped", "error": "traceback printed", "message": text[-300:]}
        leak = MARKER.decode() in out.getvalue() + text
        if rc == 0:
            return {"outcome": "read", "finite": True, "leak": leak, "warnings": text.count("warning"),
                    "stdout": out.getvalue()[-200:]}
        lines = [ln for ln in text.splitlines() if ln.startswith("error")]
        return {"outcome": "typed", "error": f"exit {rc}", "message": (lines or [text])[0][:300],
                "leak": leak}
    raise ValueError(f"unknown case kind {kind!r}")


def main() -> int:
    code_root, limit_mb, cases_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sys.path.insert(0, code_root)
    out = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # C++ chatter must not mix with the protocol
    resource.setrlimit(resource.RLIMIT_AS, (limit_mb << 20, limit_mb << 20))
    cases = json.loads(Path(cases_file).read_text())
    import numpy  # noqa: F401  (warm imports before the first case's clock starts)
    import scanio  # noqa: F401

    if any(c["kind"] == "cli" for c in cases):
        from napari_sam2.cli import build_parser

        build_parser()  # imports every subcommand module
    if any(c.get("torch") for c in cases):
        import volume  # noqa: F401
        from napari_sam2.cli import segment  # noqa: F401
    _emit(out, {"ready": True})
    for case in cases:
        _emit(out, {"start": case["id"]})
        t0 = time.perf_counter()
        try:
            result = run_case(case)
        except MemoryError:
            result = {"outcome": "memory", "error": "MemoryError"}
        except RecursionError as exc:
            result = {"outcome": "untyped", "error": "RecursionError", "message": str(exc)[:200]}
        except Exception as exc:  # noqa: BLE001 - an untyped error is an outcome to report
            result = {"outcome": "untyped", "error": type(exc).__name__, "message": str(exc)[:300]}
        result["id"] = case["id"]
        result["seconds"] = round(time.perf_counter() - t0, 3)
        with open("/proc/self/status") as f:
            peak = [ln for ln in f if ln.startswith("VmHWM")]
        result["peak_rss_mb"] = int(peak[0].split()[1]) // 1024 if peak else None
        _emit(out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
