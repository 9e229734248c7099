"""Scan geometry: index <-> world mappings agree with SimpleITK's."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def test_voxel_to_world_matches_simpleitk(oblique_scan):
    image = oblique_scan.to_sitk()
    indices_zyx = np.array([[0, 0, 0], [3, 4, 5], [1.5, 2.25, 0.5]])
    expected = [image.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in idx[::-1]))
                for idx in indices_zyx]
    np.testing.assert_allclose(oblique_scan.voxel_to_world(indices_zyx), expected, atol=1e-9)


def test_world_to_voxel_inverts_voxel_to_world(oblique_scan):
    indices = np.array([[0.0, 0.0, 0.0], [3.0, 1.0, 2.0], [0.5, 4.5, 5.0]])
    back = oblique_scan.world_to_voxel(oblique_scan.voxel_to_world(indices))
    np.testing.assert_allclose(back, indices, atol=1e-9)


def test_affine_zyx_columns_are_steps_along_z_y_x(oblique_scan):
    m = oblique_scan.affine_zyx()
    np.testing.assert_allclose(m[:3, 0], oblique_scan.direction[:, 2] * 2.5)
    np.testing.assert_allclose(m[:3, 2], oblique_scan.direction[:, 0] * 0.9)
    np.testing.assert_allclose(m[:3, 3], oblique_scan.origin_mm)
    np.testing.assert_allclose(m[3], [0, 0, 0, 1])


def test_to_sitk_and_back_keeps_array_and_geometry(oblique_scan):
    import scanio

    back = scanio.Scan.from_sitk(oblique_scan.to_sitk())
    assert np.array_equal(back.array, oblique_scan.array)
    assert back.same_geometry(oblique_scan, atol_mm=0)
    assert sitk.GetArrayFromImage(oblique_scan.to_sitk()).shape == oblique_scan.shape


def test_resample_like_moves_values_through_world_space(oblique_scan):
    """Labels stored on a grid whose y axis runs the other way land back on their world positions."""
    import scanio

    flip = oblique_scan.direction.copy()
    flip[:, 1] *= -1
    ny = oblique_scan.shape[1]
    origin = oblique_scan.voxel_to_world([0, ny - 1, 0])[0]
    flipped = scanio.Scan(array=oblique_scan.array[:, ::-1].copy(), spacing_mm=oblique_scan.spacing_mm,
                          origin_mm=tuple(origin), direction=flip)
    back = scanio.resample_like(flipped, like=oblique_scan, is_label=True)
    assert np.array_equal(back.array, oblique_scan.array)
    assert back.same_geometry(oblique_scan)
    mask = scanio.Scan(array=oblique_scan.array > 0, spacing_mm=oblique_scan.spacing_mm,
                       origin_mm=oblique_scan.origin_mm, direction=oblique_scan.direction)
    assert np.array_equal(scanio.resample_like(mask, like=oblique_scan).array, oblique_scan.array > 0)
