"""The Gymnasium views of a task that stable-baselines3 trains on.

* :class:`TaskStateEnv`: the task with task-relative privileged state as a flat ``Box``
  (the features of :class:`~envs.task_features.GroundedState`), for RL from scratch.
* :class:`ResidualEnv`: the task with a frozen base agent inside. The learner's action is the
  residual ``r`` in [-1, 1]^5; the env executes ``clip(a_base + scale * r)``; the observation is
  the residual agent's input (the base's embedding, proprioception, the base's action).

Both are ``gymnasium.Wrapper``s of the task env, so its reward (dense or sparse, as the task
config says), termination on success and truncation pass through, and ``info`` keeps the task's
fields (``success``, ``subtask``...). Both pass ``gymnasium.utils.env_checker.check_env``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.base import ACTION_DIM, ManipulationEnv
from envs.task_features import STATE_DIM, GroundedState
from policies.rl import ResidualAgent

FEATURE_BOUND = 100.0
"""Observation bounds of the flat views (features are metres, radians and unit vectors)."""


def _box(dim: int) -> spaces.Box:
    return spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, (dim,), dtype=np.float32)


def _checked(x: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise FloatingPointError(f"non-finite {what} observation: {x}")
    return np.clip(x, -FEATURE_BOUND, FEATURE_BOUND).astype(np.float32)


class TaskStateEnv(gym.Wrapper):
    """Task-relative state features of a ``state``-mode task env."""

    def __init__(self, env: ManipulationEnv) -> None:
        super().__init__(env)
        self.state = GroundedState(tuple(o.kind for o in env.unwrapped.objects))
        self.observation_space = _box(STATE_DIM)
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.state.reset(info["instruction"])
        return _checked(self.state(obs), "state"), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(np.asarray(action, np.float64))
        return _checked(self.state(obs), "state"), float(reward), terminated, truncated, info


class ResidualEnv(gym.Wrapper):
    """The learner acts through a frozen base agent: ``a = clip(a_base + scale * r)``.

    ``bundle`` is any trained agent's bundle; a fresh base agent is made for every episode
    (seeded by the episode count), and it sees every ``info`` (an oracle System 2 reads it).
    """

    def __init__(
        self,
        env: ManipulationEnv,
        bundle,
        task: str,
        scale: float,
        seed: int = 0,
        planner: str = "learned",
    ) -> None:
        super().__init__(env)
        if not 0 < scale <= 1:
            raise ValueError(f"residual scale must be in (0, 1], got {scale}")
        self.bundle, self.task, self.scale, self.planner = bundle, task, scale, planner
        self.episodes = 0
        self.seed_base = seed
        self.agent: ResidualAgent | None = None
        probe_obs, probe_info = env.reset(seed=seed)
        probe = self._new_agent(probe_info)
        dim = len(probe.prepare(probe_obs))
        self.observation_space = _box(dim)
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), dtype=np.float32)

    def _new_agent(self, info: dict[str, Any]) -> ResidualAgent:
        base = self.bundle.make(
            seed=self.seed_base + self.episodes, task=self.task, planner=self.planner
        )
        agent = ResidualAgent(base, None, self.scale)
        agent.reset(info["instruction"])
        agent.observe(info)
        return agent

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.episodes += 1
        self.agent = self._new_agent(info)
        return _checked(self.agent.prepare(obs), "residual"), info

    def step(self, action):
        if self.agent is None:
            raise RuntimeError("call reset() before step()")
        executed = self.agent.combine(np.asarray(action, dtype=np.float32))
        obs, reward, terminated, truncated, info = self.env.step(executed.astype(np.float64))
        self.agent.observe(info)
        x = _checked(self.agent.prepare(obs), "residual")
        return x, float(reward), terminated, truncated, info
