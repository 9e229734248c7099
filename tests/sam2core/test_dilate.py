"""The carrying rule's disc dilation (distance transform in the mask's box) equals dilation by convolution with the disc."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sam2core.predictor.carry_rule import core, dilate


def _dilate_by_convolution(mask: torch.Tensor, r: int) -> torch.Tensor:
    """The reference: any mask pixel under the disc `y² + x² <= r²` centred on the pixel (zero padding)."""
    yy, xx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    disc = ((yy * yy + xx * xx) <= r * r).float()[None, None]
    return F.conv2d(mask.float()[None, None], disc, padding=r)[0, 0] > 0.5


def test_dilation_equals_the_disc_convolution_inside_and_at_the_borders():
    generator = torch.Generator().manual_seed(0)
    for trial in range(6):
        mask = torch.rand(70, 90, generator=generator) > 0.995  # scattered pixels
        mask[20:30, 0:12] = True  # a blob on the left border
        if trial % 2:
            mask[60:70, 85:90] = True  # and one in the bottom-right corner
        for r in (1, 2, 3, 4, 5, 8, 13):
            assert torch.equal(dilate(mask, r), _dilate_by_convolution(mask, r)), (trial, r)


def test_empty_full_and_zero_radius():
    empty = torch.zeros(16, 20, dtype=torch.bool)
    assert not dilate(empty, 4).any()
    assert dilate(~empty, 4).all()
    one = empty.clone()
    one[8, 10] = True
    assert torch.equal(dilate(one, 0), one)
    assert int(dilate(one, 2).sum()) == 13  # the radius-2 disc
    assert torch.equal(core(one), one)  # eroding a single pixel empties it: the mask itself
