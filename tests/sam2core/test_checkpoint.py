"""sam2core.checkpoint: weights-only reading, unwrapping, strict loading with clear mismatches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sam2core.checkpoint import load_checkpoint_into, load_state_dict, suggest_model_name
from sam2core.errors import CheckpointError


class WritesMarkerWhenUnpickled:
    """An object whose unpickling creates a file: the proof that code from a checkpoint ran."""

    def __init__(self, marker_path: str) -> None:
        self.marker_path = marker_path

    def __reduce__(self):
        return (open, (self.marker_path, "w"))


class Small(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.proj = nn.Linear(3, width)
        self.norm = nn.LayerNorm(width)


class Other(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 2)


def _save(obj, path):
    torch.save(obj, path)
    return path


def test_pickled_object_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "code_ran"
    path = _save({"model": Small().state_dict(), "extra": WritesMarkerWhenUnpickled(str(marker))},
                 tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="evil.pt.*pickled Python objects"):
        load_state_dict(path)
    assert not marker.exists()


def test_the_marker_object_does_run_code_under_a_full_unpickle(tmp_path):
    """Control for the test above: the same file executes code when loaded unsafely."""
    marker = tmp_path / "code_ran"
    path = _save({"extra": WritesMarkerWhenUnpickled(str(marker))}, tmp_path / "evil.pt")
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_loading_into_a_model_also_refuses_pickled_objects(tmp_path):
    marker = tmp_path / "code_ran"
    path = _save({"model": Small().state_dict(), "x": WritesMarkerWhenUnpickled(str(marker))},
                 tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint_into(Small(), path, model_name="small")
    assert not marker.exists()


def test_truncated_checkpoint_names_the_file(tmp_path):
    full = _save({"model": Small().state_dict()}, tmp_path / "full.pt").read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt.*(truncated|corrupt)"):
        load_state_dict(path)


def test_garbage_file_names_the_file(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_state_dict(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="absent.pt does not exist"):
        load_state_dict(tmp_path / "absent.pt")


def test_model_wrapper_is_unwrapped(tmp_path):
    state = Small().state_dict()
    loaded = load_state_dict(_save({"model": state}, tmp_path / "wrapped.pt"))
    assert loaded.keys() == state.keys()
    assert torch.equal(loaded["proj.weight"], state["proj.weight"])


def test_bare_state_dict_is_accepted(tmp_path):
    state = Small().state_dict()
    assert load_state_dict(_save(state, tmp_path / "bare.pth")).keys() == state.keys()


def test_non_tensor_entries_are_refused(tmp_path):
    path = _save({"model": {"proj.weight": torch.zeros(2), "epoch": 3}}, tmp_path / "train.pt")
    with pytest.raises(CheckpointError, match="'epoch' is a int"):
        load_state_dict(path)


def test_safetensors_file_is_read(tmp_path):
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in Small().state_dict().items()}
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    assert torch.equal(load_state_dict(path)["norm.weight"], state["norm.weight"])


def test_matching_checkpoint_is_loaded_strictly(tmp_path):
    source = Small()
    path = _save({"model": source.state_dict()}, tmp_path / "ok.pt")
    target = Small()
    load_checkpoint_into(target, path, model_name="small")
    assert torch.equal(target.proj.weight, source.proj.weight)


def test_mismatch_lists_missing_and_unexpected_keys_with_counts(tmp_path):
    path = _save({"model": Other().state_dict()}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_into(Small(), path, model_name="small", candidates={})
    message = str(info.value)
    assert "other.pt" in message and "'small'" in message
    assert "4 missing keys (proj.weight, proj.bias, norm.weight, norm.bias)" in message
    assert "2 unexpected keys (head.weight, head.bias)" in message


def test_shape_mismatch_is_reported_and_nothing_is_loaded(tmp_path):
    path = _save(Small(width=8).state_dict(), tmp_path / "wide.pt")
    target = Small(width=4)
    before = target.proj.weight.clone()
    with pytest.raises(CheckpointError, match=r"proj.weight: file \[8, 3\] vs model \[4, 3\]"):
        load_checkpoint_into(target, path, model_name="small", candidates={})
    assert torch.equal(target.proj.weight, before)


def test_mismatch_suggests_the_model_the_file_fits(tmp_path):
    path = _save(Small(width=8).state_dict(), tmp_path / "wide.pt")
    candidates = {"small": lambda: Small(4), "other": Other, "wide": lambda: Small(8)}
    with pytest.raises(CheckpointError, match="fit model 'wide'"):
        load_checkpoint_into(Small(4), path, model_name="small", candidates=candidates)


def test_suggestion_is_none_when_nothing_fits():
    found = {"unknown.weight": (1,)}
    assert suggest_model_name(found, candidates={"small": Small, "other": Other}) is None


def test_unsafe_error_is_distinct_from_a_legacy_truncation(tmp_path):
    """A truncated legacy (non-zip) file is reported as corrupt, not as unsafe."""
    path = tmp_path / "legacy.pt"
    torch.save(Small().state_dict(), path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    path.write_bytes(data[:40])
    with pytest.raises(CheckpointError) as info:
        load_state_dict(path)
    assert "pickled Python objects" not in str(info.value)
    assert "legacy.pt" in str(info.value)


def test_lite_medsam_package_checkpoint_loads_strictly_through_the_store():
    from sam2core.build import build_model
    from sam2core.store import resolve_checkpoint

    model = build_model("lite_medsam")
    load_checkpoint_into(model, resolve_checkpoint("lite_medsam"), model_name="lite_medsam")
    reference = load_state_dict(resolve_checkpoint("lite_medsam"))
    name = next(iter(reference))
    assert torch.equal(model.state_dict()[name], reference[name])


@pytest.mark.slow
def test_wrong_family_checkpoint_names_the_model_it_belongs_to():
    pytest.importorskip("sam2core.sam2_build")
    from sam2core.build import build_model
    from sam2core.store import resolve_checkpoint

    with torch.device("meta"):  # shapes are all the check needs
        model = build_model("sam2.1_hiera_tiny")
    with pytest.raises(CheckpointError, match="fit model 'lite_medsam'"):
        load_checkpoint_into(model, resolve_checkpoint("lite_medsam"), model_name="sam2.1_hiera_tiny")
