"""`napari-sam2 cache info|clear`: the embedding store and the PACS (DICOMweb) download cache."""

from __future__ import annotations

import pytest

from napari_sam2.cli import main
from scanio.dicomweb.cache import LOCK_NAME, MARKER_NAME, cache_info, lock_for


@pytest.fixture
def pacs(tmp_path, monkeypatch):
    """A download cache with two fetched series, a partial file, a lock, a SEG waiting to be sent,
    and a folder and file that are not the cache's."""
    root = tmp_path / "dicomweb"
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_CACHE", str(root))
    monkeypatch.setenv("NAPARI_SAM2_EMBEDDINGS_DIR", str(tmp_path / "embeddings"))
    monkeypatch.setenv("NAPARI_SAM2_HOME", str(tmp_path / "home"))  # engine exports: never the user's
    for series, sizes in {"1.2.3": (100, 200), "1.2.4": (300,)}.items():
        folder = root / series
        folder.mkdir(parents=True)
        for i, size in enumerate(sizes):
            (folder / f"{series}.{i}.dcm").write_bytes(b"x" * size)
        (folder / LOCK_NAME).touch()
    (root / "1.2.3" / ".1.2.3.9.abcd1234.part").write_bytes(b"x" * 50)
    (root / MARKER_NAME).touch()  # as the first fetch into the folder leaves it
    (root / "seg-outbox").mkdir()
    (root / "seg-outbox" / "1.2.3-seg.dcm").write_bytes(b"s" * 70)
    (root / "notes").mkdir()
    (root / "notes" / "keep.dcm").write_bytes(b"n" * 10)
    return root


def _left(folder):
    return sorted(p.name for p in folder.iterdir())


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
    assert _left(pacs / "1.2.3") == [LOCK_NAME] and _left(pacs / "1.2.4") == [LOCK_NAME]
    assert (pacs / "seg-outbox" / "1.2.3-seg.dcm").exists()
    assert (pacs / "notes" / "keep.dcm").exists()
    _, out = _run(capsys, "info", "--only", "pacs")
    assert "series: 0" in out


def test_clear_skips_a_series_being_fetched(pacs, capsys):
    with lock_for(pacs / "1.2.4"):
        code, out = _run(capsys, "clear", "--only", "pacs")
    assert code == 0
    assert "1 series, 3 files" in out and "kept 1 series being fetched now: 1.2.4" in out
    assert _left(pacs / "1.2.3") == [LOCK_NAME]
    assert (pacs / "1.2.4" / "1.2.4.0.dcm").exists()


def test_clear_only_embeddings_leaves_the_pacs_downloads(pacs, capsys):
    code, out = _run(capsys, "clear", "--only", "embeddings")
    assert code == 0
    assert "series" not in out
    assert (pacs / "1.2.3" / "1.2.3.0.dcm").exists()


def test_a_file_that_is_not_the_caches_keeps_its_series_folder(pacs, capsys):
    (pacs / "1.2.3" / "readme.txt").write_text("mine")
    _run(capsys, "clear", "--only", "pacs")
    assert _left(pacs / "1.2.3") == [LOCK_NAME, "readme.txt"]


def test_a_folder_no_fetch_has_marked_is_not_cleared(pacs, capsys):
    """Pointing the cache at a user's own DICOM folders (<SeriesUID>/<SOPUID>.dcm) must delete nothing."""
    (pacs / MARKER_NAME).unlink()
    code, out = _run(capsys, "clear", "--only", "pacs")
    assert code == 2 and "not made by napari-sam2" in out and MARKER_NAME in out
    assert (pacs / "1.2.3" / "1.2.3.0.dcm").exists() and (pacs / "1.2.4" / "1.2.4.0.dcm").exists()


def test_a_fetch_marks_its_cache_folder(tmp_path):
    with lock_for(tmp_path / "cache" / "1.2.9"):
        pass
    assert (tmp_path / "cache" / MARKER_NAME).is_file()


def test_engine_exports_are_shown_and_cleared_and_nothing_else(pacs, tmp_path, capsys):
    from sam2core.lite_medsam.engines.export import default_cache_root
    from sam2core.lite_medsam.engines.select import AUTO_CHOICE_FILE as AUTO_CHOICE_NAME

    root = default_cache_root()
    assert str(root).startswith(str(tmp_path)), "the test must not see the user's engine cache"
    export = root / "lite_medsam" / "0123456789abcdef-x2-torch2.14.1"
    (export / "openvino-2026" / "f32").mkdir(parents=True)
    (export / "encoder.fp32.onnx").write_bytes(b"e" * 400)
    (export / "openvino-2026" / "f32" / "blob").write_bytes(b"b" * 100)
    stranger = root / "lite_medsam" / "my-notes"
    stranger.mkdir()
    (root / AUTO_CHOICE_NAME).write_text("{}")

    code, out = _run(capsys, "info", "--only", "engines")
    assert code == 0 and "exports: 1" in out and "0.0 MB" in out
    code, out = _run(capsys, "clear", "--only", "engines")
    assert code == 0 and "1 export(s)" in out
    assert not export.exists() and stranger.is_dir() and (root / AUTO_CHOICE_NAME).is_file()
    assert pacs.joinpath("1.2.3").is_dir(), "--only engines leaves the PACS downloads"
