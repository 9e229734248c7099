"""Frame sources for the streaming predictors: a tensor or a lazy `(len, get_frame)` pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import numpy as np
import torch


@dataclass(frozen=True)
class LazyFrames:
    """`num_frames` frames produced on demand by `get_frame(i)`.

    `get_frame(i)` returns one RGB frame in [0, 1] as a `(3, H, W)` float array or tensor;
    every frame has the same `(H, W)`. Nothing is loaded until a predictor asks for it.
    """

    num_frames: int
    get_frame: Callable[[int], Union[np.ndarray, torch.Tensor]]

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} is outside 0..{self.num_frames - 1}")
        frame = self.get_frame(index)
        return torch.as_tensor(np.asarray(frame) if not isinstance(frame, torch.Tensor) else frame,
                               dtype=torch.float32)


FrameSource = Union[torch.Tensor, LazyFrames]


def as_frame_source(frames: FrameSource | np.ndarray) -> FrameSource:
    """Accept a `(T, 3, H, W)` tensor/array or a `LazyFrames`; reject anything else clearly."""
    if isinstance(frames, LazyFrames):
        return frames
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if isinstance(frames, torch.Tensor):
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be (T, 3, H, W); got shape {tuple(frames.shape)}")
        return frames.float()
    raise TypeError(f"frames must be a (T, 3, H, W) tensor or LazyFrames, not {type(frames).__name__}")
