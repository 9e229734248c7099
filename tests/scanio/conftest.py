"""Fixtures for scanio tests: the synthetic DICOM factory and small oblique scans."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_FACTORY = Path(__file__).with_name("dicom_factory.py")


@pytest.fixture(scope="session")
def dicom_factory():
    """The `dicom_factory` helper module (loaded by path: tests use importlib import mode)."""
    spec = importlib.util.spec_from_file_location("scanio_test_dicom_factory", _FACTORY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def oblique_direction() -> np.ndarray:
    """A rotation matrix far from the axes (columns orthonormal, determinant +1)."""
    a, b, c = np.radians([20.0, -35.0, 50.0])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.fixture
def oblique_scan():
    """A small int16 Scan with an oblique direction and anisotropic spacing."""
    import scanio

    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 1000, size=(4, 5, 6)).astype(np.int16)
    return scanio.Scan(array=array, spacing_mm=(2.5, 0.7, 0.9),
                       origin_mm=(-10.123456789, 20.5, -30.25), direction=oblique_direction(),
                       modality="CT", metadata={"source": "synthetic"})
