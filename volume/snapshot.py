"""Undo for a `volume.Session`: a snapshot of its prompts, results and tracking state, and its restore.

A snapshot is cheap: per-slice results (`SliceResult`, cropped float16 logits) and the
predictor's per-frame outputs are immutable once made, so they are shared, not copied; only
the dictionaries that hold them are. The raw labels are rebuilt from the results on restore.

The streaming predictor's state is snapshotted when it is a plain dict of per-object tables
(`CarryingPredictor`: LiteMedSAM): restore is then exact, and a later propagation carries on
as if the undone actions never happened. For other predictors (SAM 2's memory bank) restore
re-sends the snapshot's prompts (the prompted slices' encodings are cached): results are
restored exactly, but a correction propagated afterwards remembers the prompts only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

_DICT_STATE_TABLES = ("inputs", "outputs")


@dataclass(frozen=True)
class SessionSnapshot:
    """What `Session.restore` needs to put a session back as it was (see the module notes)."""

    prompts: dict  # obj -> slice -> Prompt
    pending: dict  # obj -> seed -> set of directions to do
    results: dict  # obj -> slice -> SliceResult | None
    scores: dict  # obj -> (num_slices,) float32
    extents: dict  # obj -> (first, last)
    object_tracks: dict  # obj -> track key (window)
    clean: Optional[np.ndarray]  # the cleaned labels if they were up to date (never modified in place)
    predictor_states: dict  # track key -> copied state tables (dict states only)
    extent_given: dict = field(default_factory=dict)  # obj -> (first given, last given)


def _copy_state(state: Any) -> Optional[dict]:
    if not isinstance(state, dict) or not all(k in state for k in ("obj_ids", *_DICT_STATE_TABLES)):
        return None
    copied = {"obj_ids": list(state["obj_ids"]), "last_scores": dict(state.get("last_scores", {}))}
    for table in _DICT_STATE_TABLES:
        copied[table] = {obj: dict(per_frame) for obj, per_frame in state[table].items()}
    return copied


def _put_state(state: dict, copied: dict) -> None:
    state["obj_ids"] = list(copied["obj_ids"])
    state["last_scores"] = dict(copied["last_scores"])
    for table in _DICT_STATE_TABLES:
        state[table] = {obj: dict(per_frame) for obj, per_frame in copied[table].items()}


def take_snapshot(session: Any) -> SessionSnapshot:
    """A snapshot of `session` (prompts, results, extents, windows, predictor state)."""
    tracks = session._tracks
    return SessionSnapshot(
        prompts={obj: dict(per_slice) for obj, per_slice in session._prompts.items()},
        pending={obj: {seed: set(todo) for seed, todo in seeds.items()} for obj, seeds in session._pending.items()},
        results={obj: dict(per_slice) for obj, per_slice in session._results.items()},
        scores={obj: values.copy() for obj, values in session._scores.items()},
        extents=dict(session._extents),
        extent_given=dict(session._extent_given),
        object_tracks={obj: track.key for obj, track in tracks.of_object.items()},
        clean=session._clean,
        predictor_states={key: _copy_state(track.state) for key, track in tracks.tracks.items()},
    )


def restore_snapshot(session: Any, snapshot: SessionSnapshot) -> None:
    """Put `session` back as it was when `snapshot` was taken; the raw labels are recomposed."""
    tracks = session._tracks
    session._prompts = {obj: dict(per_slice) for obj, per_slice in snapshot.prompts.items()}
    session._pending = {obj: {seed: set(todo) for seed, todo in seeds.items()}
                        for obj, seeds in snapshot.pending.items()}
    session._results = {obj: dict(per_slice) for obj, per_slice in snapshot.results.items()}
    session._scores = {obj: values.copy() for obj, values in snapshot.scores.items()}
    session._extents = dict(snapshot.extents)
    session._extent_given = dict(snapshot.extent_given)
    tracks.of_object.clear()
    for track in tracks.tracks.values():
        track.objects.clear()
    for obj, key in snapshot.object_tracks.items():
        track = tracks.tracks[key]
        track.objects.add(obj)
        tracks.of_object[obj] = track
    for key, track in tracks.tracks.items():
        copied = snapshot.predictor_states.get(key)
        if copied is not None:
            _put_state(track.state, copied)
        else:  # another kind of state, or a track made after the snapshot
            _replay_prompts(session, track)
    session._raw[...] = 0
    touched = sorted({s for per_slice in session._results.values() for s, r in per_slice.items() if r is not None})
    for s in touched:
        session._compose(s)
    session._clean = snapshot.clean


def _replay_prompts(session: Any, track: Any) -> None:
    """Rebuild a non-dict predictor state from the session's prompts (results are kept as restored)."""
    predictor = session.predictor
    predictor.reset_state(track.state)
    for obj in sorted(track.objects):
        for s, prompt in sorted(session._prompts.get(obj, {}).items()):
            if prompt.mask is not None:
                predictor.add_new_mask(track.state, s, obj, prompt.mask)
                continue
            points = np.asarray(prompt.points, dtype=np.float32).reshape(-1, 2) if prompt.points else None
            labels = np.asarray(prompt.labels, dtype=np.int32) if prompt.points else None
            predictor.add_new_points_or_box(track.state, s, obj, points=points, labels=labels, box=prompt.box,
                                            clear_old_points=True)
