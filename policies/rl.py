"""Agents trained by reinforcement learning with stable-baselines3, in the one checkpoint format.

* ``rl``: an SB3 policy acting on task-relative privileged state (:class:`GroundedState`
  features), trained from scratch; or, trained with hindsight experience replay, on the
  goal-conditioned view of the task (:class:`~envs.goal_view.GoalView`, ``view="goal"``).
* ``dream``: an SB3 policy trained inside a world model's dream env (latent observations),
  acting in the real env through the world model's encoder.
* ``residual``: a frozen trained agent of any kind (the *base*) plus a small SB3 policy that
  learns a correction: ``a = clip(a_base + scale * r)`` with ``r`` in [-1, 1] (``scale`` per
  action dimension: the gripper's may span its whole command, to open or close). The residual
  reads what the base computed, not raw pixels: the base's embedding (its last hidden layer, or
  System 1's readout), proprioception and the base's action, so an update costs milliseconds.
  A hierarchical base keeps its System 2 (or the oracle's, which ``observe`` forwards).
  Its critic may read privileged state as well (``critic_dim`` entries of task-relative state
  after the actor's input; :mod:`policies.asymmetric`), which acting fills with zeros.

The SB3 policy is stored as the bytes of ``policy.save`` (its constructor arguments and
weights); the base as the bytes of its own checkpoint, so a residual agent is one file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.base import ACTION_DIM
from envs.goal_view import GoalView
from envs.task_features import PROPRIO_USED, STATE_DIM, GroundedState
from policies.agent_registry import AGENTS
from policies.two_systems import check_planner
from world_models.checkpoint import CheckpointError, save_checkpoint

KIND = "agent"
RL_KINDS = ("rl", "residual", "dream")
ALGOS = ("sac", "td3", "ppo")
VIEWS = ("state", "goal")
"""What an ``rl`` agent reads: task-relative state features, or the goal-conditioned view."""


def policy_class(algo: str, view: str = "state", asymmetric: bool = False):
    """The stable-baselines3 policy class an algorithm trains: ``MlpPolicy``, or
    ``MultiInputPolicy`` on the goal-conditioned view's ``Dict`` observations, or SAC's policy
    with a critic on privileged state (``asymmetric``)."""
    if asymmetric:
        if algo != "sac" or view != "state":
            raise ValueError(f"an asymmetric critic is for sac on flat views, not {algo} / {view}")
        from policies.asymmetric import AsymmetricSACPolicy

        return AsymmetricSACPolicy
    if algo not in ALGOS:
        raise ValueError(f"unknown RL algorithm {algo!r}; accepted: {', '.join(ALGOS)}")
    if view not in VIEWS:
        raise ValueError(f"unknown RL observation view {view!r}; accepted: {', '.join(VIEWS)}")
    if algo == "sac":
        from stable_baselines3.sac.policies import MultiInputPolicy, SACPolicy

        return MultiInputPolicy if view == "goal" else SACPolicy
    if algo == "td3":
        from stable_baselines3.td3.policies import MultiInputPolicy, TD3Policy

        return MultiInputPolicy if view == "goal" else TD3Policy
    if view == "goal":
        raise ValueError("the goal-conditioned view (HER) is for sac / td3, not ppo")
    from stable_baselines3.common.policies import ActorCriticPolicy

    return ActorCriticPolicy


GRIPPER_SCALE_MAX = 2.0
"""A residual's gripper bound may span the whole command: from closed (+1) to open (-1)."""


def residual_bounds(scale: float | Sequence[float]) -> np.ndarray:
    """The per-dimension bounds (5,) of a residual correction from one bound for every
    dimension or five; a clear error outside (0, 1] (motion) or (0, 2] (the gripper)."""
    bounds = np.broadcast_to(np.asarray(scale, dtype=np.float32), (5,)).copy()
    if not (np.all(bounds[:4] > 0) and np.all(bounds[:4] <= 1)) or not (
        0 < bounds[4] <= GRIPPER_SCALE_MAX
    ):
        raise ValueError(
            f"residual scale must be in (0, 1] (and the gripper's in (0, {GRIPPER_SCALE_MAX:g}]), "
            f"got {np.asarray(scale).tolist()}"
        )
    return bounds


def predict(policy, x: np.ndarray) -> np.ndarray:
    """The SB3 policy's deterministic action for one observation vector."""
    action, _ = policy.predict(x, deterministic=True)
    return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)


@AGENTS.register("rl")
class StateRLAgent:
    """An SB3 policy on task-relative state features."""

    def __init__(self, policy, kinds: tuple[str, ...]) -> None:
        self.policy = policy
        self.state = GroundedState(kinds)

    def reset(self, instruction: str) -> None:
        self.state.reset(instruction)

    def observation(self, obs: dict[str, Any]) -> np.ndarray:
        return self.state(obs).astype(np.float32)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        return predict(self.policy, self.observation(obs))

    @property
    def subtask(self) -> str:
        return "none"


class GoalRLAgent(StateRLAgent):
    """An SB3 policy (trained with HER) on the goal-conditioned view of the task."""

    def __init__(self, policy, kinds: tuple[str, ...]) -> None:
        self.policy = policy
        self.state = GoalView(kinds)

    def observation(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        return self.state(obs)


@AGENTS.register("dream")
class DreamAgent:
    """A policy trained in imagination: encode the real observation, act on the latent."""

    def __init__(self, world_model, policy) -> None:
        from world_models.dream_env import LATENT_BOUND

        self.world_model = world_model.eval()
        self.policy = policy
        self.keys = (*world_model.image_keys, *world_model.input_vector_keys)
        self.bound = LATENT_BOUND

    def reset(self, instruction: str) -> None:
        pass  # the latent carries what the world model saw; the words are not read

    def observation(self, obs: dict[str, Any]) -> np.ndarray:
        batch = {k: np.ascontiguousarray(obs[k])[None] for k in self.keys}
        with torch.no_grad():
            z = self.world_model.encode(batch)[0].cpu().numpy()
        return np.clip(z, -self.bound, self.bound).astype(np.float32)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        return predict(self.policy, self.observation(obs))

    @property
    def subtask(self) -> str:
        return "none"


@AGENTS.register("residual")
class ResidualAgent:
    """A frozen base agent plus a bounded residual correction from an SB3 policy.

    ``prepare(obs)`` runs the base and returns the residual's observation; ``combine(r)`` adds
    the residual to the base action. The training env calls the two around the learner's
    action; ``act`` calls them around the trained policy's.
    """

    def __init__(
        self,
        base,
        policy,
        scale: float | Sequence[float],
        critic_dim: int = 0,
        previous_action: bool = False,
    ) -> None:
        self.base = base
        self.policy = policy
        self.scale = residual_bounds(scale)
        """The correction's bound per action dimension (5,)."""
        self.critic_dim = critic_dim
        """Privileged entries the critic read after the actor's input (zeros when acting)."""
        self.previous_action = previous_action
        """The residual also reads the action executed one step earlier (zeros at an episode's
        start): under an observation or action lag, the state the observation shows plus that
        action is what the arm does next (a delayed system is Markov in both together)."""
        self._base_action: np.ndarray | None = None
        self._executed = np.zeros(ACTION_DIM, np.float32)

    def reset(self, instruction: str) -> None:
        self.base.reset(instruction)
        self._base_action = None
        self._executed = np.zeros(ACTION_DIM, np.float32)

    def observe(self, info: dict[str, Any]) -> None:
        method = getattr(self.base, "observe", None)  # the oracle System 2 reads info
        if method is not None:
            method(info)

    def prepare(self, obs: dict[str, Any]) -> np.ndarray:
        self._base_action = np.asarray(self.base.act(obs), dtype=np.float32)
        proprio = np.asarray(obs["proprio"], dtype=np.float32)[list(PROPRIO_USED)]
        embedding = np.asarray(self.base.embed(obs), dtype=np.float32)
        parts = [embedding, proprio, self._base_action]
        if self.previous_action:
            parts.append(self._executed)
        return np.concatenate(parts).astype(np.float32)

    @property
    def base_action(self) -> np.ndarray:
        """The base agent's action for the last prepared observation."""
        if self._base_action is None:
            raise RuntimeError("call prepare(obs) before reading base_action")
        return self._base_action

    def combine(self, residual: np.ndarray) -> np.ndarray:
        if self._base_action is None:
            raise RuntimeError("call prepare(obs) before combine()")
        r = np.clip(np.asarray(residual, dtype=np.float32), -1.0, 1.0)
        self._executed = np.clip(self._base_action + self.scale * r, -1.0, 1.0).astype(np.float32)
        return self._executed.copy()

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        x = self.prepare(obs)
        if self.critic_dim:
            x = np.concatenate([x, np.zeros(self.critic_dim, np.float32)])
        return self.combine(predict(self.policy, x))

    @property
    def subtask(self) -> str:
        return getattr(self.base, "subtask", "none")

    def pop_timings(self) -> dict[str, list[float]]:
        pop = getattr(self.base, "pop_timings", None)
        return pop() if callable(pop) else {}


@dataclass
class RLBundle:
    """A trained RL agent: the SB3 policy and, for a residual agent, its frozen base."""

    kind: str
    algo: str
    policy: Any
    """A stable-baselines3 policy (``SACPolicy``, ``TD3Policy`` or ``ActorCriticPolicy``)."""
    env: dict[str, Any]
    tasks: tuple[str, ...]
    task_kinds: dict[str, tuple[str, ...]] = field(default_factory=dict)
    base: Any = None
    base_blob: bytes = b""
    world_model: Any = None
    """A ``dream`` agent's world model (its encoder reads the real observations)."""
    world_model_blob: bytes = b""
    scale: float | tuple[float, ...] = 0.0
    """A residual's bound: one for every action dimension, or five (the gripper's may differ)."""
    info: dict[str, Any] = field(default_factory=dict)
    view: str = "state"
    """An ``rl`` agent's observation: ``state`` features or the ``goal``-conditioned view."""
    critic_dim: int = 0
    """A residual's privileged entries that only its critic read (0: a symmetric critic)."""
    previous_action: bool = False
    """A residual that also reads the action it executed one step earlier."""

    def __post_init__(self) -> None:
        if self.kind not in RL_KINDS:
            raise ValueError(f"unknown RL agent kind {self.kind!r}; known: {RL_KINDS}")
        if self.view not in VIEWS:
            raise ValueError(f"unknown RL observation view {self.view!r}; accepted: {VIEWS}")
        if self.view == "goal" and self.kind != "rl":
            raise ValueError(f"only an 'rl' agent reads the goal view, not a {self.kind!r} one")
        if (self.critic_dim or self.previous_action) and self.kind != "residual":
            raise ValueError(
                f"only a residual agent has an asymmetric critic or reads its previous action, "
                f"not {self.kind!r}"
            )
        if self.kind == "residual" and self.base is None:
            raise ValueError("a residual agent needs its base agent")
        if self.kind == "dream" and self.world_model is None:
            raise ValueError("a dream agent needs its world model")

    def make(
        self,
        seed: int = 0,
        world_model_check: bool = True,
        task: str | None = None,
        planner: str = "learned",
    ):
        task = task or self.tasks[0]
        if self.kind == "rl":
            check_planner(planner, self.kind)
            agent = GoalRLAgent if self.view == "goal" else StateRLAgent
            return agent(self.policy, self.task_kinds[task])
        if self.kind == "dream":
            check_planner(planner, self.kind)
            return DreamAgent(self.world_model, self.policy)
        base = self.base.make(
            seed=seed, world_model_check=world_model_check, task=task, planner=planner
        )
        return ResidualAgent(base, self.policy, self.scale, self.critic_dim, self.previous_action)

    def to(self, device: str | torch.device) -> RLBundle:
        """The SB3 policy stays on the CPU (batch-1 MLPs); the base moves to ``device``."""
        if self.base is not None:
            self.base.to(device)
        if self.world_model is not None:
            self.world_model.to(device)
        return self

    def save(self, path: str | Path) -> Path:
        buffer = io.BytesIO()
        self.policy.save(buffer)
        payload = {
            "agent": self.kind,
            "algo": self.algo,
            "policy": buffer.getvalue(),
            "env": self.env,
            "tasks": list(self.tasks),
            "task_kinds": {t: list(k) for t, k in self.task_kinds.items()},
            "base": self.base_blob,
            "world_model": self.world_model_blob,
            "scale": float(self.scale)
            if isinstance(self.scale, int | float)
            else [float(x) for x in self.scale],
            "info": self.info,
            "view": self.view,
            "critic_dim": self.critic_dim,
            "previous_action": self.previous_action,
        }
        return save_checkpoint(path, KIND, payload)

    @classmethod
    def from_record(
        cls, record: dict[str, Any], base: Any = None, world_model: Any = None
    ) -> RLBundle:
        """``base``: the residual's base bundle, ``world_model``: the dream agent's world model,
        both loaded by ``policies.bundles.load_agent`` from the bytes in the record."""
        view = record.get("view", "state")  # written before HER: state
        critic_dim = int(record.get("critic_dim", 0))  # written before asymmetric critics: 0
        policy = policy_class(record["algo"], view, asymmetric=critic_dim > 0).load(
            io.BytesIO(record["policy"]), device="cpu"
        )
        policy.set_training_mode(False)
        return cls(
            kind=record["agent"],
            algo=record["algo"],
            policy=policy,
            env=dict(record["env"]),
            tasks=tuple(record["tasks"]),
            task_kinds={t: tuple(k) for t, k in record["task_kinds"].items()},
            base=base,
            base_blob=record["base"],
            world_model=world_model,
            world_model_blob=record.get("world_model", b""),
            scale=(
                float(record["scale"])
                if isinstance(record["scale"], int | float)
                else tuple(float(x) for x in record["scale"])
            ),
            info=record.get("info", {}),
            view=view,
            critic_dim=critic_dim,
            previous_action=bool(record.get("previous_action", False)),  # written before: False
        )

    def check_env(self, task: str, observation_space) -> None:
        """Raise a clear error for a task or observation layout this agent was not trained on."""
        if task not in self.tasks:
            raise CheckpointError(
                f"this agent was trained with RL on {list(self.tasks)}, not {task!r}"
            )
        if self.base is not None:
            self.base.check_env(task, observation_space)
            return
        needed = ("proprio", "object_state")
        if self.world_model is not None:
            needed = (*self.world_model.image_keys, *self.world_model.input_vector_keys)
        missing = [k for k in needed if k not in observation_space.spaces]
        if missing:
            raise CheckpointError(f"the env lacks the observations {missing} this agent reads")


__all__ = [
    "ALGOS",
    "RL_KINDS",
    "STATE_DIM",
    "VIEWS",
    "DreamAgent",
    "GoalRLAgent",
    "RLBundle",
    "ResidualAgent",
    "StateRLAgent",
]
