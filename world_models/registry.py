"""The registry of world models: name -> frozen config class whose ``build(spec)`` makes the model."""

from sandbox_common.registry import Builders, Registry

WORLD_MODELS: Registry = Registry("world model")
WORLD_MODEL_BUILDERS = Builders("world model")
"""Config type -> model class; each model registers itself beside its definition."""
