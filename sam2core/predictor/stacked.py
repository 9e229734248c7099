"""Several objects' outputs on one frame, seen by `track_step` as one batched output.

Pointers and scores are stacked at once (a few hundred floats each); the spatial memories
only when the model reads them, so frames the model reads only for their pointer are never
brought back from the offload folder.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from sam2core.predictor.state import FrameOutput


class StackedOutput:
    """A read-only `(B, ...)` view of B objects' `FrameOutput`s on the same frame."""

    def __init__(self, outputs: list[FrameOutput]) -> None:
        self._outputs = outputs
        self.obj_ptr = torch.cat([o.obj_ptr for o in outputs])
        self.object_score_logits = torch.cat([o.object_score_logits for o in outputs])
        first = outputs[0].maskmem_pos_enc
        self.maskmem_pos_enc = None if first is None else [x[0:1].expand(len(outputs), -1, -1, -1) for x in first]
        self._maskmem: Optional[torch.Tensor] = None

    @property
    def maskmem_features(self) -> Optional[torch.Tensor]:
        if self._maskmem is None:
            parts = [o.maskmem_features for o in self._outputs]
            if any(p is None for p in parts):
                return None
            self._maskmem = torch.cat(parts)
        return self._maskmem

    @property
    def has_memory(self) -> bool:
        return all(o.has_memory for o in self._outputs)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __contains__(self, key: str) -> bool:
        return hasattr(self, key)
