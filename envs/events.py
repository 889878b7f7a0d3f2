"""World events: the world changes mid-episode, at a moment set by the task's phase.

Genie 3 lets a user prompt events into a generated world; here the events happen in physics.
Each event fires at most once per episode, at its trigger:

* ``approach``: the hand first comes within 6 cm of the current subtask's object;
* ``grasp``: a pick subtask first completes (the cube is held and lifted); tasks without a
  pick use ``approach``.

Set them with ``TaskConfig.events`` or ``reset(options={"events": [...]})``; ``info["events_fired"]``
lists (comma-separated) those that fired so far and ``info["event_step"]`` when the first did.
The recovery rate of an agent is its success among episodes in which the event fired.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from envs.placement import free_spot

if TYPE_CHECKING:
    from envs.base import ManipulationEnv

APPROACH_DISTANCE = 0.06


@dataclass(frozen=True)
class WorldEvent:
    name: str
    trigger: str
    what: str
    tasks: tuple[str, ...] = ()

    def applies_to(self, task: str) -> bool:
        return not self.tasks or task in self.tasks


_CATALOGUE = (
    WorldEvent(
        "move-target",
        "grasp",
        "the destination (pad, base cube or target) jumps elsewhere",
        ("reach", "push", "pick-place", "stack", "chain", "sort"),
    ),
    WorldEvent(
        "move-cube",
        "approach",
        "the cube about to be picked or pushed jumps elsewhere",
        ("push", "pick-place", "stack", "chain", "sort"),
    ),
    WorldEvent("push-arm", "grasp", "the arm is shoved (a joint-velocity impulse)"),
    WorldEvent(
        "change-friction",
        "grasp",
        "the held cube becomes slippery (friction / 5)",
        ("pick-place", "stack", "chain", "sort"),
    ),
    WorldEvent(
        "change-instruction",
        "grasp",
        "the instruction names another destination",
        ("reach", "pick-place", "stack"),
    ),
)
EVENTS: dict[str, WorldEvent] = {e.name: e for e in _CATALOGUE}


def check_events(events: Iterable[str], task: str | None = None) -> tuple[str, ...]:
    if isinstance(events, str):
        events = [e for e in events.split(",") if e.strip()]
    out = []
    for name in events:
        name = str(name).strip()
        if name not in EVENTS:
            raise ValueError(f"unknown world event {name!r}; known events: {', '.join(EVENTS)}")
        if task is not None and not EVENTS[name].applies_to(task):
            raise ValueError(
                f"world event {name!r} does not apply to {task!r}; it applies to "
                f"{', '.join(EVENTS[name].tasks)}"
            )
        out.append(name)
    return tuple(dict.fromkeys(out))


class WorldEvents:
    """The events of one episode: watches the triggers, fires each event once."""

    def __init__(
        self, env: ManipulationEnv, events: tuple[str, ...], rng: np.random.Generator
    ) -> None:
        self.pending = list(events)
        self.fired: list[str] = []
        self.first_step = -1
        self.rng = rng
        self._has_pick = any(s.verb == "pick" for s in env.plan)

    def _triggered(self, env: ManipulationEnv, name: str, completed: list[str]) -> bool:
        trigger = EVENTS[name].trigger
        if trigger == "grasp" and self._has_pick:
            return any(label.startswith("pick(") for label in completed)
        current = env.current_subtask
        if current is None:
            return False
        return float(np.linalg.norm(env.ee_pos - env.object_pos(current.obj))) < APPROACH_DISTANCE

    def after_step(self, env: ManipulationEnv, completed: list[str]) -> bool:
        """Fire the events whose trigger holds now; returns whether the world changed."""
        changed = False
        for name in list(self.pending):
            if self._triggered(env, name, completed) and _FIRE[name](env, self.rng):
                self.pending.remove(name)
                self.fired.append(name)
                if self.first_step < 0:
                    self.first_step = env._step_count
                changed = True
        if changed:
            mujoco.mj_forward(env.model, env.data)
            env._layout_object_state()
        return changed


def _free_spot(
    env: ManipulationEnv, rng: np.random.Generator, away_from: list[str], far: float = 0.12
) -> np.ndarray:
    """A table spot at least 8 cm from every object and ``far`` from where ``away_from`` are."""
    others = [(env.data.xpos[env._body[o.name]][:2], 0.08) for o in env.objects]
    return free_spot(rng, others + [(env.object_pos(n)[:2], far) for n in away_from])


def _move(env: ManipulationEnv, name: str, xy: np.ndarray) -> None:
    body = env.body_of(name)
    kind = env._kinds[body]
    if kind == "pad":
        env.model.body_pos[env._body[body]][:2] = xy
        env.perturbation.note_model_change()
    elif kind == "target":
        env.data.mocap_pos[env._mocap[body]][:2] = xy
    else:
        a, v = env._qadr[body], env._dadr[body]
        env.data.qpos[a : a + 2] = xy
        env.data.qvel[v : v + 6] = 0.0


def _destination(env: ManipulationEnv) -> str | None:
    current = env.current_subtask
    if current is None:
        return None
    if current.verb == "reach":
        return current.obj
    if current.dest is not None and "_" in current.dest:
        return current.dest
    return None


def _move_target(env: ManipulationEnv, rng: np.random.Generator) -> bool:
    dest = _destination(env)
    if dest is None:
        return False
    _move(env, dest, _free_spot(env, rng, [dest]))
    return True


def _move_cube(env: ManipulationEnv, rng: np.random.Generator) -> bool:
    current = env.current_subtask
    if current is None or not current.obj.endswith("_cube") or env.is_touched(current.obj):
        return False
    _move(env, current.obj, _free_spot(env, rng, [current.obj]))
    return True


def _push_arm(env: ManipulationEnv, rng: np.random.Generator) -> bool:
    direction = rng.normal(size=5)
    env.data.qvel[env._arm_dadr] += 1.5 * direction / np.linalg.norm(direction)
    return True


def _change_friction(env: ManipulationEnv, rng: np.random.Generator) -> bool:
    current = env.current_subtask
    if current is None or not current.obj.endswith("_cube"):
        return False
    env.model.geom_friction[env._geom[env.body_of(current.obj)], 0] /= 5.0
    env.perturbation.note_model_change()
    return True


def _change_instruction(env: ManipulationEnv, rng: np.random.Generator) -> bool:
    dest = _destination(env)
    if dest is None:
        return False
    kind = dest.split("_", 1)[1]
    current = env.current_subtask
    carried = current.obj if current.verb == "place" else None
    others = tuple(name for name in env.names if name.endswith(f"_{kind}") and name != carried)
    if len(others) < 2:
        return False
    env.swap_instruction(rng, only=others)
    return True


_FIRE = {
    "move-target": _move_target,
    "move-cube": _move_cube,
    "push-arm": _push_arm,
    "change-friction": _change_friction,
    "change-instruction": _change_instruction,
}
