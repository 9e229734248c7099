"""The fuzz suite: ~540 generated damaged and hostile inputs, each run in a worker subprocess under
an address-space limit and a per-case timeout; every case must end in its allowed class (a typed
error, or a correct read for the valid controls), and no file outside the input may be read.

Run it alone, with the tables: `python tests/fuzz/runner.py` (or against another checkout:
`python tests/fuzz/runner.py /path/to/old/checkout`).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"fuzz_{name}", _HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory):
    """Generate every case (seed 13) and run them all once; shared by the tests below."""
    generate, runner = _load("generate"), _load("runner")
    if not hasattr(__import__("os"), "mkfifo") or sys.platform == "win32":
        pytest.skip("the fuzz suite needs POSIX FIFOs, sockets and RLIMIT_AS")
    root = tmp_path_factory.mktemp("fuzz")
    cases = generate.generate_cases(root, seed=13)
    before = runner.atimes(cases)
    results = runner.run_cases(cases, _ROOT)
    classes = {c["id"]: runner.classify(c, results[c["id"]], before) for c in cases}
    print("\n" + runner.table(cases, classes, "fmt") + "\n\n" + runner.table(cases, classes, "cls"))
    return cases, results, classes, runner


@pytest.mark.slow
def test_enough_cases_across_every_format(fuzz_run):
    cases, _, _, _ = fuzz_run
    assert len(cases) >= 300
    per_format = {}
    for c in cases:
        per_format[c["fmt"]] = per_format.get(c["fmt"], 0) + 1
    for fmt in ("nifti", "nrrd", "metaimage", "dicom-series", "dicom-file", "prompts", "manifest"):
        assert per_format.get(fmt, 0) >= 10, (fmt, per_format)


@pytest.mark.slow
def test_every_case_ends_in_an_allowed_class(fuzz_run):
    cases, results, classes, runner = fuzz_run
    bad = [f"{c['id']}: {classes[c['id']]} (expect {c['expect']}): {results[c['id']].get('error', '')} "
           f"{str(results[c['id']].get('message', ''))[:200]}"
           for c in cases if not runner.passes(c, classes[c["id"]])]
    assert not bad, "\n".join(bad)


@pytest.mark.slow
def test_no_file_outside_the_input_is_read(fuzz_run):
    cases, _, classes, _ = fuzz_run
    pointing_outside = [c for c in cases if c["sentinels"]]
    assert len(pointing_outside) >= 20
    assert [c["id"] for c in pointing_outside if classes[c["id"]] == "outside_read"] == []


@pytest.mark.slow
def test_no_case_crashes_hangs_or_exhausts_memory(fuzz_run):
    cases, results, classes, _ = fuzz_run
    bad = [(c["id"], classes[c["id"]]) for c in cases if classes[c["id"]] in ("crash", "timeout", "memory_error")]
    assert bad == []
    peaks = [results[c["id"]].get("peak_rss_mb") or 0 for c in cases]
    assert max(peaks) < 3072  # the worker's address-space limit for scan cases is 3 GiB


@pytest.mark.slow
def test_valid_controls_read_exactly(fuzz_run):
    cases, results, classes, _ = fuzz_run
    controls = [c for c in cases if c["expect"] == "ok" and c.get("ref")]
    assert len(controls) >= 10
    assert all(results[c["id"]].get("matches_ref") for c in controls), \
        [c["id"] for c in controls if not results[c["id"]].get("matches_ref")]
