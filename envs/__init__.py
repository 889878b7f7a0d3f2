"""MuJoCo manipulation tasks with language and subtasks. ``import envs`` registers every task
with Gymnasium as ``WMSandbox/<Task>-v0``.

    import envs, gymnasium
    env = envs.make("pick-place", obs_mode="state")
    env = gymnasium.make("WMSandbox/PickPlace-v0", image_size=96)
"""

from envs.rendering import select_backend

GL_BACKEND = select_backend()  # before anything imports mujoco

import dataclasses
from typing import Any

import gymnasium

from envs import tasks  # noqa: F401  (registers the tasks)
from envs.base import ENV_VERSION, ManipulationEnv, TaskConfig
from envs.registry_tasks import TASKS

NAMESPACE = "WMSandbox"


def gym_id(task: str) -> str:
    """``pick-place`` -> ``WMSandbox/PickPlace-v0``."""
    TASKS.get(task)
    return f"{NAMESPACE}/{''.join(part.capitalize() for part in task.split('-'))}-v0"


def make_config(task: str, **overrides: Any) -> TaskConfig:
    """The task's default config with ``overrides``; unknown fields raise a message listing the known."""
    cls = TASKS.get(task)
    known = cls.field_names()
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for task {task!r}; accepted: {', '.join(known)}"
        )
    if "cameras" in overrides and isinstance(overrides["cameras"], list):
        overrides["cameras"] = tuple(overrides["cameras"])
    return dataclasses.replace(cls(), **overrides)


def make(task: str, render_mode: str | None = None, **overrides: Any) -> ManipulationEnv:
    """Build a task's env directly (no Gymnasium wrappers)."""
    return make_config(task, **overrides).build(render_mode=render_mode)


def _entry_point(task: str, render_mode: str | None = None, **overrides: Any) -> ManipulationEnv:
    return make(task, render_mode=render_mode, **overrides)


for _name in TASKS.names():
    _id = gym_id(_name)
    if _id not in gymnasium.registry:
        gymnasium.register(
            id=_id,
            entry_point="envs:_entry_point",
            kwargs={"task": _name},
            max_episode_steps=None,
            disable_env_checker=False,
        )

__all__ = [
    "ENV_VERSION",
    "GL_BACKEND",
    "NAMESPACE",
    "TASKS",
    "ManipulationEnv",
    "TaskConfig",
    "gym_id",
    "make",
    "make_config",
]
