"""The geometry of instruction links: what a policy reads of the objects a link names.

A *link* is one thing an instruction asks: act on one scene object, towards another (a pad or a
cube to put it on or push it to), in a direction, or alone (reach it). Given the links, the
features below say where their objects are relative to the hand, where each should go and
whether it is there yet. How the links are found is another matter: the instruction parser
(:mod:`envs.task_features`, for the parsed-language agents and training labels) or a learned
model (the VLA, :mod:`policies.grounded_vla`, which never imports the parser).

numpy only; the layout of ``object_state`` is the env's (see ``ManipulationEnv._object_state``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.base import PLACE_XY, PUSH_DISTANCE, PUSH_TOLERANCE, REACH_TOLERANCE
from envs.language import COLOR_NAMES, DIRECTIONS
from envs.scene import CUBE_HALF, PAD_HALF

KINDS: tuple[str, ...] = ("cube", "pad", "target")
DIRECTION_NAMES: tuple[str, ...] = tuple(DIRECTIONS)

GOAL_TESTS = ("reach", "on_pad", "pushed_to")
"""How a one-object goal is judged reached, as the env's subtask tests judge it: the hand within
``REACH_TOLERANCE`` of the target; the cube's centre inside the pad (5 mm from its edge) and
resting; the cube within ``PUSH_TOLERANCE`` of the pushed-to point in the plane."""


def goal_reached(achieved: np.ndarray, desired: np.ndarray, test: str) -> np.ndarray:
    """``(N,) bool`` (or a scalar bool for single positions): which achieved positions meet
    their desired ones under ``test`` (one of :data:`GOAL_TESTS`). Both the links' done bits
    below and the goal-conditioned view of HER (:mod:`envs.goal_view`) judge with it."""
    if test == "reach":
        return np.linalg.norm(achieved - desired, axis=-1) < REACH_TOLERANCE
    if test == "on_pad":
        inside = np.all(np.abs(achieved[..., :2] - desired[..., :2]) < PAD_HALF - 0.005, axis=-1)
        return inside & (achieved[..., 2] < CUBE_HALF + 0.01)
    if test == "pushed_to":
        return np.linalg.norm(achieved[..., :2] - desired[..., :2], axis=-1) < PUSH_TOLERANCE
    raise ValueError(f"unknown goal test {test!r}; accepted: {', '.join(GOAL_TESTS)}")


@dataclass(frozen=True)
class Link:
    """One instruction link: act on scene object ``obj`` towards object ``dest`` or in
    ``direction`` (neither: reach ``obj``), pushing it along the table when ``pushed``."""

    obj: int
    dest: int | None
    direction: str | None
    pushed: bool = False


def object_slices(kinds: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """(kind, start, colour one-hot start) of each object in ``object_state``, scene order."""
    out, i = [], 0
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown object kind {kind!r}; known: {KINDS}")
        size = 10 if kind == "cube" else 3
        out.append((kind, i, i + size))
        i += size + len(COLOR_NAMES)
    return out


def object_state_dim(kinds: tuple[str, ...]) -> int:
    return sum((10 if k == "cube" else 3) + len(COLOR_NAMES) for k in kinds)


MAX_LINKS = 4
"""Link slots: a chain has at most four instructions, sort three."""
LINK_DIM = 30
"""Per link: present, kind one-hot, position, position minus hand, yaw relative to the hand
(sin/cos of 4x the difference), destination present, its kind one-hot, its yaw relative to the
hand, direction one-hot, destination point (a pad's or cube's centre, a push goal, the target),
destination minus position, done, pushed (the instruction says push, not carry)."""
PROPRIO_USED = (0, 1, 2, 3, 4, 5)
"""Hand position, sin/cos yaw and gripper opening; velocities are left out (a learner that
sees them learns to continue the current motion)."""
STATE_DIM = len(PROPRIO_USED) + 1 + MAX_LINKS * LINK_DIM
SLOT_ORDERS: tuple[str, ...] = ("active", "instruction")


def _check(kinds: tuple[str, ...], object_state: np.ndarray) -> np.ndarray:
    state = np.asarray(object_state, dtype=np.float32)
    dim = object_state_dim(kinds)
    if state.shape[-1] != dim:
        raise ValueError(
            f"object_state has {state.shape[-1]} entries; a scene of {kinds} has {dim}"
        )
    return state


def link_features(
    kinds: tuple[str, ...],
    proprio: np.ndarray,
    object_state: np.ndarray,
    initial_object_state: np.ndarray,
    links: list[Link],
    slot_order: str = "active",
) -> np.ndarray:
    """``(T, STATE_DIM)`` (or ``(STATE_DIM,)``) features of ``proprio (T, P)`` and
    ``object_state (T, D)`` of a scene of ``kinds`` under ``links`` (at most ``MAX_LINKS``);
    ``initial_object_state (D,)`` is the episode's first one (a push "to the left" is measured
    from where the cube started).

    Link slots start at the *active* link, the first one whose object is not yet where the
    instruction wants it (read from the geometry, as the env's subtask test does), followed
    by the links after it and then the links already done; a memoryless learner then always
    finds what to act on in slot 0. ``slot_order="instruction"`` keeps the links in the
    instruction's order instead: a reader that tracks a plan position (System 2) then finds
    link ``k`` in slot ``k`` whatever the geometry says.
    """
    kinds = tuple(kinds)
    slices = object_slices(kinds)
    links = list(links)[:MAX_LINKS]
    if slot_order not in SLOT_ORDERS:
        raise ValueError(f"unknown slot_order {slot_order!r}; accepted: {SLOT_ORDERS}")
    single = np.ndim(proprio) == 1
    proprio = np.atleast_2d(np.asarray(proprio, dtype=np.float32))
    state = np.atleast_2d(_check(kinds, object_state))
    initial = _check(kinds, initial_object_state)
    n = len(proprio)
    hand = proprio[:, :3]
    hand_yaw = np.arctan2(proprio[:, 3], proprio[:, 4])
    feats = np.zeros((n, MAX_LINKS, LINK_DIM), dtype=np.float32)
    done = np.ones((n, MAX_LINKS), dtype=bool)  # absent links count as done
    for k, link in enumerate(links):
        f = feats[:, k]
        kind, pos, yaw = _object(slices, state, link.obj)
        f[:, 0] = 1.0
        f[:, 1 + KINDS.index(kind)] = 1.0
        f[:, 4:7] = pos
        f[:, 7:10] = pos - hand
        if yaw is not None:
            f[:, 10] = np.sin(4.0 * (yaw - hand_yaw))  # a cube repeats every quarter turn
            f[:, 11] = np.cos(4.0 * (yaw - hand_yaw))
        if link.dest is not None:
            dest_kind, dest, dest_yaw = _object(slices, state, link.dest)
            f[:, 12] = 1.0
            f[:, 13 + KINDS.index(dest_kind)] = 1.0
            if dest_yaw is not None:
                f[:, 16] = np.sin(4.0 * (dest_yaw - hand_yaw))
                f[:, 17] = np.cos(4.0 * (dest_yaw - hand_yaw))
            if dest_kind == "cube":  # stacking: rest one cube height above it
                dxy = np.linalg.norm(dest[:, :2] - pos[:, :2], axis=1)
                done[:, k] = (dxy < PLACE_XY) & (
                    np.abs(pos[:, 2] - dest[:, 2] - 2 * CUBE_HALF) < 0.008
                )
            else:
                done[:, k] = goal_reached(pos, dest, "on_pad")
        elif link.direction is not None:
            start = initial[slices[link.obj][1] : slices[link.obj][1] + 3]
            goal = np.array(
                [*(start[:2] + PUSH_DISTANCE * np.array(DIRECTIONS[link.direction])), CUBE_HALF]
            )
            dest = np.broadcast_to(goal, pos.shape)
            f[:, 18 + DIRECTION_NAMES.index(link.direction)] = 1.0
            done[:, k] = goal_reached(pos, dest, "pushed_to")
        else:  # reach
            dest = pos
            done[:, k] = goal_reached(hand, pos, "reach")
        f[:, 22:25] = dest
        f[:, 25:28] = dest - pos
        f[:, 28] = done[:, k]
        f[:, 29] = link.pushed
    if slot_order == "active":  # the active link, the links after it, then those before it
        active = np.argmin(done, axis=1)  # first link not done (all done: 0)
        order = (active[:, None] + np.arange(MAX_LINKS)[None]) % MAX_LINKS
        feats = np.take_along_axis(feats, order[:, :, None], axis=1)
    progress = (done[:, : max(len(links), 1)].sum(1) / max(len(links), 1))[:, None]
    out = np.concatenate(
        [proprio[:, list(PROPRIO_USED)], progress, feats.reshape(n, -1)], axis=1
    ).astype(np.float32)
    return out[0] if single else out


def _object(slices, state: np.ndarray, index: int):
    """(kind, positions (T, 3), yaw (T,) or None) of a scene object."""
    kind, start, _ = slices[index]
    pos = state[:, start : start + 3]
    if kind != "cube":
        return kind, pos, None
    w, z = state[:, start + 3], state[:, start + 6]
    return kind, pos, 2.0 * np.arctan2(z, w)  # the cubes only turn about the vertical
