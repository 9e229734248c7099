"""Encode a session's slices ahead of the user (background work) and keep them in the embedding store.

`precompute(session, ...)` runs the image encoder on every slice, outward from a centre
slice (re-read at every step, so a viewer can re-centre it as the user moves) or in order;
slices already encoded (RAM or store) cost nothing. Prompts and propagation then find their
embeddings ready. Long work: progress callback, cancel event, pause event.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

from volume.errors import VolumeError
from volume.session_parts import ProgressCallback

Centre = Union[int, Callable[[], int], None]
ORDERS = ("outward", "all")


def resolve_embedding_store(spec: Any) -> Any:
    """`embedding_store=` of a Session: None (off), "auto" (the user cache), a folder, or a store object."""
    if spec is None or spec is False:
        return None
    from sam2core.predictor.embedding_store import EmbeddingStore, open_store

    if isinstance(spec, EmbeddingStore):
        return spec
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        return open_store()
    if isinstance(spec, (str, Path)):
        return open_store(Path(spec))
    raise VolumeError(f"embedding_store must be None, 'auto', a folder or an EmbeddingStore; got {spec!r}")


def next_slice(remaining: set, centre: int) -> int:
    """The remaining slice nearest `centre` (ties: the one after the centre first)."""
    return min(remaining, key=lambda s: (abs(s - centre), s < centre))


def _centre_of(centre: Centre, num_slices: int) -> int:
    value = centre() if callable(centre) else centre
    if value is None:
        return num_slices // 2
    return min(max(int(value), 0), num_slices - 1)


def precompute(session: Any, progress: Optional[ProgressCallback] = None,
               cancel: Optional[threading.Event] = None, order: str = "outward", centre: Centre = None,
               pause: Optional[threading.Event] = None) -> int:
    """Encode every slice of the session's windows in use (the default window before any prompt).

    `order`: "outward" from `centre` (a slice index, or a callable read before each slice;
    default the middle slice) or "all" (first to last). `pause`: while set, wait. Returns the
    number of slices the model encoded (slices found in RAM or in the store are not counted).
    """
    if order not in ORDERS:
        raise VolumeError(f"order must be one of {ORDERS}; got {order!r}")
    predictor = session.predictor
    if not hasattr(predictor, "encode_frame"):
        raise VolumeError(f"{type(predictor).__name__} cannot encode slices ahead (no encode_frame); "
                          "precompute works with image models such as LiteMedSAM")
    tracks = session._tracks
    chosen = list(tracks.tracks.values()) or [tracks.track(tracks.default_window)]
    n = session.num_slices
    total = n * len(chosen)
    done, encoded = 0, 0
    if progress is not None:
        progress(0, total)
    for track in chosen:
        remaining = set(range(n))
        while remaining:
            while pause is not None and pause.is_set() and not (cancel is not None and cancel.is_set()):
                time.sleep(0.05)
            if cancel is not None and cancel.is_set():
                return encoded
            s = next_slice(remaining, _centre_of(centre, n)) if order == "outward" else min(remaining)
            remaining.discard(s)
            if predictor.encode_frame(track.state, s):
                encoded += 1
            done += 1
            if progress is not None:
                progress(done, total)
    return encoded
