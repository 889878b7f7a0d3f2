"""Stack: pick the named cube and put it on top of the other named cube."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.base import Episode, ManipulationEnv, TaskConfig
from envs.language import COLOR_NAMES, Subtask
from envs.placement import random_colors, random_yaw, sample_layout
from envs.registry_tasks import TASKS
from envs.scene import ObjectSpec


@TASKS.register("stack")
@dataclass(frozen=True)
class StackConfig(TaskConfig):
    """Stack one cube on another; a third cube is a distractor."""

    max_steps: int = 120
    """Control steps before the episode is truncated."""

    def build(self, render_mode: str | None = None) -> StackEnv:
        return StackEnv(self, render_mode=render_mode)


class StackEnv(ManipulationEnv):
    task_name = "stack"

    def _scene_objects(self) -> tuple[ObjectSpec, ...]:
        return tuple(ObjectSpec(f"cube{i}", "cube") for i in range(3))

    def _sample_episode(self, rng: np.random.Generator) -> Episode:
        colors = random_colors(rng, COLOR_NAMES, 3)
        xy = sample_layout(rng, ["cube"] * 3)
        obj, base = f"{colors[0]}_cube", f"{colors[1]}_cube"
        return Episode(
            colors={f"cube{i}": colors[i] for i in range(3)},
            placements={f"cube{i}": (*xy[i], random_yaw(rng)) for i in range(3)},
            plan=[Subtask("pick", obj), Subtask("place", obj, base)],
            instruction=self.phrase("stack", rng, obj=obj, dest=base),
            link_ends=[2],
        )
