"""Pick and place: put the named cube on the named pad; another cube and pad are distractors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.base import Episode, ManipulationEnv, TaskConfig
from envs.language import COLOR_NAMES, Subtask
from envs.placement import random_colors, random_yaw, sample_layout
from envs.registry_tasks import TASKS
from envs.scene import ObjectSpec


@TASKS.register("pick-place")
@dataclass(frozen=True)
class PickPlaceConfig(TaskConfig):
    """Pick the named cube and place it on the named pad."""

    max_steps: int = 100
    """Control steps before the episode is truncated."""

    def build(self, render_mode: str | None = None) -> PickPlaceEnv:
        return PickPlaceEnv(self, render_mode=render_mode)


class PickPlaceEnv(ManipulationEnv):
    task_name = "pick-place"

    def _scene_objects(self) -> tuple[ObjectSpec, ...]:
        return (
            ObjectSpec("cube0", "cube"),
            ObjectSpec("cube1", "cube"),
            ObjectSpec("pad0", "pad"),
            ObjectSpec("pad1", "pad"),
        )

    def _sample_episode(self, rng: np.random.Generator) -> Episode:
        colors = random_colors(rng, COLOR_NAMES, 4)
        xy = sample_layout(rng, ["pad", "pad", "cube", "cube"])
        obj, dest = f"{colors[0]}_cube", f"{colors[2]}_pad"
        return Episode(
            colors={"cube0": colors[0], "cube1": colors[1], "pad0": colors[2], "pad1": colors[3]},
            placements={
                "pad0": (*xy[0], 0.0),
                "pad1": (*xy[1], 0.0),
                "cube0": (*xy[2], random_yaw(rng)),
                "cube1": (*xy[3], random_yaw(rng)),
            },
            plan=[Subtask("pick", obj), Subtask("place", obj, dest)],
            instruction=self.phrase("pick_place", rng, obj=obj, dest=dest),
            link_ends=[2],
        )
