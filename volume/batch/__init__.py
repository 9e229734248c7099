"""Cohort segmentation on Dask: a manifest of scans and prompts -> one label file per scan + summary.csv.

`segment_cohort(manifest, out_dir, client=None)` runs locally (a `LocalCluster`) or on any
Dask cluster (`client=` or `scheduler=`); `napari-sam2 batch` is the same from the shell.
"""

from volume.batch.cohort import BatchError, CohortReport, segment_cohort
from volume.batch.manifest import (
    FieldError,
    ManifestError,
    ManifestFormatError,
    MissingScanError,
    ObjectPrompt,
    PromptError,
    ScanJob,
    parse_prompt,
    read_manifest,
)
from volume.batch.runner import Segmentation, SessionSegmenter, TorchThreadsPlugin, cached_model, run_scan
from volume.batch.summary import ScanResult, read_summary

__all__ = [
    "BatchError",
    "CohortReport",
    "FieldError",
    "ManifestError",
    "ManifestFormatError",
    "MissingScanError",
    "ObjectPrompt",
    "PromptError",
    "ScanJob",
    "ScanResult",
    "Segmentation",
    "SessionSegmenter",
    "TorchThreadsPlugin",
    "cached_model",
    "parse_prompt",
    "read_manifest",
    "read_summary",
    "run_scan",
    "segment_cohort",
]
