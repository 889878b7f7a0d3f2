"""Scripted experts: solve every task from privileged state, one skill per subtask verb.

The expert reads the env's current subtask (``env.current_subtask``) and the true poses of the
objects. Each skill is a *feedback law*: the action is a continuous function of what the robot
observes now (hand pose, gripper opening, object poses), with no latched phase and no hidden
counter, so a memoryless learner can imitate it and a teacher can label any state (DAgger).

The laws are funnels, not gates (docs/DECISIONS.md, "Imitable experts"):

* the hand descends in proportion to the remaining xy error, so a few millimetres of bias
  lower it a little less instead of keeping it hovering above a threshold forever;
* the gripper command is a ramp of the distance between the cube and the grasp point (or the
  destination), +1 inside, -1 outside, crossing 0 at the tolerance the physics needs;
* horizontal motion slows while the hand is below the height it should travel at, so it
  rises before it crosses the table, without a phase switch.

It recovers after a drop: the env rolls ``place`` back to ``pick`` and the expert picks again.
Optional Gaussian action noise makes the demos diverse; :meth:`ScriptedExpert.act` returns the
clean action, the executed action and the subtask label it is executing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.base import MAX_REACH, POS_STEP, YAW_LIMIT, YAW_STEP, ManipulationEnv
from envs.language import DIRECTIONS, Subtask

HOVER = 0.09
"""Height above an object's centre for approach and carry (m)."""
SAFE_Z = 0.11
"""End-effector height when nothing is left to do (m)."""
PUSH_BEHIND = 0.042
"""End-effector distance behind a cube's centre when pushing it (m)."""
DESCENT_SLOPE = 4.0
"""Metres of height above the grasp per metre of remaining xy error (the funnel's slope)."""
DESCENT_DEADBAND = 0.005
"""Remaining xy error (m) at which the funnel reaches the bottom."""
GRASP_RADIUS = 0.013
"""Distance (m) from the grasp point within which the gripper closes (the ramp crosses 0)."""
GRIP_RAMP = 0.004
"""Width (m) over which the gripper command goes from +1 to -1."""
HOLD_RADIUS = 0.022
"""A cube this close to the grasp point, with the gripper closed on it, is held (m)."""
CLOSED_ON_CUBE = 0.6
"""Gripper opening below which the fingers are closed on a cube (a cube leaves 0.27)."""
LIFT = 0.07
"""How far above its current height a grasped cube is pulled while picking (m)."""
CARRY = 0.07
"""Height of a carried cube's bottom above the destination's top while far from it (m)."""
RELEASE_XY = {"pad": 0.02, "cube": 0.007}
"""Release when the carried cube is this close to its destination in xy (m)."""
RELEASE_Z = 0.008
"""... and its bottom at most this high above the destination's top (m)."""
RISE_FIRST = 0.03
"""Horizontal motion stops when the hand is this far below its travel height (m)."""


def closest_equivalent(
    angle: float, period: float, current: float, limit: float = YAW_LIMIT - 0.05
) -> float:
    """Of ``angle + k * period`` inside [-limit, limit], the one nearest ``current``."""
    base = angle - period * np.round(angle / period)
    candidates = [base + k * period for k in range(-4, 5) if abs(base + k * period) <= limit]
    return float(min(candidates, key=lambda a: abs(a - current)))


def ramp(x: float, centre: float, width: float) -> float:
    """+1 below ``centre - width / 2``, -1 above ``centre + width / 2``, linear between."""
    return float(np.clip((centre - x) * (2.0 / width), -1.0, 1.0))


def funnel(xy_error: float, ceiling: float) -> float:
    """Height above the goal for a remaining xy error: 0 near it, ``ceiling`` far from it."""
    return float(np.clip(DESCENT_SLOPE * (xy_error - DESCENT_DEADBAND), 0.0, ceiling))


@dataclass
class ExpertStep:
    action: np.ndarray
    """The expert's clean action (5,)."""
    executed: np.ndarray
    """The action to execute: ``action`` plus noise, clipped to [-1, 1]."""
    subtask: str
    """The label of the subtask the expert is executing."""


class ScriptedExpert:
    """Funnel-shaped feedback laws over the env's privileged state."""

    def __init__(self, env: ManipulationEnv, noise: float = 0.0, seed: int | None = None) -> None:
        if noise < 0:
            raise ValueError(f"expert noise must be >= 0, got {noise}")
        self.env = env
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.gain = 1.0 / POS_STEP

    def act(self, obs: dict | None = None) -> ExpertStep:
        action, label = self.label()
        executed = action.copy()
        if self.noise > 0:
            executed[:4] += self.rng.normal(0.0, self.noise, size=4)
            executed = np.clip(executed, -1.0, 1.0)
        return ExpertStep(action=action, executed=executed.astype(np.float32), subtask=label)

    def label(self) -> tuple[np.ndarray, str]:
        """The clean action for the env's current state and the subtask it serves (no noise, no
        randomness: a teacher's label for DAgger)."""
        env = self.env
        subtask = env.current_subtask
        if subtask is None:  # all done: hold still, open, above the table
            ee = env.ee_pos
            return self._servo(
                np.array([ee[0], ee[1], max(ee[2], SAFE_Z)]), env.ee_yaw, -1.0
            ), "none"
        skill = {"reach": self._reach, "pick": self._pick, "place": self._place, "push": self._push}
        return skill[subtask.verb](subtask), subtask.label

    # ------------------------------------------------------------------ motion primitives

    def _servo(self, target: np.ndarray, yaw: float, grip: float) -> np.ndarray:
        """Proportional move towards ``target``; horizontal motion waits while the hand is well
        below the target height (continuous: it fades out over ``RISE_FIRST``)."""
        env = self.env
        delta = (target - env.ee_pos) * self.gain
        below = target[2] - env.ee_pos[2]
        delta[:2] *= float(np.clip(1.0 - (below - 0.01) / RISE_FIRST, 0.0, 1.0))
        norm = np.max(np.abs(delta))
        if norm > 1.0:
            delta = delta / norm
        dyaw = np.clip((yaw - env.ee_yaw) / YAW_STEP, -1.0, 1.0)
        return np.array([*delta, dyaw, grip], dtype=np.float32)

    def _grasp_yaw(self, name: str) -> float:
        """A hand yaw that lines the fingers up with the cube's faces (a cube repeats every quarter
        turn; of the equivalent yaws, the one nearest the hand's, so it never flips)."""
        return closest_equivalent(self.env.object_yaw(name), np.pi / 2, self.env.ee_yaw)

    def _reachable(self, xy: np.ndarray) -> np.ndarray:
        """``xy`` pulled inside the disc the hand can reach (near the table's far corners the
        ideal pre-push point can lie beyond it)."""
        base = self.env.base_xy
        radial = xy - base
        reach = float(np.linalg.norm(radial))
        limit = MAX_REACH - 0.01
        return base + radial * (limit / reach) if reach > limit else xy

    def _holding(self, name: str) -> bool:
        """The cube sits at the grasp point with the fingers closed on it (geometry, no contacts)."""
        env = self.env
        offset = env.object_pos(name) - env.ee_pos
        return bool(
            env.gripper_opening < CLOSED_ON_CUBE and float(np.max(np.abs(offset))) < HOLD_RADIUS
        )

    # ------------------------------------------------------------------ skills

    def _reach(self, subtask: Subtask) -> np.ndarray:
        return self._servo(self.env.object_pos(subtask.obj), 0.0, -1.0)

    def _pick(self, subtask: Subtask) -> np.ndarray:
        env = self.env
        cube = env.object_pos(subtask.obj)
        ee = env.ee_pos
        yaw = self._grasp_yaw(subtask.obj)
        xy_err = float(np.linalg.norm(cube[:2] - ee[:2]))
        yaw_err = abs(yaw - env.ee_yaw)
        # grip: close when the cube is at the grasp point (a ramp of the distance)
        distance = max(xy_err, abs(ee[2] - cube[2]))
        grip = ramp(distance, GRASP_RADIUS, GRIP_RAMP)
        closing = max(grip, 0.0)
        # height: the funnel, raised while the fingers are misaligned or not yet open
        opening = env.gripper_opening
        height = funnel(xy_err, HOVER) + 0.15 * max(yaw_err - 0.1, 0.0)
        height += (1.0 - closing) * 0.1 * max(0.9 - opening, 0.0)
        # lift once the fingers have closed on the cube
        lift = closing * float(np.clip((CLOSED_ON_CUBE - opening) / 0.2, 0.0, 1.0)) * LIFT
        target = np.array([cube[0], cube[1], cube[2] + max(min(height, HOVER), lift)])
        return self._servo(target, yaw, grip)

    def _place(self, subtask: Subtask) -> np.ndarray:
        env = self.env
        cube = env.object_pos(subtask.obj)
        dest = env.object_pos(subtask.dest)
        on_cube = subtask.dest.endswith("_cube")
        top = (
            dest[2] + 2 * env.cube_half if on_cube else env.cube_half
        )  # the carried cube's centre, placed
        yaw = self._grasp_yaw(subtask.dest) if on_cube else env.ee_yaw
        ee = env.ee_pos
        if not self._holding(subtask.obj):
            # released (or dropped): open and rise; the env rolls back to pick if it fell off
            return self._servo(np.array([ee[0], ee[1], max(ee[2], top + HOVER)]), env.ee_yaw, -1.0)
        offset = ee - cube  # move the cube, not the hand, over the destination
        xy_err = float(np.linalg.norm(dest[:2] - cube[:2]))
        height = funnel(xy_err, CARRY)
        target = np.array([dest[0], dest[1], top + height]) + offset
        # release: a ramp of how far the cube is from resting on the destination
        tolerance = RELEASE_XY["cube" if on_cube else "pad"]
        distance = max(xy_err / tolerance, max(cube[2] - top, 0.0) / RELEASE_Z)
        grip = -ramp(distance, 1.0, 0.4)
        return self._servo(target, yaw, grip)

    def _push(self, subtask: Subtask) -> np.ndarray:
        env = self.env
        cube = env.object_pos(subtask.obj)
        goal = env.push_goal(subtask)
        to_goal = goal - cube[:2]
        dist = float(np.linalg.norm(to_goal))
        u = to_goal / dist if dist > 1e-6 else np.array(DIRECTIONS.get(subtask.dest, (1.0, 0.0)))
        yaw = closest_equivalent(float(np.arctan2(u[1], u[0])), np.pi, env.ee_yaw)
        ee = env.ee_pos
        low = env.cube_half
        pre = self._reachable(cube[:2] - (PUSH_BEHIND + 0.015) * u)
        rel = ee[:2] - cube[:2]
        along = float(np.dot(rel, u))  # negative: behind the cube
        lateral = float(np.linalg.norm(rel - along * u))
        # how well the hand sits behind the cube on the line to the goal, low (0..1)
        aligned = (
            float(np.clip(1.0 - (lateral - 0.008) / 0.012, 0.0, 1.0))
            * float(np.clip((-along - 0.02) / 0.01, 0.0, 1.0))  # in contact: along = -0.032
            * float(np.clip(1.0 - (ee[2] - low - 0.015) / 0.015, 0.0, 1.0))
        )
        drive = cube[:2] - PUSH_BEHIND * u + min(dist, 0.03) * u
        xy = (1.0 - aligned) * pre + aligned * drive
        height = (1.0 - aligned) * funnel(float(np.linalg.norm(ee[:2] - pre)), HOVER * 0.6)
        # fingers still open (after a place): rise with them open, close once clear of the
        # cubes, and only then come down, or they would grasp what they straddle
        opening = env.gripper_opening
        grip = 1.0 if opening < 0.15 else ramp(-ee[2], -0.06, 0.01)
        height = max(height, 0.3 * float(np.clip(opening - 0.1, 0.0, 0.2)))
        return self._servo(np.array([xy[0], xy[1], low + height]), yaw, grip)
