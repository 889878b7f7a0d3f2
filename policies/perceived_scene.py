"""What an agent holds of the objects it perceives over an episode: each frame's identity table
(:class:`~policies.perception.ObjectPerception`), with objects no camera sees now kept where they
were last seen, which identities the scene holds (a causal vote), and the episode's first table.
Shared by every agent on perceived objects, whatever reads the instruction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from envs.base import IMAGE_PREFIX, PROPRIO
from policies.perception import CELL_LABELS, ObjectPerception  # noqa: F401

PRESENCE_CLIP = 5.0
"""Presence logits are clipped to +-5 before they are summed over an episode's frames."""
PRESENCE_LATCH = 12
"""Frames in a row of a positive vote after which an identity stays present for the episode."""
OBJECTS_BY_COLOUR = "objects_by_colour"
"""The observation key of every identity's ``[present, x, y, z]`` (``ManipulationEnv``'s)."""
PERCEIVED_OBJECTS = "perceived_objects"
"""Where a trained object perception puts each object, in ``objects_by_colour``'s layout."""


def frame_inputs(perception: ObjectPerception, obs: dict[str, Any]):
    """One observation as perception reads it: the cameras' images ``{camera: (1, H, W, 3)}``
    and the proprioception ``(1, P)``."""
    images = {
        c: torch.from_numpy(np.ascontiguousarray(obs[f"{IMAGE_PREFIX}{c}"]))[None]
        for c in perception.cameras
    }
    return images, np.asarray(obs[PROPRIO], dtype=np.float32)[None]


class PresenceVote:
    """Which identities a scene holds, causally, from each frame's presence logits ``(K,)``: an
    identity is present while the sum of its clipped logits so far is positive, and for good
    once that sum has stayed positive for :data:`PRESENCE_LATCH` frames in a row.

    Which objects a scene holds does not change within an episode, while a frame's presence
    does err both ways: a wrist camera close to a cube can see an absent identity of a similar
    colour for a frame or two (the vote outweighs such phantoms), and a cube the hand closes
    over goes unseen for the 20-30 frames it is carried, which outvoted its first sightings
    (the held cube went missing mid-carry in 2 of 6 held-out pick-place episodes). The latch
    keeps it: objects do not vanish. 12 frames was chosen on 60 episodes no world model is
    judged on (docs/DECISIONS.md)."""

    def __init__(self) -> None:
        self.votes: np.ndarray | None = None
        self.run: np.ndarray | None = None
        self.latched: np.ndarray | None = None

    def update(self, logits: np.ndarray) -> np.ndarray:
        """Add one frame's logits ``(K,)``; return the identities present so far ``(K,) bool``."""
        vote = np.clip(logits, -PRESENCE_CLIP, PRESENCE_CLIP)
        if self.votes is None:
            self.votes, self.run = vote, np.zeros(len(vote), int)
            self.latched = np.zeros(len(vote), bool)
        else:
            self.votes = self.votes + vote
        self.run = np.where(self.votes > 0, self.run + 1, 0)
        self.latched |= self.run >= PRESENCE_LATCH
        return self.present

    @property
    def present(self) -> np.ndarray:
        if self.votes is None:
            raise RuntimeError("PresenceVote.present before the first update")
        return (self.votes > 0) | self.latched


def voted_objects(present: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``(..., K * 4)`` in ``objects_by_colour``'s layout from which identities are present
    ``(..., K) bool`` (:class:`PresenceVote`) and tables ``where (..., K, 4)``: a present
    identity where the table puts it, zeros for the others."""
    present = np.asarray(present, np.float32)[..., None]
    out = np.concatenate([present, where[..., 1:] * present], -1)
    return out.reshape(*out.shape[:-2], -1).astype(np.float32)


def hand_yaw(proprio: np.ndarray) -> float:
    return float(np.arctan2(proprio[3], proprio[4]))


def remember(table: np.ndarray, memory: np.ndarray | None) -> np.ndarray:
    """``table`` with each identity no camera sees now (presence logit <= 0) taken from
    ``memory``, the last table, where it was seen."""
    table = table.copy()
    if memory is not None:
        unseen = (table[:, 0] <= 0) & (memory[:, 0] > 0)
        table[unseen] = memory[unseen]
    return table


class PerceivedScene:
    """One episode's perceived objects: the identity table of the latest observation, with the
    objects no camera sees now kept where they were last seen, and the episode's first table
    (where an instruction is bound, and pushes are measured from). Perceives each observation
    once, however many parts of an agent read it."""

    def __init__(self, perception: ObjectPerception) -> None:
        self.perception = perception
        self.reset()

    def reset(self) -> None:
        self.memory: np.ndarray | None = None
        self.presence = PresenceVote()
        self.initial: np.ndarray | None = None
        self.initial_yaw = 0.0
        self._last: dict[str, Any] | None = None

    def observe(self, obs: dict[str, Any]) -> np.ndarray:
        """The table ``(K, 4)`` of ``obs`` (cached: the same observation is perceived once)."""
        if obs is self._last:
            return self.memory
        images, proprio = frame_inputs(self.perception, obs)
        with torch.no_grad():
            table = self.perception(images, proprio)[0]
        return self.take(obs, table)

    def take(self, obs: dict[str, Any], table: np.ndarray) -> np.ndarray:
        """Hold ``table (K, 4)`` as what ``obs`` shows (memory, presence vote, the episode's
        first table): :meth:`observe` after perceiving, or a reference table given instead of
        perception (``benchmarks/true_table.py``)."""
        self.memory = remember(table, self.memory)
        self.presence.update(table[:, 0])
        if self.initial is None:
            proprio = np.asarray(obs[PROPRIO], dtype=np.float32)
            self.initial, self.initial_yaw = self.memory.copy(), hand_yaw(proprio)
        self._last = obs
        return self.memory

    def objects_by_colour(self) -> np.ndarray:
        """``(K * 4,)``: the scene so far in ``objects_by_colour``'s layout, as a world model's
        slots start from it: the identities :class:`PresenceVote` holds present, where last seen
        (zeros for the others); see :func:`embodied.training.world_model.perceived_objects`,
        its offline twin."""
        if self.memory is None:
            raise RuntimeError("PerceivedScene.objects_by_colour before the first observe")
        return voted_objects(self.presence.present, self.memory)


def perceived_tables(
    perception: ObjectPerception, images: dict[str, np.ndarray], proprio: np.ndarray
) -> np.ndarray:
    """``(T, K, 4)``: the tables an agent holds at each of an episode's ``T`` frames (``images``
    per camera name), step by step as it acts: what it sees, and where it last saw the rest."""
    images = {c: torch.from_numpy(v) for c, v in images.items()}
    tables = perception(images, proprio)
    memory, remembered = None, []
    for table in tables:
        memory = remember(table, memory)
        remembered.append(memory)
    return np.stack(remembered)
