"""DICOM Segmentation (SEG) objects: write labels referencing the source series, read them back.

Writing uses highdicom: one BINARY segment per label value present, every frame kept (so the
SEG covers the whole scan and reads back to the same grid). The original label value is kept
in each segment's Tracking ID and label ("label 5"), so reading maps segments back to values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from scanio.errors import CorruptFileError, NotAScanError, UnsupportedOutputError
from scanio.scan import Scan

_LABEL_RE = re.compile(r"label\s+(\d+)", re.IGNORECASE)


def check_seg_possible(like: Scan, path: Path) -> None:
    """Raise `UnsupportedOutputError` unless `like` was read from DICOM slices one-to-one."""
    source = like.dicom_source
    if source is None:
        raise UnsupportedOutputError(
            f"{path}: a DICOM SEG needs a scan read from DICOM; this scan came from "
            f"{like.metadata.get('source', 'elsewhere')}: write .nii.gz, .nrrd or .mha", path)
    if source.regularized:
        raise UnsupportedOutputError(
            f"{path}: the scan was resampled on reading (tilt or irregular slices), so its "
            "slices no longer match the DICOM instances: write .nii.gz, .nrrd or .mha", path)


def _software_version() -> str:
    try:
        from importlib.metadata import version

        return version("napari-sam2")
    except Exception:
        return "0"


def _source_datasets(like: Scan) -> list:
    """Source headers in file order, with UIDs that anonymisation removed filled back in."""
    import pydicom
    from pydicom.uid import generate_uid

    datasets = []
    seen: dict[str, object] = {}
    for file in dict.fromkeys(like.dicom_source.files):
        ds = pydicom.dcmread(file, stop_before_pixels=True)
        meta = ds.file_meta
        if not ds.get("SOPInstanceUID"):
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        if not ds.get("SOPClassUID"):
            ds.SOPClassUID = meta.MediaStorageSOPClassUID
        # Missing study/series UIDs are made up deterministically from what the files share.
        common = str(ds.get("FrameOfReferenceUID", "")) + str(Path(file).parent)
        for keyword, salt in (("StudyInstanceUID", "study"), ("SeriesInstanceUID", "series")):
            if not ds.get(keyword):
                setattr(ds, keyword, generate_uid(entropy_srcs=[salt, common]))
        datasets.append(ds)
        seen[file] = ds
    return datasets


def write_seg(path: Path, labels: np.ndarray, like: Scan,
              segment_names: Optional[Mapping[int, str]] = None) -> None:
    """Write `labels` `(z, y, x)` (uint8/uint16, `like`'s shape) as a DICOM SEG at `path`."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    check_seg_possible(like, path)
    source = like.dicom_source
    datasets = _source_datasets(like)
    values = [int(v) for v in np.unique(labels) if v != 0] or [1]
    numbers = np.zeros(int(max(values)) + 1, dtype=np.uint16)
    numbers[values] = np.arange(1, len(values) + 1)
    segment_map = numbers[labels]  # label value -> segment number, (z, y, x)

    if len(datasets) == 1:  # one multi-frame source: frames in stored order
        pixel = np.zeros_like(segment_map)
        pixel[list(source.frames)] = segment_map
    else:  # single-frame sources, given in z order
        pixel = segment_map
    pixel = pixel.astype(np.uint8 if len(values) < 256 else np.uint16)

    algorithm = hd.AlgorithmIdentificationSequence(
        name="napari-sam2", version=_software_version(),
        family=codes.cid7162.ArtificialIntelligence)
    descriptions = []
    for number, value in enumerate(values, start=1):
        name = (segment_names or {}).get(value)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=f"{name} (label {value})" if name else f"label {value}",
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=algorithm,
            tracking_id=f"label {value}",
            tracking_uid=generate_uid(),
        ))
    seg = hd.seg.Segmentation(
        source_images=datasets if len(datasets) > 1 else datasets[:1],
        pixel_array=pixel,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=900,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="napari-sam2",
        manufacturer_model_name="napari-sam2",
        software_versions=_software_version(),
        device_serial_number="0",
        series_description="napari-sam2 segmentation",
        omit_empty_frames=False,
    )
    seg.save_as(str(path))


def read_seg(path: Path) -> Scan:
    """A DICOM SEG as a label Scan: segment k gets its original label value (see module doc)."""
    import highdicom as hd

    try:
        seg = hd.seg.segread(str(path))
    except Exception as exc:
        raise CorruptFileError(f"{path}: DICOM SEG that cannot be read: {exc}", path) from exc
    try:
        volume = seg.get_volume(combine_segments=True, allow_missing_positions=True)
    except Exception as exc:
        raise NotAScanError(
            f"{path}: DICOM SEG without a regular 3D frame geometry: {exc}", path) from exc
    numbers = seg.get_segment_numbers()
    lookup = np.zeros(max(numbers) + 1 if numbers else 1, dtype=np.int64)
    segments = {}
    for number in numbers:
        desc = seg.get_segment_description(number)
        text = " ".join(str(t) for t in (getattr(desc, "tracking_id", None) or "",
                                         desc.segment_label))
        match = _LABEL_RE.search(text)
        value = int(match.group(1)) if match else number
        lookup[number] = value
        segments[value] = str(desc.segment_label)
    array = lookup[np.asarray(volume.array).astype(np.int64)]
    array = array.astype(np.uint8 if array.max(initial=0) <= 255 else np.uint16)

    affine = np.asarray(volume.affine, dtype=np.float64)  # (slice, row, col, 1) -> LPS
    steps = [np.linalg.norm(affine[:3, c]) for c in range(3)]
    row_dir, col_dir = affine[:3, 2] / steps[2], affine[:3, 1] / steps[1]
    normal = np.cross(row_dir, col_dir)
    origin = affine[:3, 3]
    if affine[:3, 0] @ normal < 0:  # put slices in ascending order along the normal, like ITK
        array = array[::-1].copy()
        origin = origin + affine[:3, 0] * (array.shape[0] - 1)
    meta = {
        "source": str(path), "format": "dicom-seg",
        "series_uid": str(seg.SeriesInstanceUID),
        "series_description": str(seg.get("SeriesDescription", "") or ""),
        "segments": segments, "warnings": [],
    }
    return Scan(array=np.ascontiguousarray(array), spacing_mm=(steps[0], steps[1], steps[2]),
                origin_mm=tuple(origin), direction=np.stack([row_dir, col_dir, normal], axis=1),
                modality="SEG", metadata=meta)
