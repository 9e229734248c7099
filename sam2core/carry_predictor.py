"""Moved to `sam2core.predictor.carrying` (predictor) and `sam2core.predictor.carry_rule` (rule); kept for imports."""

from sam2core.predictor.carry_rule import NO_OBJECT_LOGIT, CarryConfig, carry_mask  # noqa: F401
from sam2core.predictor.carrying import CarryingPredictor  # noqa: F401
