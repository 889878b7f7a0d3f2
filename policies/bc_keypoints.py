"""``bc-keypoints``: a pixel agent in two learned stages. The cameras become a table of where every
object is (:class:`~policies.perception.ObjectPerception`, trained on the demos' frames with
labels projected from the privileged object state), and a ``bc-state`` policy acts on the
task-relative features of that table. Privileged state is used only as training labels
("learning by cheating", Chen et al. 2019); at run time the agent reads the cameras, the
proprioception and the instruction, never ``object_state``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from envs.base import IMAGE_PREFIX
from envs.task_features import GroundedState, TaskFeatures
from policies.agents import AGENTS
from policies.bc import PROPRIO, BCStatePolicy, executable
from policies.bc_config import BCKeypointsConfig
from policies.config import POLICY_BUILDERS
from policies.hand_reference import HandReference
from policies.perception import ObjectPerception, object_state_from_table, slot_identities

PRESENCE_CLIP = 5.0
"""Presence logits are clipped to +-5 before they are summed over an episode's frames."""
PRESENCE_LATCH = 12
"""Frames in a row of a positive vote after which an identity stays present for the episode."""
OBJECTS_BY_COLOUR = "objects_by_colour"
"""The observation key of every identity's ``[present, x, y, z]`` (``ManipulationEnv``'s)."""
CELL_LABELS = ("cells", "seen", "hand_cells", "hand_seen")
"""Perception's label keys in a training batch (``<key>/<camera>``)."""
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
        self.reference = HandReference()
        self.initial: np.ndarray | None = None
        self.initial_yaw = 0.0
        self._last: dict[str, Any] | None = None
        self._slots: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}

    def slots(self, text: str, kinds: tuple[str, ...]) -> np.ndarray:
        """The object slots' identities under ``text`` (:func:`slot_identities`), drawn from the
        episode's first table (after the first ``observe``) and kept for the episode."""
        if self.initial is None:
            raise RuntimeError("PerceivedScene.slots before the episode's first observe")
        key = (text, kinds)
        if key not in self._slots:
            self._slots[key] = slot_identities(self.initial, kinds, text)
        return self._slots[key]

    def observe(self, obs: dict[str, Any]) -> np.ndarray:
        """The table ``(K, 4)`` of ``obs`` (cached: the same observation is perceived once)."""
        if obs is self._last:
            return self.memory
        images, proprio = frame_inputs(self.perception, obs)
        with torch.no_grad():
            table = self.perception(images, proprio, self.reference)[0]
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
    tables = perception(images, proprio, HandReference())
    memory, remembered = None, []
    for table in tables:
        memory = remember(table, memory)
        remembered.append(memory)
    return np.stack(remembered)


def episode_features(
    perception: ObjectPerception,
    images: dict[str, np.ndarray],
    proprio: np.ndarray,
    instruction: str,
    kinds: tuple[str, ...],
) -> np.ndarray:
    """``(T, STATE_DIM)``: the state features an agent computes from what it perceives at each
    of an episode's ``T`` frames, step by step as it acts."""
    tables = perceived_tables(perception, images, proprio)
    return table_features(tables, proprio, instruction, kinds)


def table_features(
    tables: np.ndarray,
    proprio: np.ndarray,
    instruction: str,
    kinds: tuple[str, ...],
    slot_order: str = "active",
) -> np.ndarray:
    """``(T, STATE_DIM)``: the state features of an episode's identity tables ``(T, K, 4)``, in
    order, as the agent builds them: each table as an ``object_state`` with the first table's
    slot identities, bound at the first (``slot_order``: :meth:`TaskFeatures.state_features`)."""
    slots = slot_identities(tables[0], kinds, instruction)
    states = np.stack(
        [object_state_from_table(t, kinds, slots, hand_yaw(p)) for t, p in zip(tables, proprio)]
    )
    features = TaskFeatures(kinds)
    bound = features.bind(instruction, states[0])
    return features.state_features(proprio, states, states[0], bound, slot_order)


@POLICY_BUILDERS.register(BCKeypointsConfig)
class BCKeypointsPolicy(nn.Module):
    """Perception (cameras -> identity table) and a state policy (features -> action)."""

    def __init__(
        self,
        config: BCKeypointsConfig,
        image_keys: tuple[str, ...],
        image_size: int,
        action_dim: int = 5,
    ) -> None:
        super().__init__()
        self.config = config
        self.image_keys = tuple(image_keys)
        self.image_size = image_size
        self.action_dim = action_dim
        cameras = tuple(k[len(IMAGE_PREFIX) :] for k in self.image_keys)
        self.perception = ObjectPerception(
            cameras, image_size, config.width, config.hand_reference, config.weighted_rays
        )
        self._build_decision(config, action_dim)

    def _build_decision(self, config: BCKeypointsConfig, action_dim: int) -> None:
        self.state = BCStatePolicy(config.state_policy(), action_dim)

    @property
    def decision(self) -> nn.Module:
        """What acts on the perceived features (its ``loss`` reads ``features``, ``actions``);
        the second stage of training fits it on perception's output."""
        return self.state

    @property
    def normalizer(self):
        return self.state.normalizer

    def fit_normalizers(self, data: dict[str, np.ndarray]) -> None:
        """Fit the input normalisation of :attr:`decision` on the training arrays."""
        self.state.normalizer.fit(data["features"])

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None):
        """``batch``: per camera ``obs/image_<cam>`` with ``cells/<cam>`` and ``seen/<cam>``,
        ``proprio``, ``table`` (for the heights and the validation error in cm); the inputs of
        :attr:`decision` (``features`` and ``actions``: a batch of its own size)."""
        device = self.normalizer.mean.device
        tensor = lambda x: torch.as_tensor(x, device=device)
        images = {c: tensor(batch[f"obs/{IMAGE_PREFIX}{c}"]) for c in self.perception.cameras}
        labels = {k: tensor(v) for k, v in batch.items() if k.split("/")[0] in CELL_LABELS}
        labels["heights"] = tensor(batch["table"])[..., 3]
        perception_loss, info = self.perception.loss(images, labels)
        decision_loss, decision_info = self.decision.loss(batch)
        loss = perception_loss + decision_loss
        info |= {("state_loss" if k == "loss" else k): v for k, v in decision_info.items()}
        info |= {"loss": float(loss.detach()), "perception_loss": float(perception_loss.detach())}
        if not self.training:  # validation: where the perceived objects are, in centimetres
            table = np.asarray(batch["table"])
            present = table[..., 0] > 0
            seen = self.perception(images, np.asarray(batch["proprio"]))
            err = np.linalg.norm(seen[..., 1:4] - table[..., 1:4], axis=-1)[present]
            info["position_error_cm"] = float(err.mean() * 100)
            info["presence_accuracy"] = float(((seen[..., 0] > 0) == present).mean())
        return loss, info


@AGENTS.register("bc-keypoints")
class BCKeypointsAgent:
    """Perceives the objects every step and acts with the state policy on them. An object no
    camera sees (an arm in the way) keeps its last seen position."""

    def __init__(self, policy: BCKeypointsPolicy, features: TaskFeatures) -> None:
        self.policy = policy.eval()
        self.kinds = features.kinds
        self.state = GroundedState(features.kinds)
        self.scene = PerceivedScene(policy.perception)
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.state.reset(instruction)
        self.scene.reset()
        self._perceived: tuple[Any, np.ndarray] | None = None
        self.memory = self.policy.state.memory()
        """The steps :meth:`act` took this episode, as far back as the state policy reads them
        (``config.previous_action``, ``config.history``)."""

    @property
    def previous(self) -> np.ndarray:
        """The last action :meth:`act` returned (zeros at the start)."""
        return self.memory.last_action

    def features(self, obs: dict[str, Any]) -> np.ndarray:
        """The task features of what perception sees in ``obs``; perceived once per observation
        (``act`` then ``embed`` on the same ``obs``, as a residual does, perceive it once)."""
        if self._perceived is not None and self._perceived[0] is obs:
            return self._perceived[1]
        proprio = np.asarray(obs[PROPRIO], dtype=np.float32)
        table = self.scene.observe(obs)
        object_state = object_state_from_table(
            table, self.kinds, self.scene.slots(self.instruction, self.kinds), hand_yaw(proprio)
        )
        features = self.state({PROPRIO: proprio, "object_state": object_state})
        self._perceived = (obs, features)  # holding obs keeps its identity from being reused
        return features

    def decision_input(self, obs: dict[str, Any]) -> np.ndarray:
        """What the state policy reads: :meth:`features`, and the past steps when the policy
        was trained with them (:mod:`policies.history`)."""
        return self.memory.inputs(self.features(obs))

    def raw_action(self, obs: dict[str, Any]) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(self.decision_input(obs))[None]
            return self.policy.state(x)[0].numpy()

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        action = executable(self.raw_action(obs))
        self.memory.record(self.features(obs), action)
        return action

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        """The state policy's last hidden layer on the perceived features: what a residual
        policy reads."""
        with torch.no_grad():
            x = torch.from_numpy(self.decision_input(obs))[None]
            return self.policy.state.embed(x)[0].numpy()

    @property
    def subtask(self) -> str:
        return "none"
