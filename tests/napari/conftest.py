"""Fixtures for the napari plugin tests (GUI: run under `xvfb-run -a`)."""

from __future__ import annotations

import pytest

from tests.napari.helpers import FakeModel, FakeSession


@pytest.fixture(autouse=True)
def private_embedding_store(tmp_path_factory, monkeypatch):
    """Widget tests keep image embeddings in a temporary folder, never in the user's cache."""
    from sam2core.predictor.embedding_store import ROOT_ENV

    folder = tmp_path_factory.mktemp("embeddings")
    monkeypatch.setenv(ROOT_ENV, str(folder))
    return folder


@pytest.fixture
def notifications():
    """The napari notifications dispatched during the test."""
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)

    class _View:
        def messages(self) -> list[str]:
            return [str(n.message) for n in notification_manager.records[start:]]

        def errors(self) -> list[str]:
            return [str(n.message) for n in notification_manager.records[start:]
                    if str(n.severity).lower() == "error"]

    return _View()


@pytest.fixture
def fake_session(monkeypatch):
    """Replace `volume.Session` and model loading with fast fakes; returns the FakeSession class."""
    import volume

    FakeSession.instances = []
    FakeSession.slice_seconds = 0.02
    FakeSession.fail_with = None
    FakeSession.hold = None
    monkeypatch.setattr(volume, "Session", FakeSession, raising=False)
    monkeypatch.setattr("napari_sam2.widget.model_panel.load_model", lambda choice: FakeModel())
    yield FakeSession
    if FakeSession.hold is not None:  # a test that failed while holding a run: let its worker go
        FakeSession.hold.set()
