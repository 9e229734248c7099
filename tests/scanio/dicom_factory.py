"""Small synthetic DICOM files for scanio tests (uncompressed CT, written with pydicom)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def _base(sop_class: str, series_uid: str, modality: str = "CT") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.PatientName = "Secret^Patient"
    ds.PatientID = "SECRET-ID-123"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.Modality = modality
    ds.Manufacturer = "synthetic"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
    return path


def write_slice(path: Path, pixels: np.ndarray, position: Sequence[float], *,
                orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
                pixel_spacing: Sequence[float] = (0.8, 0.6),
                slope: float = 1.0, intercept: float = -1024.0, series_uid: str = "1.2.3.4",
                instance_number: int = 1, description: str = "synthetic CT",
                modality: str = "CT") -> Path:
    """One single-frame CT slice; `pixels` `(rows, cols)` uint16 stored values."""
    ds = _base(CTImageStorage, series_uid, modality)
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesDescription = description
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    ds.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
    ds.SliceThickness = "1"
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    return _save(ds, path)


def write_series(folder: Path, volume: np.ndarray, *, spacing_z: float = 2.0,
                 origin: Sequence[float] = (-10.0, 20.0, 30.0),
                 orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
                 positions: Optional[np.ndarray] = None, names: Optional[Sequence[str]] = None,
                 instance_numbers: Optional[Sequence[int]] = None, **kwargs) -> list[Path]:
    """A series: slice k of `volume` `(z, rows, cols)` at `origin + k * spacing_z * normal`
    (or `positions[k]`); files named `names[k]`, InstanceNumber `instance_numbers[k]`."""
    folder.mkdir(parents=True, exist_ok=True)
    iop = np.asarray(orientation, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    paths = []
    for k, plane in enumerate(volume):
        pos = positions[k] if positions is not None else np.asarray(origin) + k * spacing_z * normal
        name = names[k] if names is not None else f"slice{k:03d}.dcm"
        number = instance_numbers[k] if instance_numbers is not None else k + 1
        per_slice = {key: (v[k] if isinstance(v, (list, tuple)) else v) for key, v in kwargs.items()}
        paths.append(write_slice(folder / name, plane, pos, orientation=orientation,
                                 instance_number=number, **per_slice))
    return paths


def write_enhanced(path: Path, frames: np.ndarray, positions: np.ndarray, *,
                   orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
                   pixel_spacing: Sequence[float] = (0.8, 0.6),
                   slopes: Optional[Sequence[float]] = None,
                   intercepts: Optional[Sequence[float]] = None) -> Path:
    """An enhanced (multi-frame) CT: frame f `(rows, cols)` at `positions[f]`, per-frame rescale."""
    n = len(frames)
    ds = _base(ENHANCED_CT, "1.2.3.99")
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesDescription = "synthetic enhanced CT"
    ds.InstanceNumber = 1
    ds.NumberOfFrames = n
    ds.Rows, ds.Columns = frames.shape[1:]
    shared = Dataset()
    ori = Dataset()
    ori.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    shared.PlaneOrientationSequence = [ori]
    meas = Dataset()
    meas.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
    meas.SliceThickness = "1"
    shared.PixelMeasuresSequence = [meas]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for f in range(n):
        item = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = [f"{v:.6f}" for v in positions[f]]
        item.PlanePositionSequence = [pos]
        trans = Dataset()
        trans.RescaleSlope = f"{(slopes[f] if slopes else 1.0):g}"
        trans.RescaleIntercept = f"{(intercepts[f] if intercepts else -1024.0):g}"
        trans.RescaleType = "HU"
        item.PixelValueTransformationSequence = [trans]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = np.ascontiguousarray(frames, dtype=np.uint16).tobytes()
    return _save(ds, path)
