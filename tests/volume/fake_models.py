"""Fast fake image models for unit tests: they threshold the frame inside the prompt."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage


@dataclass
class ThresholdImageModel:
    """Image-model API stand-in: the 'object' is every bright pixel (> threshold) the prompt selects.

    A box selects bright pixels inside it; a positive point selects the bright component
    under it; a negative point removes the component under it; a mask prompt alone selects
    bright pixels under it. `encoded` records every frame given to `encode_image`.
    """

    threshold: float = 0.5
    is_image_model: bool = True
    image_size: int = 256
    encoded: list = field(default_factory=list)
    decodes: int = 0

    def encode_image(self, frame) -> torch.Tensor:
        image = torch.as_tensor(np.asarray(frame), dtype=torch.float32)[0].clone()
        self.encoded.append(image)
        return image

    def decode(self, embedding, points=None, labels=None, box=None, mask_input=None, multimask=False):
        self.decodes += 1
        bright = embedding.numpy() > self.threshold
        h, w = bright.shape
        selected = np.zeros((h, w), dtype=bool)
        if box is not None:
            x0, y0, x1, y1 = (float(v) for v in np.asarray(box).reshape(4))
            selected[max(math.ceil(y0), 0):int(math.floor(y1)) + 1, max(math.ceil(x0), 0):int(math.floor(x1)) + 1] = True
            selected &= bright
        components, _ = ndimage.label(bright)
        if points is not None:
            for (x, y), label in zip(np.asarray(points).reshape(-1, 2), np.asarray(labels).reshape(-1)):
                comp = components[int(round(y)), int(round(x))]
                if comp == 0:
                    continue
                if label == 1:
                    selected |= components == comp
                else:
                    selected &= components != comp
        if box is None and points is None and mask_input is not None:
            selected = bright & (np.asarray(mask_input) > 0)
        logits = torch.from_numpy(np.where(selected, 8.0, -8.0).astype(np.float32))
        iou = torch.tensor([0.95 if selected.any() else 0.05])
        k = 3 if multimask else 1
        return logits[None].repeat(k, 1, 1), iou.repeat(k)


@dataclass
class FakeScan:
    """The parts of `scanio.Scan` a Session reads."""

    array: np.ndarray
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    spacing_mm: tuple = (1.0, 1.0, 1.0)
    modality: str = "CT"


def ellipsoid(shape, center, radii, value=1000.0) -> np.ndarray:
    """A `(z, y, x)` int16 volume, 0 outside and `value` inside an axis-aligned ellipsoid."""
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip((zz, yy, xx), center, radii)) <= 1.0
    return np.where(inside, value, 0).astype(np.int16)
