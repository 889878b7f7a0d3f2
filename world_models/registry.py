"""The registry of world models: name -> frozen config class whose ``build(spec)`` makes the model."""

from sandbox_common.registry import Registry

WORLD_MODELS: Registry = Registry("world model")
