"""What every `napari-sam2` subcommand shares: checks of common options, and one plain line
(never a traceback, unless `--debug`) for any failure, with exit 2 for bad input, 1 otherwise."""

from __future__ import annotations

import re
import sys
import traceback
from pathlib import Path
from typing import Optional

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130
BATCH_EXTRA_HINT = "pip install 'napari-sam2[batch]'"
_BATCH_MODULES = {"dask", "distributed", "tblib", "msgpack", "cloudpickle", "toolz", "tornado", "zict"}
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?|xpu(:\d+)?)$")


class BadInputError(ValueError):
    """An option or input the user can fix; the message says how."""


def check_device(device: Optional[str]) -> None:
    """`--device`: cpu, cuda[:N], mps or xpu[:N], and available here; else `BadInputError`."""
    if device is None:
        return
    if not _DEVICE.match(device.strip().lower()):
        raise BadInputError(f"--device {device!r} is not a device: use cpu, cuda, cuda:N or mps "
                            "(or leave it out to pick the best available)")
    kind = device.strip().lower().split(":")[0]
    if kind == "cpu":
        return
    import torch

    if kind == "cuda":
        index = int(device.split(":")[1]) if ":" in device else 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise BadInputError(f"--device {device}: no such CUDA device here; use --device cpu")
    elif kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise BadInputError("--device mps: Apple MPS is not available here; use --device cpu")
    elif kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise BadInputError(f"--device {device}: no Intel XPU here; use --device cpu")


def check_window_text(spec: Optional[str]) -> None:
    """`--window LEVEL,WIDTH`: two finite numbers, width > 0 (presets are checked with the scan)."""
    if spec is None or not any(sep in spec for sep in ",/"):
        return
    from volume.windowing import Window

    parts = spec.replace("/", ",").split(",")
    try:
        if len(parts) != 2:
            raise ValueError(f"expected LEVEL,WIDTH, got {spec!r}")
        Window.from_level_width(float(parts[0]), float(parts[1]))
    except ValueError as exc:
        raise BadInputError(f"--window {spec!r}: {exc}; use LEVEL,WIDTH in HU, e.g. 40,400") from None


def check_model_name(name: Optional[str]) -> None:
    """`--model`: a name the model store knows (checked before the scan is read)."""
    if name is None:
        return
    from sam2core.build import list_models

    names = list_models()
    if name not in names:
        raise BadInputError(f"--model {name!r} is not a known model ({', '.join(names)}); see "
                            "napari-sam2 models list")


def check_output_file(out: Path) -> None:
    """`-o FILE`: its folder exists and it is not a folder itself (checked before any work)."""
    if out.is_dir():
        raise BadInputError(f"-o {out} is a folder; give a file name such as {out / 'labels.nii.gz'}")
    if not out.parent.is_dir():
        raise BadInputError(f"-o {out}: the folder {out.parent} does not exist; create it first")


def missing_batch_extra(exc: BaseException) -> bool:
    """True when `exc` is the import error of a package of the `batch` extra."""
    name = getattr(exc, "name", None) or ""
    return isinstance(exc, ImportError) and name.split(".")[0] in _BATCH_MODULES


def is_bad_input(exc: BaseException) -> bool:
    """Errors that say the input or an option is wrong (exit 2)."""
    from scanio import ScanIOError

    names = {cls.__name__ for cls in type(exc).__mro__}
    if isinstance(exc, (ScanIOError, BadInputError)):
        return True
    return bool(names & {"PromptSpecError", "ManifestError", "VolumeError", "UnknownModelError",
                         "SegmenterSpecError", "WindowError"})


def report_failure(exc: BaseException, command: str, target: str, debug: bool) -> int:
    """Print one line for `exc` (the traceback too with `debug`); return the exit code."""
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if isinstance(exc, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    where = f"napari-sam2 {command}" + (f" {target}" if target else "")
    if missing_batch_extra(exc):
        print(f"error: {where}: needs the optional package {exc.name!r}: {BATCH_EXTRA_HINT}", file=sys.stderr)
        return EXIT_FAILED
    message = " ".join(str(exc).split()) or type(exc).__name__
    if is_bad_input(exc):
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if isinstance(exc, MemoryError):
        print(f"error: {where}: out of memory; the input may be larger than this machine can hold "
              "(free memory, or use a smaller scan)", file=sys.stderr)
        return EXIT_FAILED
    hint = "" if debug else " (run again with --debug for details; report it if the input is valid)"
    print(f"error: {where}: {type(exc).__name__}: {message[:500]}{hint}", file=sys.stderr)
    return EXIT_FAILED
