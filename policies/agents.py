"""The two agents compared by the sandbox, and the one checkpoint that holds each of them.

* :class:`EndToEndAgent`: System 1 conditioned on the whole instruction, nothing else.
* :class:`HierarchicalAgent`: System 2 (a :class:`~policies.planner.SubtaskPlanner`, optionally
  checking candidates in the world model) picks the subtask; System 1 conditioned on the
  subtask's label turns it into action chunks.
* :class:`OracleHierarchicalAgent`: the same System 1 under an *oracle* System 2, the env's own
  subtask sequence (privileged: it reads ``info["subtask"]``). Against the learned System 2 it
  tells how much of a failure is planning and how much is execution.

Both follow ``embodied.agent.Agent``: ``reset(instruction)``, ``act(obs) -> (A,)``, ``subtask``;
``pop_timings()`` hands the evaluation harness the latency of every System 1 chunk inference and
every System 2 call, in milliseconds.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from envs.task_features import subtasks_named_by
from policies.agent_registry import AGENTS
from policies.chunking import ActionChunkQueue
from policies.config import PlannerConfig, VLAConfig
from policies.imagination import WorldModelCheck
from policies.planner import PlanView, SubtaskPlanner
from policies.tokenizer import WordTokenizer
from policies.vla import VLAPolicy
from world_models.checkpoint import CheckpointError, save_checkpoint
from world_models.config import LatentWorldModelConfig, ObsSpec
from world_models.latent import LatentWorldModel

KIND = "agent"
"""Agent kind -> class; both are assembled from an :class:`AgentBundle` by ``bundle.make(seed)``."""


def obs_batch(obs: dict[str, Any], keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """One env observation -> tensors with a batch dim of 1 (only ``keys``)."""
    missing = [k for k in keys if k not in obs]
    if missing:
        raise KeyError(f"observation lacks keys {missing}; it has {sorted(obs)}")
    return {k: torch.from_numpy(np.ascontiguousarray(obs[k]))[None] for k in keys}


def _elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1e3


class System1:
    """Runs a VLA policy for one episode: text conditioning, chunk queue, seeded noise, timing."""

    def __init__(self, policy: VLAPolicy, tokenizer: WordTokenizer, seed: int = 0) -> None:
        self.policy = policy.eval()
        self.tokenizer = tokenizer
        self.queue = ActionChunkQueue(policy.config.execute, policy.config.temporal_ensemble)
        self.keys = (*policy.spec.image_keys, *policy.spec.vector_keys)
        self.generator = torch.Generator().manual_seed(seed)
        self.seed = seed
        self.text: str | None = None
        self._tokens: np.ndarray | None = None
        self.timings: list[float] = []
        self.chunks_predicted = 0

    def reset(self, text: str) -> None:
        self.queue.clear()
        self.generator.manual_seed(self.seed)
        self.text = None
        self.set_text(text)

    def set_text(self, text: str) -> None:
        """Condition on ``text``; a new text drops the actions queued for the old one."""
        if text != self.text:
            self.text = text
            self._tokens = self.tokenizer.encode(text, self.policy.config.fusion.max_text_len)[None]
            self.queue.clear()

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        """The backbone's readout ``(d,)`` for ``obs`` under the current text."""
        if self._tokens is None:
            raise RuntimeError("call reset(text) before embed()")
        with torch.inference_mode():
            h = self.policy.backbone(obs_batch(obs, self.keys), torch.from_numpy(self._tokens))
        return h[0].cpu().numpy()

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        if self._tokens is None:
            raise RuntimeError("call reset(text) before act()")
        if self.queue.needs_chunk():
            start = time.perf_counter()
            chunk = self.policy.predict_chunk(
                obs_batch(obs, self.keys), self._tokens, self.generator
            )
            self.timings.append(_elapsed_ms(start))
            self.chunks_predicted += 1
            self.queue.push(chunk[0].cpu().numpy())
        return np.clip(self.queue.pop(), -1.0, 1.0).astype(np.float32)


@AGENTS.register("end-to-end")
class EndToEndAgent:
    """System 1 conditioned on the full instruction."""

    def __init__(self, system1: System1) -> None:
        self.system1 = system1

    def reset(self, instruction: str) -> None:
        self.system1.reset(instruction)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        return self.system1.act(obs)

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        return self.system1.embed(obs)

    @property
    def subtask(self) -> str:
        return "none"

    def pop_timings(self) -> dict[str, list[float]]:
        out = {"system1": self.system1.timings}
        self.system1.timings = []
        return out


class Planner(Protocol):
    """What the hierarchical agent needs of System 2's network (a fake in tests)."""

    def assess(self, obs: dict, tokens: np.ndarray, index: int) -> PlanView: ...


@AGENTS.register("hierarchical")
class TwoSystems:
    """What every agent of a System 2 over a ``system1`` shares: System 1's readout, and both
    systems' timings for the harness (System 2's in ``self.timings``)."""

    system1: Any
    timings: list[float]

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        """System 1's readout under the current subtask (after ``act`` chose it)."""
        return self.system1.embed(obs)

    def pop_timings(self) -> dict[str, list[float]]:
        out = {"system1": self.system1.timings, "system2": self.timings}
        self.system1.timings, self.timings = [], []
        return out


class HierarchicalAgent(TwoSystems):
    """System 2 decides the subtask every ``decide_every`` steps; System 1 executes it.

    Each System 2 call reads the planner's beliefs at plan positions ``i - 1, i, i + 1``. It moves
    on when subtask ``i`` looks done, steps back when subtask ``i - 1`` looks undone (a dropped
    cube), and counts a subtask as failed after ``patience`` steps without finishing it. On each
    of these (and at the start) it deliberates: the top ``candidates`` subtasks at the position
    are scored by the planner's log-probability plus, with a world model, ``wm_weight`` times the
    progress each one makes in imagination; failed subtasks are not proposed again there.
    """

    def __init__(
        self,
        planner: Planner,
        system1: System1,
        tokenizer: WordTokenizer | None,
        subtasks: tuple[str, ...],
        config: PlannerConfig,
        check: WorldModelCheck | None = None,
        keys: tuple[str, ...] | None = None,
    ) -> None:
        self.planner = planner
        self.system1 = system1
        self.tokenizer = tokenizer
        self.subtasks = subtasks
        self.config = config
        self.check = check
        self.keys = keys if keys is not None else system1.keys
        self.calls: Counter[str] = Counter()
        self.timings: list[float] = []
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.system1.reset("none")  # a new episode: nothing queued from the last one
        self._prepare(instruction)
        self.index = 0
        self.current: int | None = None
        self._failed: set[int] = set()
        self._since_decision = 0
        self._on_subtask = 0
        self._undone_calls = 0
        self.calls.clear()

    def _prepare(self, instruction: str) -> None:
        """Per-episode conditioning of System 2: the instruction's tokens, the allowed subtasks."""
        self._tokens = self.tokenizer.encode(instruction, self.config.fusion.max_text_len)[None]
        self._allowed = subtasks_named_by(instruction, self.subtasks)

    def _assess(self, obs: dict[str, Any], batch: dict[str, torch.Tensor]) -> PlanView:
        """The planner's beliefs around the current plan position."""
        return self.planner.assess(batch, self._tokens, self.index)

    @property
    def subtask(self) -> str:
        return "none" if self.current is None else self.subtasks[self.current]

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        if self.current is None or self._since_decision >= self.config.decide_every:
            self._decide(obs)
            self._since_decision = 0
        self._since_decision += 1
        self._on_subtask += 1
        return self.system1.act(obs)

    # ------------------------------------------------------------------ System 2

    def _decide(self, obs: dict[str, Any]) -> None:
        start = time.perf_counter()
        self.calls["decisions"] += 1
        batch = obs_batch(obs, self.keys)
        view = self._assess(obs, batch)
        row = 1  # the row of the current position in view
        reason = None
        undone = self.index > 0 and view.done[0] < self.config.undone_threshold
        self._undone_calls = self._undone_calls + 1 if undone else 0
        if self.current is None:
            reason = "start"
        elif view.done[1] > self.config.done_threshold and self.index < self.config.max_subtasks:
            self.index, row, reason = self.index + 1, 2, "advance"
        elif undone and self._undone_calls >= self.config.step_back_after:
            self.index, row, reason = self.index - 1, 0, "step_back"
        elif self._on_subtask > self.config.patience:
            self._failed.add(self.current)
            reason = "failure"
        if reason is not None:
            self.calls[reason] += 1
            if reason in ("advance", "step_back"):
                self._failed.clear()
                self._undone_calls = 0
            self._commit(self._deliberate(batch, view.log_probs[row]))
        self.timings.append(_elapsed_ms(start))

    def _deliberate(self, batch: dict[str, torch.Tensor], log_probs: np.ndarray) -> int:
        """The subtask to pursue: the planner's best candidates among those about what the
        instruction names, re-scored in imagination when there is a world model."""
        allowed = [int(i) for i in np.argsort(-log_probs) if self._allowed[int(i)]]
        # when everything allowed has failed here, retry the planner's best allowed
        order = [i for i in allowed if i not in self._failed] or allowed
        candidates = order[: self.config.candidates]
        scores = log_probs[candidates].astype(np.float64)
        if self.check is not None and len(candidates) > 1:
            self.calls["imagined"] += 1
            scores = scores + self.config.wm_weight * self._imagined_progress(batch, candidates)
        return candidates[int(np.argmax(scores))]

    def _imagined_progress(
        self, batch: dict[str, torch.Tensor], candidates: list[int]
    ) -> np.ndarray:
        """``(C,)`` progress the world model imagines for each candidate subtask."""
        tokens = self.tokenizer.encode_batch(
            [self.subtasks[i] for i in candidates], self.system1.policy.config.fusion.max_text_len
        )
        return self.check.progress(batch, tokens, self.system1.generator)

    def _commit(self, subtask: int) -> None:
        self.current = subtask
        self._on_subtask = 0
        self.system1.set_text(self.subtasks[subtask])  # drops queued actions if the text changed


class OracleHierarchicalAgent:
    """System 1 pursuing the env's own current subtask (``info["subtask"]``): the oracle System 2.

    The harness shows it every step's ``info`` through ``observe``; it switches System 1's text
    whenever the env's plan pointer moves (a subtask done, or a dropped cube sending ``place``
    back to ``pick``). System 2 costs nothing here, so only System 1 is timed.
    """

    def __init__(self, system1: System1) -> None:
        self.system1 = system1
        self._label = "none"

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self._label = "none"
        self.system1.reset("none")

    def observe(self, info: dict[str, Any]) -> None:
        self._label = str(info["subtask"])

    @property
    def subtask(self) -> str:
        return self._label

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        self.system1.set_text(self._label)
        return self.system1.act(obs)

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        return self.system1.embed(obs)

    def pop_timings(self) -> dict[str, list[float]]:
        out = {"system1": self.system1.timings}
        self.system1.timings = []
        return out


HIERARCHICAL_KINDS: tuple[str, ...] = ("hierarchical", "hierarchical-keypoints")
"""Agent kinds with a System 2 (and a System 1 trained on subtask labels)."""
PLANNERS: tuple[str, ...] = ("learned", "oracle", "imagined")
"""System 2: the agent's own planner, the env's subtask sequence, or imagination alone (a
world model scores every allowed subtask: ``policies.imagined_progress.ImaginedPlanAgent``)."""
IMAGINING_KINDS: tuple[str, ...] = ("hierarchical-keypoints",)
"""Agents whose System 2 can think with a world model given at evaluation (``--world-model``)."""


# ---------------------------------------------------------------------- the one checkpoint


def check_planner(planner: str, kind: str) -> None:
    """Raise a clear error for an unknown System 2 or one the agent kind cannot use."""
    if planner not in PLANNERS:
        raise ValueError(f"unknown planner {planner!r}; accepted: {', '.join(PLANNERS)}")
    if planner == "oracle" and kind not in HIERARCHICAL_KINDS:
        raise ValueError(
            f"planner 'oracle' replaces the System 2 of a hierarchical agent, whose System 1 "
            f"was trained on subtask labels; this agent is {kind!r}"
        )
    if planner == "imagined" and kind not in IMAGINING_KINDS:
        raise ValueError(
            f"planner 'imagined' drives the System 1 of {', '.join(IMAGINING_KINDS)} with a world "
            f"model of the perceived objects; this agent is {kind!r}"
        )


@dataclass
class AgentBundle:
    """Everything a trained agent is made of; ``make(seed)`` assembles a fresh agent from it."""

    kind: str
    tokenizer: WordTokenizer
    spec: ObsSpec
    system1: VLAPolicy
    subtasks: tuple[str, ...]
    env: dict[str, Any]
    """Env settings the agent was trained with (observation layout), applied at evaluation."""
    tasks: tuple[str, ...]
    planner: SubtaskPlanner | None = None
    world_model: LatentWorldModel | None = None
    info: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        AGENTS.get(self.kind)
        if self.kind == "hierarchical" and self.planner is None:
            raise ValueError("a hierarchical agent needs a planner")

    def make(
        self,
        seed: int = 0,
        world_model_check: bool = True,
        task: str | None = None,
        planner: str = "learned",
    ):
        """A fresh agent; ``world_model_check=False`` is the ablation without imagination,
        ``planner="oracle"`` puts the env's own subtask sequence in System 2's place."""
        check_planner(planner, self.kind)
        system1 = System1(self.system1, self.tokenizer, seed=seed)
        if self.kind == "end-to-end":
            return EndToEndAgent(system1)
        if planner == "oracle":
            return OracleHierarchicalAgent(system1)
        check = None
        if world_model_check and self.world_model is not None:
            check = WorldModelCheck(
                self.world_model, self.system1, self.planner.config.imagine_chunks
            )
        keys = tuple(dict.fromkeys((*system1.keys, *self._world_model_keys())))
        return HierarchicalAgent(
            self.planner.eval(),
            system1,
            self.tokenizer,
            self.subtasks,
            self.planner.config,
            check,
            keys,
        )

    def to(self, device: str | torch.device) -> AgentBundle:
        """Move every network to ``device`` (agents then act there; observations stay NumPy)."""
        for net in (self.system1, self.planner, self.world_model):
            if net is not None:
                net.to(device)
        return self

    def _world_model_keys(self) -> tuple[str, ...]:
        if self.world_model is None:
            return ()
        return (*self.world_model.image_keys, *self.world_model.input_vector_keys)

    def save(self, path: str | Path) -> Path:
        payload: dict[str, Any] = {
            "agent": self.kind,
            "tokenizer": self.tokenizer.to_dict(),
            "spec": self.spec.to_dict(),
            "subtasks": list(self.subtasks),
            "env": self.env,
            "tasks": list(self.tasks),
            "system1": {
                "config": self.system1.config.to_dict(),
                "state": self.system1.state_dict(),
            },
            "info": self.info or {},
        }
        if self.planner is not None:
            payload["planner"] = {
                "config": self.planner.config.to_dict(),
                "state": self.planner.state_dict(),
            }
        if self.world_model is not None:
            payload["world_model"] = {
                "config": self.world_model.config.to_dict(),
                "spec": self.world_model.spec.to_dict(),
                "state": self.world_model.state_dict(),
            }
        return save_checkpoint(path, KIND, payload)

    @classmethod
    def from_record(cls, record: dict[str, Any], path: str | Path = "") -> AgentBundle:
        try:
            tokenizer = WordTokenizer.from_dict(record["tokenizer"])
            spec = ObsSpec.from_dict(record["spec"])
            subtasks = tuple(record["subtasks"])
            s1_config = VLAConfig.from_dict(record["system1"]["config"])
            system1 = s1_config.build(spec, len(tokenizer))
            system1.load_state_dict(record["system1"]["state"])
            planner = None
            if "planner" in record:
                p_config = PlannerConfig.from_dict(record["planner"]["config"])
                planner = p_config.build(spec, len(tokenizer), len(subtasks))
                planner.load_state_dict(record["planner"]["state"])
            world_model = None
            if "world_model" in record:
                wm = record["world_model"]
                world_model = LatentWorldModelConfig.from_dict(wm["config"]).build(
                    ObsSpec.from_dict(wm["spec"])
                )
                world_model.load_state_dict(wm["state"])
                world_model.eval()
            return cls(
                kind=record["agent"],
                tokenizer=tokenizer,
                spec=spec,
                system1=system1.eval(),
                subtasks=subtasks,
                env=dict(record["env"]),
                tasks=tuple(record["tasks"]),
                planner=planner,
                world_model=world_model,
                info=record.get("info", {}),
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"{path}: agent checkpoint is not readable by this code "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:300]})"
            ) from None

    def check_env(self, task: str, observation_space) -> None:
        """Raise a clear error when this agent is used on a task or observation layout it was not
        trained for."""
        if task not in self.tasks:
            raise CheckpointError(
                f"this agent was trained on tasks {list(self.tasks)}, not {task!r}; "
                "train it on demos of that task too (train agent --data DIR [DIR ...])"
            )
        problems = []
        spaces = observation_space.spaces
        for key in (*self.spec.image_keys, *self._world_model_keys()):
            if key not in spaces:
                problems.append(f"no observation {key!r}")
        for key in self.spec.image_keys:
            if key in spaces and spaces[key].shape[0] != self.spec.image_size:
                problems.append(
                    f"{key} is {spaces[key].shape[0]} px, trained on {self.spec.image_size} px"
                )
        for key, dim in zip(self.spec.vector_keys, self.spec.vector_dims):
            if key in spaces and spaces[key].shape != (dim,):
                problems.append(f"{key} has shape {spaces[key].shape}, trained on ({dim},)")
        if problems:
            raise CheckpointError(
                "the env's observations do not match the agent's (trained with "
                f"{self.env}): " + "; ".join(problems)
            )
