"""``hierarchical-keypoints``: the layered agent on perceived objects. The cameras become a table of
where every object is (the perception of ``bc-keypoints``); System 2 (an
:class:`~policies.object_planner.ObjectPlanner`) reads the instruction's task-relative features
of that table and picks the subtask; System 1 (a state policy) reads the features of the
objects *the subtask* names, plus its verb, and acts. Its end-to-end counterpart at equal
perception is ``bc-keypoints``: the same System 1 conditioned on the whole instruction.

System 1's text for ``place(red_pad)`` is the cube it last picked and the pad
("orange cube red pad"): the label names only the destination, but placing precisely needs the
held cube's position, and System 1 knows what it picked. Privileged state is used only as
training labels; at run time the agent reads the cameras, proprioception and the instruction.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from envs.base import PROPRIO
from envs.language import SUBTASK_VOCAB
from envs.task_features import STATE_DIM, GroundedState, TaskFeatures
from policies.agent_registry import AGENTS
from policies.bc import BCStatePolicy, executable
from policies.bc_config import HierarchicalKeypointsConfig
from policies.bc_keypoints import BCKeypointsPolicy, ParsedScene, hand_yaw, slot_identities
from policies.config import POLICY_BUILDERS
from policies.object_planner import (
    NO_SCORE,
    VERB_NAMES,
    ObjectPlanner,
    candidates,
    split_label,
    verb_code,
)
from policies.perception import object_state_from_table
from policies.two_systems import (
    HierarchicalAgent,
    OracleHierarchicalAgent,
    PlanRules,
    PlanView,
    _elapsed_ms,
)

SYSTEM1_DIM = STATE_DIM + len(VERB_NAMES)
"""System 1's input: the subtask's task-relative features and its verb."""


def system1_text(label: str, holding: str | None) -> str:
    """The text System 1's features are bound to: the label's objects, in words, with the held
    cube before a ``place`` destination (``"place(red_pad)"``, ``"orange_cube"`` ->
    ``"orange cube red pad"``), a push's prefixed by ``push`` (the features' pushed bit);
    ``"none"`` for no subtask."""
    verb, args = split_label(label)
    if verb == "none":
        return "none"
    if verb == "place" and holding is not None:
        args = [holding, *args]
    words = " ".join(a.replace("_", " ") for a in args)
    return f"push {words}" if verb == "push" else words


def next_holding(label: str, holding: str | None) -> str | None:
    """The cube System 1 holds (or last picked) after starting ``label``."""
    verb, args = split_label(label)
    return args[0] if verb == "pick" else holding


def bind_text(features: TaskFeatures, text: str, object_state: np.ndarray):
    """:meth:`TaskFeatures.bind`, except that ``none`` binds nothing (not every cube, as an
    instruction that names no object would)."""
    return [] if text == "none" else features.bind(text, object_state)


def text_binding(features: TaskFeatures, text: str, initial: tuple[np.ndarray, float]):
    """What :func:`text_features` binds ``text`` to, once per episode and text: the object slots'
    identities, the first ``object_state`` and the bound mentions, from ``initial`` (the
    episode's first table and hand yaw)."""
    slots = slot_identities(initial[0], features.kinds, text)
    first = object_state_from_table(initial[0], features.kinds, slots, initial[1])
    return slots, first, bind_text(features, text, first)


def text_features(
    features: TaskFeatures,
    tables: np.ndarray,
    proprio: np.ndarray,
    text: str,
    verb: np.ndarray,
    initial: tuple[np.ndarray, float],
    binding: tuple | None = None,
) -> np.ndarray:
    """``(T, SYSTEM1_DIM)``: System 1's input at ``T`` steps under one ``text``; ``initial`` is
    the episode's first table and hand yaw (where the text is bound; ``binding``: its
    :func:`text_binding`, when already made)."""
    kinds = features.kinds
    slots, first, bound = binding or text_binding(features, text, initial)
    states = np.stack(
        [object_state_from_table(t, kinds, slots, hand_yaw(p)) for t, p in zip(tables, proprio)]
    )
    x = features.state_features(proprio, states, first, bound)
    return np.concatenate([x, np.broadcast_to(verb, (len(x), len(verb)))], axis=1)


def subtask_features(
    tables: np.ndarray, proprio: np.ndarray, labels: list[str], kinds: tuple[str, ...]
) -> np.ndarray:
    """``(T, SYSTEM1_DIM)``: System 1's input at each of an episode's ``T`` steps, where step
    ``t`` pursues ``labels[t]`` (``tables``, ``proprio``: at least ``T`` rows)."""
    features = TaskFeatures(kinds)
    initial = (tables[0], hand_yaw(proprio[0]))
    out, holding, start = [], None, 0
    texts = []
    for label in labels:
        holding = next_holding(label, holding)
        texts.append((system1_text(label, holding), label))
    for t in range(1, len(texts) + 1):
        if t == len(texts) or texts[t] != texts[start]:
            text, label = texts[start]
            rows = slice(start, t)
            out.append(
                text_features(
                    features, tables[rows], proprio[rows], text, verb_code(label), initial
                )
            )
            start = t
    return np.concatenate(out).astype(np.float32)


# ---------------------------------------------------------------------- networks


class LayeredHeads(nn.Module):
    """System 1 (a state policy on :data:`SYSTEM1_DIM` inputs) and System 2 (the object planner):
    what the second stage of training fits on perception's output."""

    def __init__(self, config: HierarchicalKeypointsConfig, action_dim: int) -> None:
        super().__init__()
        self.system1 = BCStatePolicy(config.state_policy(), action_dim, SYSTEM1_DIM)
        self.planner = ObjectPlanner(config.planner_hidden, config.max_subtasks)

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None):
        """``s1_features`` and ``actions``; the planner's batch (``ObjectPlanner.loss``)."""
        s1_loss, s1_info = self.system1.loss(
            {"features": batch["s1_features"], "actions": batch["actions"]}
        )
        planner_loss, info = self.planner.loss(batch)
        loss = s1_loss + planner_loss
        return loss, info | {
            "loss": float(loss.detach()),
            "system1_loss": s1_info["loss"],
            "gripper_accuracy": s1_info["gripper_accuracy"],
        }


@POLICY_BUILDERS.register(HierarchicalKeypointsConfig)
class HierarchicalKeypointsPolicy(BCKeypointsPolicy):
    """Perception (cameras -> identity table), System 1 and System 2 (:class:`LayeredHeads`)."""

    def _build_decision(self, config: HierarchicalKeypointsConfig, action_dim: int) -> None:
        self.heads = LayeredHeads(config, action_dim)

    @property
    def decision(self) -> nn.Module:
        return self.heads

    @property
    def normalizer(self):
        return self.heads.system1.normalizer

    def fit_normalizers(self, data: dict[str, np.ndarray]) -> None:
        self.heads.system1.normalizer.fit(data["s1_features"])
        self.heads.planner.normalizer.fit(data["features"])


# ---------------------------------------------------------------------- acting


class KeypointSystem1:
    """System 1 for one episode: the subtask's features of the perceived scene -> an action each
    step (a chunk of one). Same interface as the System 1 :class:`~policies.two_systems.HierarchicalAgent` drives."""

    def __init__(self, policy: BCStatePolicy, scene: ParsedScene, kinds: tuple[str, ...]):
        self.policy = policy.eval()
        self.scene = scene
        self.features = TaskFeatures(kinds)
        self.keys = ()
        self.timings: list[float] = []
        self.chunks_predicted = 0
        self.reset("none")

    def reset(self, text: str) -> None:
        """A new episode (the perceived scene starts over), conditioned on ``text``."""
        self.scene.reset()
        self.memory = self.policy.memory()
        """The steps acted this episode, as far back as the policy reads them (its
        ``history``; across subtasks, as in training)."""
        self.holding: str | None = None
        self.label: str | None = None
        self._binding: tuple = (None,)  # ((text, first table's id), text_binding)
        self.set_text(text)

    def set_text(self, text: str) -> None:
        """Condition on the subtask label ``text`` (a new pick changes the held cube)."""
        if text != self.label:
            self.label = text
            self.holding = next_holding(text, self.holding)
            self._text = system1_text(text, self.holding)
            self._verb = verb_code(text)

    def inputs(self, obs: dict[str, Any]) -> np.ndarray:
        table = self.scene.observe(obs)
        proprio = np.asarray(obs[PROPRIO], dtype=np.float32)[None]
        initial = (self.scene.initial, self.scene.initial_yaw)
        key = (self._text, id(self.scene.initial))  # bound once per text and episode
        if self._binding[0] != key:
            self._binding = (key, text_binding(self.features, self._text, initial))
        return text_features(
            self.features, table[None], proprio, self._text, self._verb, initial, self._binding[1]
        )

    def conditioning(self, label: str) -> tuple[str, np.ndarray, tuple]:
        """The text, verb code and :func:`text_binding` System 1 would act under were it to
        pursue ``label`` from now on (what imagination conditions it on)."""
        text = system1_text(label, next_holding(label, self.holding))
        initial = (self.scene.initial, self.scene.initial_yaw)
        return text, verb_code(label), text_binding(self.features, text, initial)

    def inputs_under(
        self, tables: np.ndarray, proprio: np.ndarray, conditioning: tuple
    ) -> np.ndarray:
        """``(T, SYSTEM1_DIM)`` inputs of given tables and proprioception (imagined ones) under
        a :meth:`conditioning`."""
        text, verb, binding = conditioning
        initial = (self.scene.initial, self.scene.initial_yaw)
        return text_features(self.features, tables, proprio, text, verb, initial, binding)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        start = time.perf_counter()
        now = self.inputs(obs)[0]
        action = executable(self.policy.act_on(self.memory.inputs(now)))
        self.memory.record(now, action)
        self.timings.append(_elapsed_ms(start))
        self.chunks_predicted += 1
        return action

    @property
    def previous(self) -> np.ndarray:
        """The last action :meth:`act` returned (zeros at the start)."""
        return self.memory.last_action

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        return self.policy.embed_one(self.memory.inputs(self.inputs(obs)[0]))


class ScenePlanner:
    """System 2's network on the perceived scene: binds the instruction at the first observation,
    then gives the planner's beliefs at plan positions ``index - 1 .. index + 1``."""

    def __init__(
        self,
        planner: ObjectPlanner,
        scene: ParsedScene,
        kinds: tuple[str, ...],
        slot_order: str = "active",
    ) -> None:
        self.planner = planner.eval()
        self.scene = scene
        self.kinds = kinds
        self.state = GroundedState(kinds, slot_order)
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.state.reset(instruction)
        self.index: np.ndarray | None = None

    def assess(self, obs: dict[str, Any], index: int) -> PlanView:
        table = self.scene.observe(obs)
        proprio = np.asarray(obs[PROPRIO], dtype=np.float32)
        slots = self.scene.slots(self.instruction, self.kinds)
        object_state = object_state_from_table(table, self.kinds, slots, hand_yaw(proprio))
        x = self.state({PROPRIO: proprio, "object_state": object_state})
        if self.index is None:  # bound at the first observation
            self.index, self.codes = candidates(self.instruction, self.state.bound)
        positions = np.array([max(index - 1, 0), index, index + 1])
        with torch.no_grad():
            scores, done = self.planner(
                np.repeat(x[None], 3, 0), positions, np.repeat(self.codes[None], 3, 0)
            )
        log_probs = np.full((3, len(SUBTASK_VOCAB)), NO_SCORE, dtype=np.float32)
        log_probs[:, self.index] = torch.log_softmax(scores, -1).numpy()
        return PlanView(log_probs=log_probs, done=torch.sigmoid(done).numpy())

    def allowed(self) -> np.ndarray:
        """``(len(SUBTASK_VOCAB),) bool``: the candidates (after the first ``assess``)."""
        out = np.zeros(len(SUBTASK_VOCAB), dtype=bool)
        out[self.index] = True
        return out


@AGENTS.register("hierarchical-keypoints")
class HierarchicalKeypointsAgent(HierarchicalAgent):
    """:class:`~policies.two_systems.HierarchicalAgent`'s System 2 logic (advance, step back, give up
    after ``patience``) over :class:`ScenePlanner` and :class:`KeypointSystem1`, which share one
    perceived scene. Given a world model of the perceived objects (:meth:`create`), System 2
    adds each candidate's imagined progress toward the instruction's goal to its planner's
    scores when it deliberates (:mod:`policies.imagined_progress`)."""

    def __init__(
        self,
        policy: HierarchicalKeypointsPolicy,
        features: TaskFeatures,
        config: PlanRules | None = None,
    ) -> None:
        self.policy = policy.eval()
        self.scene = ParsedScene(policy.perception)
        system1 = KeypointSystem1(policy.heads.system1, self.scene, features.kinds)
        planner = ScenePlanner(
            policy.heads.planner, self.scene, features.kinds, policy.config.planner_slots
        )
        # System 2 here costs < 1 ms: it decides every step, so System 1 never goes on with a
        # subtask that is already done (states it was not trained on), and steps back only when
        # the previous subtask looks undone on 3 calls in a row (on the six-task network its
        # belief flickers at a link's end; docs/DECISIONS.md)
        config = config or PlanRules(
            max_subtasks=policy.config.max_subtasks, decide_every=1, step_back_after=3
        )
        super().__init__(planner, system1, SUBTASK_VOCAB, config)

    @classmethod
    def create(
        cls,
        policy: HierarchicalKeypointsPolicy,
        features: TaskFeatures,
        planner: str,
        world_model: Any = None,
    ):
        """The agent with its learned System 2 (thinking with ``world_model`` when one is
        given), its System 1 under the oracle System 2, or under imagination alone
        (``planner="imagined"``, which needs ``world_model``)."""
        if planner == "oracle":
            scene = ParsedScene(policy.perception)
            return OracleHierarchicalAgent(
                KeypointSystem1(policy.heads.system1, scene, features.kinds)
            )
        agent = cls(policy, features)
        if world_model is None:
            if planner == "imagined":
                raise ValueError("planner 'imagined' needs a world model of the perceived objects")
            return agent
        from policies.imagined_progress import ImaginedPlanAgent, ImaginedProgress

        check = ImaginedProgress(world_model, agent.system1, agent.planner)
        if planner == "imagined":
            return ImaginedPlanAgent(agent.system1, agent.planner, check)
        agent.check = check
        return agent

    def _prepare(self, instruction: str) -> None:
        self.planner.reset(instruction)
        self._allowed = np.ones(len(SUBTASK_VOCAB), dtype=bool)

    def _assess(self, obs: dict[str, Any]) -> PlanView:
        view = self.planner.assess(obs, self.index)
        self._allowed = self.planner.allowed()
        self._obs = obs  # what a deliberation that follows imagines from
        return view

    def _imagined_progress(self, candidates: list[int]) -> np.ndarray:
        return self.check.progress(self._obs, [SUBTASK_VOCAB[i] for i in candidates])
