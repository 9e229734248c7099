"""`napari-sam2 models list|download|verify` (downloads from a local HTTP server only)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from napari_sam2.cli import main
from sam2core.store import MODEL_REGISTRY, checkpoint_path
from tests.conftest import REPO_ROOT
from tests.sam2core.test_store_server import CheckpointServer, make_checkpoint_bytes, sha256_hex

MODEL = "sam2_hiera_tiny"


@pytest.fixture()
def served(tmp_path, monkeypatch):
    """Isolated cache + the registry entry pinned to a generated file served on 127.0.0.1."""
    payload = make_checkpoint_bytes(seed=4)
    monkeypatch.setenv("NAPARI_SAM2_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NAPARI_SAM2_OFFLINE", raising=False)
    monkeypatch.setitem(MODEL_REGISTRY, MODEL, dataclasses.replace(
        MODEL_REGISTRY[MODEL], size_bytes=len(payload), sha256=sha256_hex(payload)))
    with CheckpointServer({"sam2_hiera_tiny.pt": payload}) as server:
        monkeypatch.setenv("NAPARI_SAM2_BASE_URL", server.url)
        yield payload


def test_models_list_in_a_fresh_process_shows_lite_medsam_available(tmp_path):
    env = {**os.environ, "NAPARI_SAM2_HOME": str(tmp_path / "empty-home"), "NAPARI_SAM2_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "napari_sam2", "models", "list"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "available (package)" in lines["lite_medsam"]
    assert "lite_medsam.pth" in lines["lite_medsam"]
    assert "not downloaded" in lines["sam2.1_hiera_large"]
    assert str(tmp_path / "empty-home" / "checkpoints" / "sam2.1_hiera_large.pt") in lines["sam2.1_hiera_large"]


def test_models_download_fetches_into_the_cache_with_a_progress_bar(served, capsys):
    assert main(["models", "download", MODEL]) == 0
    out, err = capsys.readouterr()
    path = checkpoint_path("sam2_hiera_tiny.pt")
    assert path.read_bytes() == served
    assert str(path) in out
    assert MODEL in err  # the tqdm bar's description


def test_models_list_shows_a_downloaded_model_as_cached(served, capsys):
    main(["models", "download", MODEL])
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith(MODEL + " "))
    assert "cached" in line


def test_models_download_offline_fails_with_the_placement_message(served, monkeypatch, capsys):
    monkeypatch.setenv("NAPARI_SAM2_OFFLINE", "1")
    assert main(["models", "download", MODEL]) == 1
    err = capsys.readouterr().err
    assert str(checkpoint_path("sam2_hiera_tiny.pt")) in err


def test_models_download_unknown_name_is_a_usage_error(served, capsys):
    assert main(["models", "download", "sam9_huge"]) == 2
    assert "known" in capsys.readouterr().err


def test_models_verify_flags_a_corrupted_file(served, capsys):
    main(["models", "download", MODEL])
    assert main(["models", "verify", MODEL]) == 0
    checkpoint_path("sam2_hiera_tiny.pt").write_bytes(bytes(len(served)))
    capsys.readouterr()
    assert main(["models", "verify"]) == 1
    out = capsys.readouterr().out
    assert "corrupt" in next(l for l in out.splitlines() if l.startswith(MODEL + " "))
    assert "ok" in next(l for l in out.splitlines() if l.startswith("lite_medsam"))
