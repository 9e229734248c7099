"""Cohort segmentation on Dask: a manifest of scans and prompts -> one label file per scan + summary.csv.

`segment_cohort(manifest, out_dir, client=None)` runs locally (a `LocalCluster`) or on any
Dask cluster (`client=` or `scheduler=`); `napari-sam2 batch` is the same from the shell.

On an existing cluster (workers must have napari-sam2 installed and see the scan paths and
OUTDIR, e.g. a shared file system)::

    dask scheduler                                   # on one machine: tcp://host:8786
    dask worker tcp://host:8786 --nworkers 4 --nthreads 4 --resources "scan=1"
    napari-sam2 batch cohort.csv -o /shared/out --scheduler tcp://host:8786

or from Python `segment_cohort("cohort.csv", "/shared/out", client=Client(...))`, with the
client of a dask-jobqueue / dask-kubernetes cluster. `--resources scan=1` makes each worker
run one scan at a time with all its threads given to torch (memory bounded by one scan);
without it, each worker thread runs its own scan with one torch thread.
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
