"""`napari-sam2 cache info|clear`: the embedding store and the PACS (DICOMweb) download cache."""

from __future__ import annotations

import pytest

from napari_sam2.cli import main
from scanio.dicomweb.cache import LOCK_NAME, cache_info, lock_for


@pytest.fixture
def pacs(tmp_path, monkeypatch):
    """A download cache with two fetched series, a partial file, a lock, a SEG waiting to be sent,
    and a folder and file that are not the cache's."""
    root = tmp_path / "dicomweb"
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_CACHE", str(root))
    monkeypatch.setenv("NAPARI_SAM2_EMBEDDINGS_DIR", str(tmp_path / "embeddings"))
    for series, sizes in {"1.2.3": (100, 200), "1.2.4": (300,)}.items():
        folder = root / series
        folder.mkdir(parents=True)
        for i, size in enumerate(sizes):
            (folder / f"{series}.{i}.dcm").write_bytes(b"x" * size)
        (folder / LOCK_NAME).touch()
    (root / "1.2.3" / ".1.2.3.9.abcd1234.part").write_bytes(b"x" * 50)
    (root / "seg-outbox").mkdir()
    (root / "seg-outbox" / "1.2.3-seg.dcm").write_bytes(b"s" * 70)
    (root / "notes").mkdir()
    (root / "notes" / "keep.dcm").write_bytes(b"n" * 10)
    return root


def _run(capsys, *argv):
    code = main(["cache", *argv])
    return code, capsys.readouterr().out


def test_info_shows_the_pacs_downloads(pacs, capsys):
    code, out = _run(capsys, "info")
    assert code == 0
    assert "scans:  0" in out  # the embedding store's lines stay
    assert f"folder: {pacs}" in out
    assert "series: 2" in out and "files:  4" in out and "size:   0.0 MB" in out
    assert "SEGs not yet sent: 1" in out
    info = cache_info()
    assert (info.bytes, info.outbox_files, info.outbox_bytes) == (100 + 200 + 50 + 300, 1, 70)


def test_info_only_pacs_with_another_folder(pacs, tmp_path, capsys):
    code, out = _run(capsys, "info", "--only", "pacs", "--pacs-dir", str(tmp_path / "elsewhere"))
    assert code == 0
    assert "scans:" not in out
    assert "series: 0" in out and "files:  0" in out
    assert not (tmp_path / "elsewhere").exists()  # info creates nothing


def test_clear_deletes_fetched_series_and_keeps_the_outbox_and_foreign_files(pacs, capsys):
    code, out = _run(capsys, "clear")
    assert code == 0
    assert "2 series, 4 files" in out and "kept 1 SEG file(s)" in out
    assert not (pacs / "1.2.3").exists() and not (pacs / "1.2.4").exists()
    assert (pacs / "seg-outbox" / "1.2.3-seg.dcm").exists()
    assert (pacs / "notes" / "keep.dcm").exists()
    _, out = _run(capsys, "info", "--only", "pacs")
    assert "series: 0" in out


def test_clear_skips_a_series_being_fetched(pacs, capsys):
    with lock_for(pacs / "1.2.4"):
        code, out = _run(capsys, "clear", "--only", "pacs")
    assert code == 0
    assert "1 series, 3 files" in out and "kept 1 series being fetched now: 1.2.4" in out
    assert not (pacs / "1.2.3").exists()
    assert (pacs / "1.2.4" / "1.2.4.0.dcm").exists()


def test_clear_only_embeddings_leaves_the_pacs_downloads(pacs, capsys):
    code, out = _run(capsys, "clear", "--only", "embeddings")
    assert code == 0
    assert "series" not in out
    assert (pacs / "1.2.3" / "1.2.3.0.dcm").exists()


def test_a_file_that_is_not_the_caches_keeps_its_series_folder(pacs, capsys):
    (pacs / "1.2.3" / "readme.txt").write_text("mine")
    _run(capsys, "clear", "--only", "pacs")
    assert sorted(p.name for p in (pacs / "1.2.3").iterdir()) == ["readme.txt"]
