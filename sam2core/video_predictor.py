"""Import shim: moved to `sam2core.predictor.video` and `sam2core.predictor.prompts`."""

from sam2core.predictor.prompts import PointsLike, PromptsMixin  # noqa: F401
from sam2core.predictor.video import NO_OBJ_SCORE, VideoPredictor  # noqa: F401
