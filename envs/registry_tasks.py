"""The one registry of tasks: name -> frozen ``TaskConfig`` subclass."""

from envs.registry import Registry

TASKS: Registry = Registry("task")
