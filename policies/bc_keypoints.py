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
from envs.link_features import KINDS, object_slices
from envs.task_features import GroundedState, TaskFeatures, parse_mentions
from policies.agent_registry import AGENTS
from policies.bc import PROPRIO, BCStatePolicy, executable
from policies.bc_config import BCKeypointsConfig
from policies.config import POLICY_BUILDERS
from policies.perceived_scene import (  # noqa: F401  (re-exported)
    CELL_LABELS,
    OBJECTS_BY_COLOUR,
    PERCEIVED_OBJECTS,
    PRESENCE_LATCH,
    PerceivedScene,
    PresenceVote,
    frame_inputs,
    hand_yaw,
    perceived_tables,
)
from policies.perception import NUM_IDENTITIES, ObjectPerception, identity, object_state_from_table


def slot_identities(table: np.ndarray, kinds: tuple[str, ...], instruction: str) -> np.ndarray:
    """``(len(kinds),) int``: the identity each object slot of ``kinds`` takes from ``table``:
    per kind, the identities the instruction names first (in the order it names them), then the
    most present others.

    An agent draws this once per episode, from its first table (the env's scene order is fixed
    for an episode too), and passes it to :func:`object_state_from_table` for every later table.
    Drawn again per frame it was not stable: a named cube half hidden by the approaching hand
    loses presence, the other named cube takes its slot, and the instruction bound at the first
    frame then reads the wrong cube (chain and sort: System 2 believed ``pick`` done before any
    grasp; docs/DECISIONS.md).
    """
    mentions = [identity(m.color, m.kind) for m in parse_mentions(instruction)]
    rank = {ident: i for i, ident in reversed(list(enumerate(mentions)))}  # first mention
    out, used = [], set()
    for kind, _, _ in object_slices(tuple(kinds)):
        k = KINDS.index(kind)
        candidates = [i for i in range(k, NUM_IDENTITIES, len(KINDS)) if i not in used]
        candidates.sort(key=lambda i: (rank.get(i, len(mentions)), -float(table[i, 0])))
        used.add(candidates[0])
        out.append(candidates[0])
    return np.asarray(out, dtype=np.int64)



class ParsedScene(PerceivedScene):
    """A :class:`PerceivedScene` whose object slots are filled by the instruction parser's
    mentions (the parsed-language agents)."""

    def reset(self) -> None:
        super().reset()
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
        self.perception = ObjectPerception(cameras, image_size, config.width)
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
        perception_loss, info = self.perception.batch_loss(batch, self.normalizer.mean.device)
        decision_loss, decision_info = self.decision.loss(batch)
        loss = perception_loss + decision_loss
        info |= {("state_loss" if k == "loss" else k): v for k, v in decision_info.items()}
        info |= {"loss": float(loss.detach()), "perception_loss": float(perception_loss.detach())}
        return loss, info


@AGENTS.register("bc-keypoints")
class BCKeypointsAgent:
    """Perceives the objects every step and acts with the state policy on them. An object no
    camera sees (an arm in the way) keeps its last seen position."""

    def __init__(self, policy: BCKeypointsPolicy, features: TaskFeatures) -> None:
        self.policy = policy.eval()
        self.kinds = features.kinds
        self.state = GroundedState(features.kinds)
        self.scene = ParsedScene(policy.perception)
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
        return self.policy.state.act_on(self.decision_input(obs))

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        action = executable(self.raw_action(obs))
        self.memory.record(self.features(obs), action)
        return action

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        """The state policy's last hidden layer on the perceived features: what a residual
        policy reads."""
        return self.policy.state.embed_one(self.decision_input(obs))

    @property
    def subtask(self) -> str:
        return "none"
