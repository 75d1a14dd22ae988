"""Training and evaluation loops.

Training: :func:`train` runs a recipe (:func:`load_config`, :func:`list_recipes`) in stages:
:mod:`fcnseg.engine.setup` builds a :class:`TrainSetup` (data, model, optimizer, schedule,
scaler, DDP), :mod:`fcnseg.engine.state` saves and restores a :class:`TrainState`, and
:mod:`fcnseg.engine.trainer` holds the loop. Evaluation lives in :mod:`fcnseg.engine.evaluation`.
"""

from fcnseg.engine.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    list_recipes,
    load_config,
    load_recipe,
)
from fcnseg.engine.errors import BadSampleError, TrainingDiverged
from fcnseg.engine.setup import TrainSetup, build_setup
from fcnseg.engine.state import TrainState
from fcnseg.engine.trainer import TrainResult, train

__all__ = ["BadSampleError", "ConfigError", "TrainConfig", "TrainResult", "TrainSetup",
           "TrainState", "TrainingDiverged", "apply_overrides", "build_setup", "list_recipes",
           "load_config", "load_recipe", "train"]
