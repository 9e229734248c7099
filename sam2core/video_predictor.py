"""Moved to `sam2core.predictor.video` (predictor) and `sam2core.predictor.prompts` (prompt handling); kept for imports."""

from sam2core.predictor.prompts import PointsLike, PromptsMixin  # noqa: F401
from sam2core.predictor.video import NO_OBJ_SCORE, VideoPredictor  # noqa: F401
