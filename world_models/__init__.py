"""Latent world models trained on arrays of trajectories (from any Gymnasium env, not only ours)."""

from world_models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from world_models.config import PRESETS, LatentWorldModelConfig, ObsSpec, preset
from world_models.dream_env import DreamEnv
from world_models.evaluation import HORIZONS, evaluate_world_model, plot_errors
from world_models.latent import LatentWorldModel
from world_models.registry import WORLD_MODELS
from world_models.trainer import Trainer
from world_models.training import WorldModelTrainer, build_world_model, load_world_model

__all__ = [
    "HORIZONS",
    "PRESETS",
    "WORLD_MODELS",
    "CheckpointError",
    "DreamEnv",
    "LatentWorldModel",
    "LatentWorldModelConfig",
    "ObsSpec",
    "Trainer",
    "WorldModelTrainer",
    "build_world_model",
    "evaluate_world_model",
    "load_checkpoint",
    "load_world_model",
    "plot_errors",
    "preset",
    "save_checkpoint",
]
