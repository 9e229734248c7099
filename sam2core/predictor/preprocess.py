"""Frame preprocessing exactly as the official SAM 2 video loader does it.

The official loader (`sam2.utils.misc.load_video_frames`) reads 8-bit RGB frames, resizes
them with PIL's default `Image.resize` (bicubic, antialiased) to `image_size × image_size`,
divides by 255 and normalises with the ImageNet mean/std. `resize_mode="pil"` replicates that
for frames given as floats in [0, 1] (quantised to 8 bits first, as a JPEG frame would be);
`resize_mode="torch"` keeps full float precision and resizes with torch's antialiased
bicubic interpolation (close to, not bit-identical with, PIL).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ResizeMode = Literal["pil", "torch"]


def _resize_pil(frame_chw: torch.Tensor, image_size: int) -> torch.Tensor:
    """(3, H, W) in [0, 1] → (3, S, S) float32 in [0, 1] through 8-bit PIL bicubic, like the official loader."""
    rgb_u8 = (frame_chw.detach().float().cpu().clamp(0, 1) * 255.0).round().to(torch.uint8)
    image = Image.fromarray(rgb_u8.permute(1, 2, 0).numpy(), mode="RGB")
    resized = np.array(image.resize((image_size, image_size)))
    # float64 division then float32, as the official loader does (img_np / 255.0)
    return torch.from_numpy(resized / 255.0).permute(2, 0, 1).float()


def _resize_torch(frame_chw: torch.Tensor, image_size: int) -> torch.Tensor:
    """(3, H, W) in [0, 1] → (3, S, S) float32, antialiased bicubic in float precision."""
    frame = frame_chw.float()
    if tuple(frame.shape[-2:]) == (image_size, image_size):
        return frame
    resized = F.interpolate(frame[None], size=(image_size, image_size), mode="bicubic",
                            align_corners=False, antialias=True)[0]
    return resized.clamp(0, 1)


def preprocess_frame(frame_chw: torch.Tensor, image_size: int, device: torch.device,
                     resize_mode: ResizeMode = "pil") -> torch.Tensor:
    """One RGB frame `(3, H, W)` in [0, 1] → normalised model input `(1, 3, S, S)` on `device`."""
    if frame_chw.ndim != 3 or frame_chw.shape[0] != 3:
        raise ValueError(f"a frame must be (3, H, W) RGB; got shape {tuple(frame_chw.shape)}")
    if resize_mode == "pil":
        image = _resize_pil(frame_chw, image_size)
    elif resize_mode == "torch":
        image = _resize_torch(frame_chw, image_size)
    else:
        raise ValueError(f"resize_mode must be 'pil' or 'torch', not {resize_mode!r}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    image = image.to(device)
    image = (image - mean.to(device)) / std.to(device)
    return image[None]
