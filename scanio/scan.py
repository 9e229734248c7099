"""`Scan`: a 3D image array with its exact world geometry (ITK / LPS conventions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


@dataclass(frozen=True)
class DicomSource:
    """What a DICOM SEG needs to reference the scan's source instances.

    `files[k]` and `frames[k]` give the file and 0-based frame number holding array slice `k`
    (frame is 0 for single-frame files). `regularized` is True when the array was resampled
    (tilt, missing slices), in which case slices no longer map to source instances.
    """

    files: tuple[str, ...]
    frames: tuple[int, ...]
    regularized: bool = False


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series found in a folder."""

    series_uid: str
    description: str
    modality: str
    num_slices: int
    size_xyz: tuple[int, int, int]  # (columns, rows, slices)
    num_files: int
    example_file: str

    def __str__(self) -> str:
        return (
            f"{self.series_uid or '<no SeriesInstanceUID>'}  {self.modality}  "
            f"'{self.description}'  {self.size_xyz[0]}x{self.size_xyz[1]}x{self.size_xyz[2]} "
            f"({self.num_files} files)"
        )


@dataclass(eq=False)
class Scan:
    """A 3D scan: `array` `(z, y, x)` exactly as `SimpleITK.GetArrayFromImage` gives, plus geometry.

    - `spacing_mm` `(z, y, x)`: voxel size along the array axes.
    - `origin_mm` `(x, y, z)`: LPS world position of voxel `(0, 0, 0)` (ITK `GetOrigin()`).
    - `direction` 3x3: ITK `GetDirection()` reshaped; column `c` is the world (LPS) unit vector
      of index axis `c` where `(i, j, k)` = array axes `(x, y, z)`.
    - `modality`: "CT", "MR", ... or "OT" when unknown; CT read from DICOM is in HU.
    - `metadata`: source path, series UID, description, `warnings` (list of str); never patient
      identifiers.
    """

    array: np.ndarray
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    direction: np.ndarray
    modality: str = "OT"
    metadata: dict[str, Any] = field(default_factory=dict)
    dicom_source: Optional[DicomSource] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.spacing_mm = tuple(float(s) for s in self.spacing_mm)
        self.origin_mm = tuple(float(o) for o in self.origin_mm)
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        self.metadata.setdefault("warnings", [])
        if self.array.ndim != 3:
            raise ValueError(f"Scan.array must be 3D (z, y, x), got shape {self.array.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape `(z, y, x)`."""
        return tuple(self.array.shape)

    def affine_zyx(self) -> np.ndarray:
        """4x4 matrix `M` with `M @ (z, y, x, 1) = (X, Y, Z, 1)`: array index to LPS world mm.

        Columns 0, 1, 2 are the world steps of one voxel along array axes z, y, x (direction
        column times spacing); column 3 is `origin_mm`. Indices are voxel centres, as in ITK.
        """
        sz, sy, sx = self.spacing_mm
        m = np.eye(4)
        m[:3, 0] = self.direction[:, 2] * sz
        m[:3, 1] = self.direction[:, 1] * sy
        m[:3, 2] = self.direction[:, 0] * sx
        m[:3, 3] = self.origin_mm
        return m

    def voxel_to_world(self, indices_zyx: np.ndarray) -> np.ndarray:
        """`(N, 3)` (or `(3,)`) continuous indices `(z, y, x)` to `(N, 3)` LPS world mm `(x, y, z)`."""
        idx = np.atleast_2d(np.asarray(indices_zyx, dtype=np.float64))
        m = self.affine_zyx()
        return idx @ m[:3, :3].T + m[:3, 3]

    def world_to_voxel(self, points_lps: np.ndarray) -> np.ndarray:
        """`(N, 3)` LPS world mm `(x, y, z)` to `(N, 3)` continuous indices `(z, y, x)`."""
        pts = np.atleast_2d(np.asarray(points_lps, dtype=np.float64))
        m = self.affine_zyx()
        return np.linalg.solve(m[:3, :3], (pts - m[:3, 3]).T).T

    def to_sitk(self):
        """A SimpleITK image with this array and geometry (the array is copied)."""
        import SimpleITK as sitk

        array = self.array.astype(np.uint8) if self.array.dtype == bool else self.array
        image = sitk.GetImageFromArray(np.ascontiguousarray(array))
        image.SetSpacing(tuple(reversed(self.spacing_mm)))
        image.SetOrigin(self.origin_mm)
        image.SetDirection(tuple(self.direction.ravel()))
        return image

    @classmethod
    def from_sitk(cls, image, modality: str = "OT", metadata: Optional[dict] = None,
                  dicom_source: Optional[DicomSource] = None) -> "Scan":
        """A Scan from a 3D SimpleITK image (array copied, geometry taken as is)."""
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
        return cls(
            array=sitk.GetArrayFromImage(image),
            spacing_mm=tuple(reversed(image.GetSpacing())),
            origin_mm=image.GetOrigin(),
            direction=np.array(image.GetDirection()).reshape(3, 3),
            modality=modality,
            metadata=dict(metadata or {}),
            dicom_source=dicom_source,
        )

    def same_geometry(self, other: "Scan", atol_mm: float = 1e-4) -> bool:
        """True when both scans share shape, spacing, origin and direction (within `atol_mm`)."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing_mm, other.spacing_mm, atol=atol_mm, rtol=0)
            and np.allclose(self.origin_mm, other.origin_mm, atol=atol_mm, rtol=0)
            and np.allclose(self.direction, other.direction, atol=1e-6, rtol=0)
        )
