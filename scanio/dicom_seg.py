"""DICOM Segmentation (SEG) objects: write labels referencing the source series, read them back.

Writing uses highdicom: one BINARY segment per label value present, empty frames omitted (the
standard, compact form). The original label value is kept in each segment's Tracking ID and
label ("label 5"), so reading maps segments back to values; the scan's whole grid (shape,
spacing, origin, direction) is kept in a private element, so reading gives back the array on
the scan's grid even where the first or last slices hold no label.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from scanio.errors import CorruptFileError, NotAScanError, UnsupportedOutputError
from scanio.scan import Scan

_LABEL_RE = re.compile(r"label\s+(\d+)", re.IGNORECASE)
_PRIVATE_GROUP = 0x0071
_PRIVATE_CREATOR = "napari-sam2 scanio grid"


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
        omit_empty_frames=True,
    )
    grid = {"shape_zyx": list(like.shape), "spacing_mm_zyx": list(like.spacing_mm),
            "origin_mm": list(like.origin_mm), "direction": like.direction.ravel().tolist()}
    block = seg.private_block(_PRIVATE_GROUP, _PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "UT", json.dumps(grid))
    seg.save_as(str(path))


def _stored_grid(seg) -> Optional[Scan]:
    """The scan grid written by `write_seg` (an empty Scan), or None."""
    try:
        block = seg.private_block(_PRIVATE_GROUP, _PRIVATE_CREATOR)
        grid = json.loads(block[0x01].value)
        return Scan(array=np.zeros(grid["shape_zyx"], dtype=np.uint8),
                    spacing_mm=grid["spacing_mm_zyx"], origin_mm=grid["origin_mm"],
                    direction=np.array(grid["direction"]).reshape(3, 3))
    except Exception:
        return None


def _onto_grid(sub: Scan, grid: Scan) -> Optional[np.ndarray]:
    """`sub`'s array pasted into an array of `grid`'s shape when `sub` is an aligned sub-grid."""
    if not (np.allclose(sub.spacing_mm, grid.spacing_mm, atol=1e-4)
            and np.allclose(sub.direction, grid.direction, atol=1e-5)):
        return None
    start = grid.world_to_voxel(np.array(sub.origin_mm))[0]
    if np.max(np.abs(start - np.round(start))) > 1e-3:
        return None
    z0, y0, x0 = (int(v) for v in np.round(start))
    sz, sy, sx = sub.shape
    if min(z0, y0, x0) < 0 or z0 + sz > grid.shape[0] or y0 + sy > grid.shape[1] \
            or x0 + sx > grid.shape[2]:
        return None
    out = np.zeros(grid.shape, dtype=sub.array.dtype)
    out[z0:z0 + sz, y0:y0 + sy, x0:x0 + sx] = sub.array
    return out


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
    scan = Scan(array=np.ascontiguousarray(array), spacing_mm=(steps[0], steps[1], steps[2]),
                origin_mm=tuple(origin), direction=np.stack([row_dir, col_dir, normal], axis=1),
                modality="SEG", metadata=meta)
    grid = _stored_grid(seg)
    if grid is not None:
        full = _onto_grid(scan, grid)
        if full is not None:
            scan.array, scan.spacing_mm = full, grid.spacing_mm
            scan.origin_mm, scan.direction = grid.origin_mm, grid.direction
        else:
            meta["warnings"].append(f"{path}: frames do not fit the stored scan grid; kept "
                                    "the frames' own extent")
    return scan
