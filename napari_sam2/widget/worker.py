"""Long work off the UI thread: model loading, checkpoint download and propagation.

The libraries report progress through callbacks (`progress=cb`); `stream_callbacks` turns a
blocking call with a callback into a generator, so napari's `thread_worker` can *yield*
every update (per slice, per download chunk) to the UI thread, where layers are touched.
Cancel: the caller's `threading.Event` is checked by the library between slices/chunks.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Generator, Optional

_DONE = object()


class WorkerError(Exception):
    """An error raised in a worker generator, re-typed so that napari reports it.

    superqt's `GeneratorWorker` swallows a `RuntimeError` escaping the generator (it takes it
    for a deleted Qt object): no `errored`, no `finished`. torch raises `RuntimeError` for
    most failures, so generators run by workers pass through `reraise_runtime_errors`.
    """


def qt_alive(widget: Any) -> bool:
    """False once Qt has deleted `widget` (its dock or viewer closed while a worker ran): touch nothing then."""
    try:
        widget.isVisible()
    except RuntimeError:  # "wrapped C/C++ object ... has been deleted"
        return False
    return True


def reraise_runtime_errors(generator: Generator) -> Generator:
    """Delegate to `generator`, turning a `RuntimeError` into a `WorkerError` (same message)."""
    try:
        return (yield from generator)
    except RuntimeError as exc:
        raise WorkerError(f"{type(exc).__name__}: {exc}") from exc


def stream_callbacks(call: Callable[[Callable[..., None]], Any]) -> Generator[Any, None, Any]:
    """Run `call(callback)` in a helper thread; yield every value passed to the callback; return its result."""
    updates: "queue.Queue[Any]" = queue.Queue()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call(lambda *args: updates.put(args[0] if len(args) == 1 else args))
        except BaseException as exc:  # re-raised in the worker thread below
            outcome["error"] = exc
        finally:
            updates.put(_DONE)

    helper = threading.Thread(target=target, name="napari-sam2-call", daemon=True)
    helper.start()
    while True:
        item = updates.get()
        if item is _DONE:
            break
        yield item
    helper.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def precision_context(precision: str, device: Any):
    """autocast for "bf16"/"fp16" on the given device, nothing for "fp32" (thread-local in torch)."""
    import torch

    if precision in ("fp32", "auto", None):
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    device_type = torch.device(device).type if device is not None else "cpu"
    return torch.autocast(device_type=device_type, dtype=dtype)


@dataclass(frozen=True)
class ModelChoice:
    """What the model panel asks for."""

    name: str
    checkpoint: Optional[str] = None
    device: Optional[str] = None  # None: cuda, then mps, then cpu
    precision: str = "fp32"
    engine: str = "auto"  # LiteMedSAM: auto, torch, onnxruntime, openvino (SAM 2: always torch)


LOAD_TIME_PRECISIONS = ("auto", "fp32", "bf16")  # LiteMedSAM's encoder precision is chosen when loading


def load_model(choice: ModelChoice):
    """Build and load the chosen model (runs in a worker thread)."""
    import sam2core

    options = {}
    if choice.name == "lite_medsam":
        precision = choice.precision if choice.precision in LOAD_TIME_PRECISIONS else "fp32"
        options = {"engine": choice.engine, "precision": precision}
    return sam2core.load_model(choice.name, checkpoint=choice.checkpoint or None, device=choice.device, **options)


def download_steps(name: str, cancel: threading.Event) -> Generator[tuple, None, Any]:
    """Download a checkpoint into the cache, yielding `(done_bytes, total_bytes)`."""
    from sam2core.store import download_model

    return (yield from reraise_runtime_errors(
        stream_callbacks(lambda cb: download_model(name, progress=cb, cancel=cancel))))
