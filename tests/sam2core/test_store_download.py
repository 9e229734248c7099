"""Model store downloads against a real HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest

from sam2core.errors import ModelNotAvailableError
from sam2core.store import (
    MODEL_REGISTRY,
    ChecksumError,
    DownloadCancelled,
    DownloadError,
    cache_dir,
    checkpoint_path,
    download_model,
    model_status,
    verify_cached,
)
from sam2core.store.cache import part_path, read_manifest
from tests.sam2core.test_store_server import CheckpointServer, make_checkpoint_bytes, sha256_hex

MODEL = "sam2.1_hiera_tiny"


@pytest.fixture()
def payload() -> bytes:
    return make_checkpoint_bytes(seed=1)


@pytest.fixture()
def store(tmp_path, monkeypatch, payload):
    """An isolated cache, the registry entry pinned to the generated payload, and a local server."""
    monkeypatch.setenv("NAPARI_SAM2_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NAPARI_SAM2_OFFLINE", raising=False)
    monkeypatch.setattr("sam2core.store.download._RETRY_PAUSE_S", 0.01)
    entry = MODEL_REGISTRY[MODEL]
    monkeypatch.setitem(MODEL_REGISTRY, MODEL, dataclasses.replace(
        entry, size_bytes=len(payload), approx_size_bytes=len(payload), sha256=sha256_hex(payload)))
    with CheckpointServer({entry.file_name: payload}) as server:
        monkeypatch.setenv("NAPARI_SAM2_BASE_URL", server.url)
        yield server


def test_download_reports_progress_and_caches_the_verified_file(store, payload):
    calls = []
    path = download_model(MODEL, progress=lambda done, total: calls.append((done, total)))
    assert path == checkpoint_path(MODEL_REGISTRY[MODEL].file_name)
    assert path.read_bytes() == payload
    assert calls[-1] == (len(payload), len(payload))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert read_manifest()[path.name]["sha256"] == sha256_hex(payload)
    assert not part_path(path).exists()


def test_interrupted_transfer_is_resumed_with_a_range_request(store, payload):
    store.behaviour.cut_after, store.behaviour.cuts = 50_000, 1
    path = download_model(MODEL)
    assert path.read_bytes() == payload
    ranges = [header for _, header in store.behaviour.requests]
    assert ranges == [None, "bytes=50000-"]


def test_part_file_of_a_failed_call_is_resumed_by_the_next_call(store, payload):
    store.behaviour.cut_after, store.behaviour.cuts = 70_000, 1
    with pytest.raises(DownloadError, match="resumes"):
        download_model(MODEL, retries=0)
    final = checkpoint_path(MODEL_REGISTRY[MODEL].file_name)
    assert not final.exists()
    assert part_path(final).stat().st_size == 70_000
    assert model_status(MODEL).state == "partial download"

    download_model(MODEL)
    assert final.read_bytes() == payload
    assert store.behaviour.requests[-1][1] == "bytes=70000-"


def test_corrupted_download_is_rejected_and_leaves_nothing(store):
    store.behaviour.tamper = True
    with pytest.raises(ChecksumError, match="corrupt"):
        download_model(MODEL)
    final = checkpoint_path(MODEL_REGISTRY[MODEL].file_name)
    assert not final.exists() and not part_path(final).exists()
    assert not model_status(MODEL).available


def test_server_ignoring_range_restarts_from_zero(store, payload):
    store.behaviour.cut_after, store.behaviour.cuts = 30_000, 1
    store.behaviour.ignore_range = True
    assert download_model(MODEL).read_bytes() == payload


def test_cancel_raises_and_keeps_the_part_for_resume(store, payload):
    cancel = threading.Event()

    def progress(done, total):
        cancel.set()

    with pytest.raises(DownloadCancelled):
        download_model(MODEL, progress=progress, cancel=cancel)
    final = checkpoint_path(MODEL_REGISTRY[MODEL].file_name)
    assert not final.exists() and part_path(final).exists()


def test_offline_mode_says_which_file_to_place_where(store, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError) as info:
        download_model(MODEL)
    message = str(info.value)
    assert str(checkpoint_path("sam2.1_hiera_tiny.pt")) in message
    assert f"{store.url}/sam2.1_hiera_tiny.pt" in message
    assert "NAPARI_SAM2_OFFLINE" in message
    assert store.behaviour.requests == []


def test_unreachable_server_gives_the_placement_message(store, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_BASE_URL", "http://127.0.0.1:9")  # discard port: refused
    with pytest.raises(ModelNotAvailableError) as info:
        download_model(MODEL, retries=0, timeout_s=5)
    assert str(checkpoint_path("sam2.1_hiera_tiny.pt")) in str(info.value)


def test_cache_follows_napari_sam2_home(store, tmp_path):
    path = download_model(MODEL)
    assert cache_dir() == tmp_path / "home"
    assert path.is_relative_to(tmp_path / "home")


def test_hash_is_recorded_on_first_download_and_enforced_later(store, monkeypatch, payload):
    monkeypatch.setitem(MODEL_REGISTRY, MODEL, dataclasses.replace(MODEL_REGISTRY[MODEL], sha256=None))
    path = download_model(MODEL)
    record = read_manifest()[path.name]
    assert record["sha256"] == sha256_hex(payload)
    assert record["origin"] == "recorded on first download"

    path.write_bytes(payload[:-1] + bytes([payload[-1] ^ 1]))  # same size, other content
    (result,) = verify_cached(MODEL)
    assert result.status == "corrupt"
    assert sha256_hex(payload) in result.message


def test_verify_reports_ok_missing_and_corrupt(store, payload):
    assert verify_cached(MODEL)[0].status == "missing"
    path = download_model(MODEL)
    assert verify_cached(MODEL)[0].status == "ok"
    path.write_bytes(b"x" * len(payload))
    assert verify_cached(MODEL)[0].status == "corrupt"


def test_corrupt_cached_file_is_replaced_by_download_model(store, payload):
    path = download_model(MODEL)
    path.write_bytes(b"y" * len(payload))
    assert download_model(MODEL).read_bytes() == payload
    assert json.loads((cache_dir() / "checkpoints" / "manifest.json").read_text())[path.name]["sha256"] \
        == sha256_hex(payload)


def test_a_download_running_elsewhere_is_not_interleaved(store):
    import filelock

    final = checkpoint_path(MODEL_REGISTRY[MODEL].file_name)
    final.parent.mkdir(parents=True)
    holder = filelock.FileLock(str(final.with_name(final.name + ".lock")))
    with holder:
        with pytest.raises(DownloadError, match="another process"):
            download_model(MODEL)
    assert store.behaviour.requests == []
    assert download_model(MODEL).exists()


def test_not_enough_disk_space_fails_before_transferring(store, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10, 10, 0))
    with pytest.raises(DownloadError, match="not enough free space"):
        download_model(MODEL)
    assert store.behaviour.requests == []


def test_a_link_that_keeps_dropping_but_progresses_is_resumed_to_the_end(store, payload):
    store.behaviour.cut_after, store.behaviour.cuts = 40_000, 4  # more cuts than retries
    path = download_model(MODEL, retries=1)
    assert path.read_bytes() == payload
    assert len(store.behaviour.requests) == 5


def test_redirected_download_is_followed_and_resumed(store, payload, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_BASE_URL", f"{store.url}/redirect")
    store.behaviour.cut_after, store.behaviour.cuts = 60_000, 1
    assert download_model(MODEL).read_bytes() == payload
    assert store.behaviour.requests[-2:] == [
        ("/redirect/sam2.1_hiera_tiny.pt", "bytes=60000-"),
        ("/sam2.1_hiera_tiny.pt", "bytes=60000-"),
    ]
