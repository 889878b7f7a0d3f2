"""Scripted experts: solve every task from privileged state, one skill per subtask verb.

The expert reads the env's current subtask (``env.current_subtask``) and the true poses of the
objects, and servoes the end effector through waypoints. Each skill decides its phase from the
state alone (where the hand is, whether the cube is held), so it recovers after a drop: the env
rolls ``place`` back to ``pick`` and the expert picks again. Optional Gaussian action noise makes
the demos diverse; :meth:`ScriptedExpert.act` returns the clean action, the executed (noisy)
action and the subtask label it is executing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.base import POS_STEP, YAW_LIMIT, YAW_STEP, ManipulationEnv
from envs.language import DIRECTIONS, Subtask
from envs.scene import CUBE_HALF

HOVER = 0.09
"""Height above an object's centre for approach and carry (m)."""
SAFE_Z = 0.11
"""End-effector height for travelling between objects (m)."""
PUSH_BEHIND = 0.042
"""End-effector distance behind a cube's centre when pushing it (m)."""


def closest_equivalent(
    angle: float, period: float, current: float, limit: float = YAW_LIMIT - 0.05
) -> float:
    """Of ``angle + k * period`` inside [-limit, limit], the one nearest ``current``."""
    base = angle - period * np.round(angle / period)
    candidates = [base + k * period for k in range(-4, 5) if abs(base + k * period) <= limit]
    return float(min(candidates, key=lambda a: abs(a - current)))


@dataclass
class ExpertStep:
    action: np.ndarray
    """The expert's clean action (5,)."""
    executed: np.ndarray
    """The action to execute: ``action`` plus noise, clipped to [-1, 1]."""
    subtask: str
    """The label of the subtask the expert is executing."""


class ScriptedExpert:
    """A waypoint controller over the env's privileged state."""

    def __init__(self, env: ManipulationEnv, noise: float = 0.0, seed: int | None = None) -> None:
        if noise < 0:
            raise ValueError(f"expert noise must be >= 0, got {noise}")
        self.env = env
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.gain = 1.0 / POS_STEP

    def act(self, obs: dict | None = None) -> ExpertStep:
        env = self.env
        subtask = env.current_subtask
        if subtask is None:  # all done: hold still, open, above the table
            action = self._servo(
                np.array([*env.ee_pos[:2], max(env.ee_pos[2], SAFE_Z)]), env.ee_yaw, -1.0
            )
            label = "none"
        else:
            skill = {
                "reach": self._reach,
                "pick": self._pick,
                "place": self._place,
                "push": self._push,
            }
            action = skill[subtask.verb](subtask)
            label = subtask.label
        executed = action.copy()
        if self.noise > 0:
            executed[:4] += self.rng.normal(0.0, self.noise, size=4)
            executed = np.clip(executed, -1.0, 1.0)
        return ExpertStep(action=action, executed=executed.astype(np.float32), subtask=label)

    # ------------------------------------------------------------------ motion primitives

    def _servo(self, target: np.ndarray, yaw: float, grip: float) -> np.ndarray:
        env = self.env
        delta = (target - env.ee_pos) * self.gain
        norm = np.max(np.abs(delta))
        if norm > 1.0:
            delta = delta / norm
        dyaw = np.clip((yaw - env.ee_yaw) / YAW_STEP, -1.0, 1.0)
        return np.array([*delta, dyaw, grip], dtype=np.float32)

    def _travel(
        self, goal: np.ndarray, yaw: float, grip: float, tolerance: float = 0.02
    ) -> np.ndarray:
        """Go to ``goal``: rise to a safe height first when it is far in xy and the hand is low."""
        ee = self.env.ee_pos
        far = np.linalg.norm(goal[:2] - ee[:2]) > tolerance
        if far and ee[2] < min(SAFE_Z, goal[2]) - 0.025:
            return self._servo(np.array([ee[0], ee[1], SAFE_Z]), yaw, grip)
        if far:
            return self._servo(
                np.array([goal[0], goal[1], max(goal[2], min(ee[2], SAFE_Z))]), yaw, grip
            )
        return self._servo(goal, yaw, grip)

    def _holding(self, name: str) -> bool:
        """The cube sits between the closed fingers (robust to a contact flickering for one step)."""
        env = self.env
        if env.is_grasped(name):
            return True
        offset = env.object_pos(name) - env.ee_pos
        return bool(
            env.gripper_opening < 0.6
            and np.linalg.norm(offset[:2]) < 0.02
            and abs(offset[2]) < 0.025
            and env.is_touched(name)
        )

    def _grasp_yaw(self, name: str) -> float:
        """A hand yaw that lines the fingers up with the cube's faces (a cube repeats every quarter turn)."""
        return closest_equivalent(self.env.object_yaw(name), np.pi / 2, self.env.ee_yaw)

    # ------------------------------------------------------------------ skills

    def _reach(self, subtask: Subtask) -> np.ndarray:
        return self._servo(self.env.object_pos(subtask.obj), 0.0, -1.0)

    def _pick(self, subtask: Subtask) -> np.ndarray:
        env = self.env
        cube = env.object_pos(subtask.obj)
        yaw = self._grasp_yaw(subtask.obj)
        ee = env.ee_pos
        if env.is_grasped(subtask.obj):
            return self._servo(np.array([ee[0], ee[1], cube[2] + 0.07]), yaw, 1.0)
        xy_err = np.linalg.norm(cube[:2] - ee[:2])
        yaw_err = abs(yaw - env.ee_yaw)
        at_grasp = xy_err < 0.012 and abs(ee[2] - cube[2]) < 0.012
        if at_grasp and env.gripper_opening > 0.12:
            return self._servo(cube, yaw, 1.0)  # close on it
        if at_grasp:  # closed on nothing: open and come back down
            return self._servo(cube + np.array([0, 0, 0.03]), yaw, -1.0)
        if xy_err > 0.012 or yaw_err > 0.15 or env.gripper_opening < 0.8:
            if xy_err < 0.02 and ee[2] < cube[2] + 0.02 and env.gripper_opening < 0.8:
                return self._servo(cube + np.array([0, 0, HOVER]), yaw, -1.0)  # back off upwards
            return self._travel(cube + np.array([0, 0, HOVER]), yaw, -1.0, tolerance=0.012)
        return self._servo(cube, yaw, -1.0)

    def _place(self, subtask: Subtask) -> np.ndarray:
        env = self.env
        cube = env.object_pos(subtask.obj)
        dest = env.object_pos(subtask.dest)
        top = dest[2] + 2 * CUBE_HALF if subtask.dest.endswith("_cube") else CUBE_HALF
        yaw = self._grasp_yaw(subtask.dest) if subtask.dest.endswith("_cube") else env.ee_yaw
        ee = env.ee_pos
        offset = ee - cube  # keep the cube, not the hand, over the destination
        if not self._holding(subtask.obj):
            # released (or dropped): open and rise; the env rolls back to pick if it fell off
            return self._servo(np.array([ee[0], ee[1], max(ee[2], top + HOVER)]), env.ee_yaw, -1.0)
        xy_err = np.linalg.norm(dest[:2] - cube[:2])
        if xy_err > 0.01:
            carry = max(top + 0.06, SAFE_Z - 0.02)
            goal = np.array([dest[0], dest[1], max(carry, cube[2])]) + offset
            if cube[2] < carry - 0.03 and xy_err > 0.03:
                goal = np.array([cube[0], cube[1], carry]) + offset
            return self._servo(goal, yaw, 1.0)
        if cube[2] > top + 0.006:
            return self._servo(np.array([dest[0], dest[1], top + 0.002]) + offset, yaw, 1.0)
        return self._servo(ee, yaw, -1.0)  # let go

    def _push(self, subtask: Subtask) -> np.ndarray:
        env = self.env
        cube = env.object_pos(subtask.obj)
        goal = env.push_goal(subtask)
        to_goal = goal - cube[:2]
        dist = np.linalg.norm(to_goal)
        u = to_goal / dist if dist > 1e-6 else np.array(DIRECTIONS.get(subtask.dest, (1.0, 0.0)))
        yaw = closest_equivalent(float(np.arctan2(u[1], u[0])), np.pi, env.ee_yaw)
        ee = env.ee_pos
        behind = cube[:2] - PUSH_BEHIND * u
        rel = ee[:2] - cube[:2]
        along = float(np.dot(rel, u))  # negative: behind the cube
        lateral = float(np.linalg.norm(rel - along * u))
        low = CUBE_HALF
        if along < -0.03 and lateral < 0.012 and ee[2] < low + 0.02:
            # in position: drive through the cube towards the goal, steering onto the line
            step = np.clip(dist, 0.0, 0.03)
            target = np.array([*(behind + step * u), low])
            return self._servo(target, yaw, 1.0)
        pre = np.array([*(cube[:2] - (PUSH_BEHIND + 0.015) * u), low])
        if np.linalg.norm(ee[:2] - pre[:2]) > 0.015:
            return self._travel(
                np.array([pre[0], pre[1], low + HOVER * 0.6]), yaw, 1.0, tolerance=0.015
            )
        return self._servo(pre, yaw, 1.0)
