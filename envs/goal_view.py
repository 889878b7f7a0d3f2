"""The goal-conditioned view of a one-goal task, for hindsight experience replay (HER).

HER (Andrychowicz et al., 2017) relabels a failed episode with a goal it did reach, which needs
the task split into what the agent controls and where it should go, as Gymnasium-Robotics'
Fetch tasks expose it: ``observation`` (no goal in it), ``achieved_goal`` (what the agent moved
there), ``desired_goal`` (where the instruction wants it) and ``compute_reward(achieved,
desired, info)``, a function of the two goals alone, vectorised over a batch.

Here the instruction's one link says which: reach (the hand to the target), a cube pushed or
carried onto a pad, or a cube pushed in a direction. ``achieved_goal`` is the hand (reach) or
the cube (the others); ``desired_goal`` the target, the pad or the pushed-to point. The goal
test is the task's own success test restricted to the two positions: for a pad, the cube's
centre inside the pad and resting on it (whether the gripper still touches the cube is not a
function of the goals, so a relabelled "placed" may still be held). Tasks with more than one
link, or a cube on a moving cube (stack), have no single fixed goal: a clear error.

numpy only, as :mod:`envs.task_features`, which it reads the instruction's objects from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.task_features import GOAL_TESTS, PROPRIO_USED, GroundedState, goal_reached

GOAL_DIM = 3
_P = len(PROPRIO_USED)
# link 0's fields in the state features (envs.task_features.TaskFeatures.state_features)
_LINK = _P + 1
_OBJECT = slice(_LINK + 0, _LINK + 12)  # present, kind, position, position - hand, yaw
_POSITION = slice(_LINK + 4, _LINK + 7)
_DEST = slice(_LINK + 22, _LINK + 25)
_PUSHED = _LINK + 29


class GoalView:
    """One episode's goal-conditioned view: call :meth:`reset` with the instruction, then the
    view of every observation (the first one binds the instruction to the scene)."""

    def __init__(self, kinds: tuple[str, ...]) -> None:
        self.state = GroundedState(kinds, slot_order="instruction")
        self.test: str | None = None

    @staticmethod
    def observation_dim(test: str) -> int:
        """Reach: the proprioception alone (the target is the goal); a cube: plus the cube's
        presence, kind, position, offset from the hand, yaw and push bit."""
        return _P if test == "reach" else _P + 13

    def reset(self, instruction: str) -> None:
        self.state.reset(instruction)
        self.test = None

    def _bind(self) -> str:
        links = self.state.features.links(self.state.bound)
        if len(links) != 1:
            raise ValueError(
                f"HER needs a task with one goal (reach, push, pick-place); "
                f"{self.state.instruction!r} names {len(links)} links"
            )
        link = links[0]
        if link.dest is None and link.direction is None:
            return "reach"
        if link.direction is not None:
            return "pushed_to"
        if self.state.features.slices[link.dest][0] != "pad":
            raise ValueError(
                f"HER needs a fixed goal; {self.state.instruction!r} puts a cube on another "
                "cube, which moves (stack has no single goal position)"
            )
        return "on_pad"

    def __call__(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        x = self.state(obs)
        if self.test is None:
            self.test = self._bind()
        proprio = x[:_P]
        if self.test == "reach":
            observation, achieved, desired = proprio, proprio[:3], x[_POSITION]
        else:
            observation = np.concatenate([proprio, x[_OBJECT], x[_PUSHED : _PUSHED + 1]])
            achieved, desired = x[_POSITION], x[_DEST]
        return {
            "observation": observation.astype(np.float32),
            "achieved_goal": np.asarray(achieved, np.float32).copy(),
            "desired_goal": np.asarray(desired, np.float32).copy(),
        }

    def compute_reward(self, achieved: np.ndarray, desired: np.ndarray, info: Any = None):
        """1 where the goal is reached, else 0 (the task's sparse reward), per row."""
        if self.test is None:
            raise RuntimeError("GoalView.compute_reward before the first observation")
        achieved, desired = np.asarray(achieved), np.asarray(desired)
        return goal_reached(achieved, desired, self.test).astype(np.float32)


__all__ = ["GOAL_DIM", "GOAL_TESTS", "GoalView", "goal_reached"]
