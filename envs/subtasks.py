"""Subtask tracking of a manipulation env: when each verb is done, the shaped progress within
a subtask, the plan pointer (advanced on completion, rolled back when a placed cube drops) and
the links of an instruction completed.

A mixin of :class:`envs.base.ManipulationEnv`: it reads the env's object poses and contacts
(``object_pos``, ``is_grasped``, ``is_touched``, ``ee_pos``, ``push_goal``) and its plan.
"""

from __future__ import annotations

import math

import numpy as np

from envs.language import DIRECTIONS, Subtask
from envs.scene import PAD_HALF

PLACE_XY = 0.02
"""A cube stacked on another is placed when their centres are this close in xy (m)."""
LIFT_HEIGHT = 0.03
"""A cube is picked once held this far above its resting height (m)."""
REACH_TOLERANCE = 0.025
PUSH_TOLERANCE = 0.03


class SubtaskTracking:
    """Completion tests, shaping and the plan pointer (``self._progress``)."""

    def _on_pad(self, obj: str, pad: str) -> bool:
        p, q = self.object_pos(obj), self.object_pos(pad)
        return bool(
            np.all(np.abs(p[:2] - q[:2]) < PAD_HALF - 0.005) and p[2] < self.cube_half + 0.01
        )

    def _on_cube(self, obj: str, base: str) -> bool:
        p, q = self.object_pos(obj), self.object_pos(base)
        return bool(
            np.linalg.norm(p[:2] - q[:2]) < PLACE_XY
            and abs(p[2] - q[2] - 2 * self.cube_half) < 0.008
        )

    def is_placed(self, obj: str, dest: str) -> bool:
        """``obj`` rests on ``dest`` (a pad or a cube)."""
        return self._on_cube(obj, dest) if dest.endswith("_cube") else self._on_pad(obj, dest)

    def subtask_done(self, subtask: Subtask) -> bool:
        if subtask.verb == "reach":
            return _dist(self.ee_pos, self.object_pos(subtask.obj)) < REACH_TOLERANCE
        if subtask.verb == "pick":
            return (
                self.is_grasped(subtask.obj)
                and self.object_pos(subtask.obj)[2] > self.cube_half + LIFT_HEIGHT
            )
        if subtask.verb == "place":
            return self.is_placed(subtask.obj, subtask.dest) and not self.is_touched(subtask.obj)
        goal = self.push_goal(subtask)
        if subtask.dest in DIRECTIONS:
            return _dist(self.object_pos(subtask.obj)[:2], goal) < PUSH_TOLERANCE
        return self._on_pad(subtask.obj, subtask.dest)

    def _subtask_shaping(self, subtask: Subtask) -> float:
        """Progress within a subtask in [0, 1)."""
        ee = self.ee_pos
        if subtask.verb == "reach":
            return 1.0 - math.tanh(10.0 * _dist(ee, self.object_pos(subtask.obj)))
        obj = self.object_pos(subtask.obj)
        if subtask.verb == "pick":
            near = 1.0 - math.tanh(10.0 * _dist(ee, obj))
            lift = (
                min(max((obj[2] - self.cube_half) / LIFT_HEIGHT, 0.0), 1.0)
                if self.is_grasped(subtask.obj)
                else 0.0
            )
            return float(0.6 * near + 0.4 * lift)
        if subtask.verb == "place":
            dest = self.object_pos(subtask.dest)
            return 1.0 - math.tanh(10.0 * _dist(obj[:2], dest[:2]))
        goal = self.push_goal(subtask)
        return 1.0 - math.tanh(10.0 * _dist(obj[:2], goal))

    def _update_subtasks(self) -> tuple[list[str], list[str]]:
        """Advance (or roll back) the plan pointer; return labels completed and reverted this step."""
        completed, reverted = [], []
        plan = self.plan
        while self._progress < len(plan) and self.subtask_done(plan[self._progress]):
            completed.append(plan[self._progress].label)
            self._progress += 1
        current = self.current_subtask
        if (
            current is not None
            and current.verb == "place"
            and self._progress > 0
            and plan[self._progress - 1].verb == "pick"
            and not self.is_grasped(current.obj)
            and self.object_pos(current.obj)[2] < self.cube_half + 0.01
        ):
            self._progress -= 1
            reverted.append(plan[self._progress].label)
        return completed, reverted

    def links_completed(self) -> int:
        return sum(1 for end in self._require_episode().link_ends if self._progress >= end)


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two small vectors (cheaper than np.linalg.norm on the hot path)."""
    return math.dist(a.tolist(), b.tolist())
