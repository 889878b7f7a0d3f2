"""The one registry of tasks: name -> frozen ``TaskConfig`` subclass."""

from sandbox_common.registry import Registry

TASKS: Registry = Registry("task")
