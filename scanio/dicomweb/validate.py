"""Checks on what a server sends, before it is written to the cache (and later read by `read_scan`).

An instance is kept only when it is the one asked for (study, series and SOP instance UIDs),
is an image (an image storage SOP class with Rows/Columns/pixels in sane bounds) and its pixel
data is complete: native pixel data must have the bytes the header promises, compressed pixel
data must decode with pydicom. So `read_scan` never falls back to a C++ decoder on a file
nobody has looked at.
"""

from __future__ import annotations

from typing import Optional

from scanio.dicomweb.errors import InvalidInstanceError, NotAVolumeSeriesError

# Series modalities that hold no image volume (checked before anything is fetched).
NON_VOLUME_MODALITIES = {
    "SEG": "a segmentation (DICOM SEG)",
    "SR": "a structured report",
    "RTSTRUCT": "an RT structure set",
    "RTPLAN": "an RT plan",
    "RTRECORD": "an RT treatment record",
    "PR": "a presentation state",
    "KO": "a key object selection",
    "DOC": "a document",
    "REG": "a registration",
    "FID": "fiducials",
    "PLAN": "a plan",
}
MAX_ROWS_COLS = 16384
MAX_FRAMES = 8192
_NATIVE_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


def describe_non_volume(modality: str) -> Optional[str]:
    """What a series of this modality is, when it is not an image volume; else None."""
    return NON_VOLUME_MODALITIES.get(str(modality or "").upper())


def is_image_sop_class(sop_class_uid: str) -> bool:
    """True for image storage SOP classes (CT/MR/PET/... Image Storage, enhanced or not)."""
    from pydicom.uid import UID

    name = UID(str(sop_class_uid)).name
    return "Image Storage" in name and "Segmentation" not in name


def validate_instance(ds, *, server: str, study_uid: str, series_uid: str,
                      sop_uid: Optional[str] = None) -> str:
    """Raise `InvalidInstanceError` / `NotAVolumeSeriesError` unless `ds` is the wanted image.

    Returns the instance's SOP Instance UID.
    """
    where = f"instance {sop_uid or '?'} of series {series_uid} from {server}"

    def bad(why: str) -> InvalidInstanceError:
        return InvalidInstanceError(
            f"{where}: {why}; the file was not kept. Fetch again; if this repeats, the archive "
            "holds a damaged instance: tell its administrator", server)

    got = {k: str(ds.get(k, "") or "") for k in
           ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")}
    if got["SeriesInstanceUID"] != series_uid or got["StudyInstanceUID"] != study_uid:
        raise bad(f"the server sent series {got['SeriesInstanceUID']!r} of study "
                  f"{got['StudyInstanceUID']!r} instead")
    if sop_uid is not None and got["SOPInstanceUID"] != sop_uid:
        raise bad(f"the server sent instance {got['SOPInstanceUID']!r} instead")
    from scanio.dicomweb.config import check_uid

    try:
        check_uid(got["SOPInstanceUID"], "SOP Instance UID", server)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if not is_image_sop_class(got["SOPClassUID"]):
        from pydicom.uid import UID

        raise NotAVolumeSeriesError(
            f"series {series_uid} on {server} holds {UID(got['SOPClassUID']).name or 'non-image'} "
            "instances, not images: choose an image series (CT, MR, ...)", server)
    if _int(ds, "SamplesPerPixel", 1) != 1:
        raise NotAVolumeSeriesError(
            f"series {series_uid} on {server} holds colour images (SamplesPerPixel "
            f"{ds.get('SamplesPerPixel')}), not a grey-value scan: choose a CT or MR series", server)
    _check_pixels(ds, bad)
    return got["SOPInstanceUID"]


def _int(ds, keyword: str, default: Optional[int] = None) -> Optional[int]:
    value = ds.get(keyword, default)
    try:
        return int(value) if value is not None and value != "" else default
    except (TypeError, ValueError):
        return None


def _check_pixels(ds, bad) -> None:
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    frames = _int(ds, "NumberOfFrames", 1)
    bits = _int(ds, "BitsAllocated")
    if rows is None or cols is None or not (1 <= rows <= MAX_ROWS_COLS and 1 <= cols <= MAX_ROWS_COLS):
        raise bad(f"image size {ds.get('Rows')}x{ds.get('Columns')} is missing or out of range")
    if frames is None or not 1 <= frames <= MAX_FRAMES:
        raise bad(f"number of frames {ds.get('NumberOfFrames')!r} is out of range")
    if bits not in (1, 8, 16, 32):
        raise bad(f"bits allocated {ds.get('BitsAllocated')!r} is not an image's")
    if "PixelData" not in ds:
        raise bad("it has no pixel data")
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if not syntax:
        raise bad("it has no transfer syntax")
    if syntax in _NATIVE_SYNTAXES:
        expected = (rows * cols * frames * bits + 7) // 8
        if len(ds.PixelData) < expected:
            raise bad(f"pixel data is truncated ({len(ds.PixelData)} of {expected} bytes)")
        return
    try:  # compressed: it must decode here, in pydicom, before anything else reads it
        ds.pixel_array  # noqa: B018
    except Exception as exc:
        raise bad(f"compressed pixel data ({syntax}) that pydicom cannot decode: "
                  f"{type(exc).__name__}: {exc}") from None
