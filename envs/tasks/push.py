"""Push: slide a cube onto a target pad without lifting it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.base import Episode, ManipulationEnv, TaskConfig
from envs.language import COLOR_NAMES, Subtask
from envs.placement import random_colors, random_yaw, sample_layout
from envs.registry_tasks import TASKS
from envs.scene import ObjectSpec


@TASKS.register("push")
@dataclass(frozen=True)
class PushConfig(TaskConfig):
    """Push the cube onto the pad (the cube's centre must end inside the pad)."""

    max_steps: int = 100
    """Control steps before the episode is truncated."""

    def build(self, render_mode: str | None = None) -> PushEnv:
        return PushEnv(self, render_mode=render_mode)


class PushEnv(ManipulationEnv):
    task_name = "push"

    def _scene_objects(self) -> tuple[ObjectSpec, ...]:
        return (ObjectSpec("cube0", "cube"), ObjectSpec("pad0", "pad"))

    def _sample_episode(self, rng: np.random.Generator) -> Episode:
        colors = random_colors(rng, COLOR_NAMES, 2)
        while True:
            cube, pad = sample_layout(rng, ["cube", "pad"])
            if 0.1 <= np.linalg.norm(cube - pad) <= 0.22:
                break
        obj, dest = f"{colors[0]}_cube", f"{colors[1]}_pad"
        return Episode(
            colors={"cube0": colors[0], "pad0": colors[1]},
            placements={"cube0": (*cube, random_yaw(rng)), "pad0": (*pad, 0.0)},
            plan=[Subtask("push", obj, dest)],
            instruction=self.phrase("push_to", rng, obj=obj, dest=dest),
            link_ends=[1],
        )
