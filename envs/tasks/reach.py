"""Reach: move the gripper to the named one of two floating markers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.base import Episode, ManipulationEnv, TaskConfig
from envs.language import COLOR_NAMES, Subtask
from envs.placement import random_colors, sample_layout
from envs.registry_tasks import TASKS
from envs.scene import ObjectSpec


@TASKS.register("reach")
@dataclass(frozen=True)
class ReachConfig(TaskConfig):
    """Reach the marker of the named colour; a second marker is a distractor."""

    max_steps: int = 50
    """Control steps before the episode is truncated."""

    def build(self, render_mode: str | None = None) -> ReachEnv:
        return ReachEnv(self, render_mode=render_mode)


class ReachEnv(ManipulationEnv):
    task_name = "reach"

    def _scene_objects(self) -> tuple[ObjectSpec, ...]:
        return (ObjectSpec("target0", "target"), ObjectSpec("target1", "target"))

    def _sample_episode(self, rng: np.random.Generator) -> Episode:
        colors = random_colors(rng, COLOR_NAMES, 2)
        xy = sample_layout(rng, ["target", "target"])
        heights = rng.uniform(0.04, 0.22, size=2)
        goal = f"{colors[0]}_target"
        return Episode(
            colors={"target0": colors[0], "target1": colors[1]},
            placements={f"target{i}": (*xy[i], 0.0) for i in range(2)},
            plan=[Subtask("reach", goal)],
            instruction=self.phrase("reach", rng, obj=goal),
            link_ends=[1],
            target_heights={f"target{i}": float(heights[i]) for i in range(2)},
        )
