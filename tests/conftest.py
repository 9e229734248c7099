"""Shared test fixtures: where the real data lives, and skips with a clear reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from napari_sam2._triton_guard import block_triton_without_cuda

# GUI tests load Mesa's LLVM (llvmpipe under xvfb); a later lazy `import triton` by torch in the
# same pytest process would then segfault. Same guard as the dock widget's.
block_triton_without_cuda()

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """`../shared/data` beside the checkout, or `$NAPARI_SAM2_SHARED_DATA`."""
    env = os.environ.get("NAPARI_SAM2_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def totalseg_dir() -> Path:
    """The TotalSegmentator test scans (CT, DICOM series, MR, reference labels)."""
    path = shared_data_dir() / "totalseg"
    if not path.is_dir():
        pytest.skip(f"real test data not found at {path} (set NAPARI_SAM2_SHARED_DATA)")
    return path
