"""`resample_like`: put an image on another scan's voxel grid through world coordinates."""

from __future__ import annotations

from pathlib import Path
from typing import Union

from scanio.scan import Scan


def _reference_grid(like: Scan):
    """An empty SimpleITK image with `like`'s grid (no copy of its voxels)."""
    import SimpleITK as sitk

    ref = sitk.Image([int(s) for s in reversed(like.shape)], sitk.sitkUInt8)
    ref.SetSpacing(tuple(reversed(like.spacing_mm)))
    ref.SetOrigin(like.origin_mm)
    ref.SetDirection(tuple(like.direction.ravel()))
    return ref


def resample_like(image: Union[Scan, "object", str, Path], like: Scan, is_label: bool = True,
                  default_value: float = 0.0) -> Scan:
    """Resample `image` (a Scan, SimpleITK image or path) onto `like`'s grid.

    Each output voxel takes the value found at its world (LPS) position in `image`: nearest
    neighbour when `is_label`, linear otherwise; outside `image` it gets `default_value`. The
    result has `like`'s shape and geometry and `image`'s dtype.
    """
    import SimpleITK as sitk

    if isinstance(image, (str, Path)):
        from scanio.read import read_scan

        image = read_scan(image)
    if isinstance(image, Scan):
        source, modality, meta = image.to_sitk(), image.modality, dict(image.metadata)
    else:
        source, modality, meta = image, "OT", {}
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    out = sitk.Resample(source, _reference_grid(like), sitk.Transform(), interpolator,
                        float(default_value), source.GetPixelID())
    meta["warnings"] = list(meta.get("warnings", []))
    meta["resampled_like"] = like.metadata.get("source", "")
    return Scan.from_sitk(out, modality=modality, metadata=meta, dicom_source=like.dicom_source)
