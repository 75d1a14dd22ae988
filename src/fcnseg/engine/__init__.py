"""Training and evaluation loops.

Training: :func:`train` runs a recipe (:func:`load_config`, :func:`list_recipes`); evaluation
lives in :mod:`fcnseg.engine.evaluation`.
"""

from fcnseg.engine.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    list_recipes,
    load_config,
    load_recipe,
)
from fcnseg.engine.trainer import TrainingDiverged, TrainResult, train

__all__ = [
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "apply_overrides",
    "list_recipes",
    "load_config",
    "load_recipe",
    "train",
]
