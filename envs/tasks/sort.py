"""Sort (long horizon, 6 subtasks): put each of three cubes on the pad of its own colour.

The plan takes the cubes from left to right (largest y first), an order visible in the scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.base import Episode, ManipulationEnv, TaskConfig
from envs.language import COLOR_NAMES, Subtask
from envs.placement import random_colors, random_yaw, sample_layout
from envs.registry_tasks import TASKS
from envs.scene import ObjectSpec

N_CUBES = 3


@TASKS.register("sort")
@dataclass(frozen=True)
class SortConfig(TaskConfig):
    """Three cubes, three pads of the same colours: every cube on its pad at the same time."""

    max_steps: int = 300
    """Control steps before the episode is truncated."""

    def build(self, render_mode: str | None = None) -> SortEnv:
        return SortEnv(self, render_mode=render_mode)


class SortEnv(ManipulationEnv):
    task_name = "sort"

    def _scene_objects(self) -> tuple[ObjectSpec, ...]:
        cubes = tuple(ObjectSpec(f"cube{i}", "cube") for i in range(N_CUBES))
        pads = tuple(ObjectSpec(f"pad{i}", "pad") for i in range(N_CUBES))
        return cubes + pads

    def _sample_episode(self, rng: np.random.Generator) -> Episode:
        colors = random_colors(rng, COLOR_NAMES, N_CUBES)
        xy = sample_layout(rng, ["pad"] * N_CUBES + ["cube"] * N_CUBES)
        placements = {f"pad{i}": (*xy[i], 0.0) for i in range(N_CUBES)}
        placements |= {f"cube{i}": (*xy[N_CUBES + i], random_yaw(rng)) for i in range(N_CUBES)}
        plan: list[Subtask] = []
        # left to right (largest y first): an order anyone can see in the scene, so that a
        # memoryless policy knows which cube comes next (the instruction names none)
        for i in sorted(range(N_CUBES), key=lambda i: -xy[N_CUBES + i][1]):
            cube, pad = f"{colors[i]}_cube", f"{colors[i]}_pad"
            plan += [Subtask("pick", cube), Subtask("place", cube, pad)]
        return Episode(
            colors={f"cube{i}": colors[i] for i in range(N_CUBES)}
            | {f"pad{i}": colors[i] for i in range(N_CUBES)},
            placements=placements,
            plan=plan,
            instruction=self.phrase("sort", rng),
            link_ends=[2, 4, 6],
        )

    def _check_success(self) -> bool:
        colors = [self._episode.colors[f"cube{i}"] for i in range(N_CUBES)]
        return all(
            self.is_placed(f"{c}_cube", f"{c}_pad") and not self.is_touched(f"{c}_cube")
            for c in colors
        )

    def _update_subtasks(self) -> tuple[list[str], list[str]]:
        """As the base, and when the plan is done but a cube was knocked off its pad, go back to it."""
        completed, reverted = super()._update_subtasks()
        if self._progress >= len(self.plan) and not self._check_success():
            for i in range(0, len(self.plan), 2):
                place = self.plan[i + 1]
                if not self.is_placed(place.obj, place.dest):
                    self._progress = i
                    reverted.append(self.plan[i].label)
                    break
        return completed, reverted
