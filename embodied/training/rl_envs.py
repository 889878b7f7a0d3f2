"""The Gymnasium views of a task that stable-baselines3 trains on.

* :class:`TaskStateEnv`: the task with task-relative privileged state as a flat ``Box``
  (the features of :class:`~envs.task_features.GroundedState`), for RL from scratch.
* :class:`GoalTaskEnv`: the goal-conditioned view of a one-goal task (reach, push,
  pick-place) as a ``Dict`` of ``observation``, ``achieved_goal`` and ``desired_goal`` with
  ``compute_reward``, for SAC / TD3 with hindsight experience replay (:mod:`envs.goal_view`).
* :class:`ResidualEnv`: the task with a frozen base agent inside. The learner's action is the
  residual ``r`` in [-1, 1]^5; the env executes ``clip(a_base + scale * r)``; the observation is
  the residual agent's input (the base's embedding, proprioception, the base's action), then,
  for an asymmetric critic (``privileged=True``), the task-relative state features that only
  the critic reads (:mod:`policies.asymmetric`).

Both are ``gymnasium.Wrapper``s of the task env: termination on success and truncation pass
through, and ``info`` keeps the task's fields (``success``, ``subtask``...). The reward is one
of :data:`RL_REWARDS`:

* ``shaped`` (the default): ``success + gamma * phi(s') - phi(s)`` with ``phi`` the task's dense
  progress. The task's dense reward itself is a poor RL objective here: it pays up to ~1 per
  step while the episode ends at the first success, so a policy that hovers with the cube
  over the pad and never lets go earns more than one that finishes. Potential-based shaping
  keeps the optimal policy of the sparse success reward (Ng et al., 1999) and its gradient.
* ``dense``, ``sparse``: the task's own rewards, as they are.

Both pass ``gymnasium.utils.env_checker.check_env``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.base import ACTION_DIM, ManipulationEnv
from envs.goal_view import GOAL_DIM, GoalView
from envs.task_features import STATE_DIM, GroundedState
from policies.bundles import env_overrides
from policies.rl import ResidualAgent, residual_bounds

RL_REWARDS = ("shaped", "dense", "sparse")
FEATURE_BOUND = 100.0
"""Observation bounds of the flat views (features are metres, radians and unit vectors)."""


def _box(dim: int) -> spaces.Box:
    return spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, (dim,), dtype=np.float32)


def _checked(x: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise FloatingPointError(f"non-finite {what} observation: {x}")
    return np.clip(x, -FEATURE_BOUND, FEATURE_BOUND).astype(np.float32)


class RewardView:
    """The RL reward of a step from the task's ``info`` (see the module docstring)."""

    def __init__(self, reward: str, gamma: float) -> None:
        if reward not in RL_REWARDS:
            raise ValueError(f"unknown RL reward {reward!r}; accepted: {', '.join(RL_REWARDS)}")
        self.reward, self.gamma = reward, gamma
        self.potential = 0.0

    def reset(self, info: dict[str, Any]) -> None:
        self.potential = float(info.get("reward_dense", 0.0))

    def __call__(self, info: dict[str, Any]) -> float:
        if self.reward != "shaped":
            return float(info[f"reward_{self.reward}"])
        potential = float(info["reward_dense"])
        out = float(info["success"]) + self.gamma * potential - self.potential
        self.potential = potential
        return out


class TaskStateEnv(gym.Wrapper):
    """Task-relative state features of a ``state``-mode task env."""

    def __init__(self, env: ManipulationEnv, reward: str = "shaped", gamma: float = 0.97) -> None:
        super().__init__(env)
        self.rewards = RewardView(reward, gamma)
        self.state = GroundedState(tuple(o.kind for o in env.unwrapped.objects))
        self.observation_space = _box(STATE_DIM)
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.state.reset(info["instruction"])
        self.rewards.reset(info)
        return _checked(self.state(obs), "state"), info

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(np.asarray(action, np.float64))
        reward = self.rewards(info)
        return _checked(self.state(obs), "state"), reward, terminated, truncated, info


class GoalTaskEnv(gym.Wrapper):
    """The goal-conditioned view of a one-goal task, for HER (see :mod:`envs.goal_view`).

    The reward is :meth:`compute_reward` of the step's goals (1 when reached), the same function
    HER relabels with, so a stored and a relabelled transition agree. Make the env with
    ``terminate_on_success=False`` (as ``train rl --her`` does): a relabelled goal that was
    reached mid-episode is not an end, and Fetch's episodes do not end either.
    """

    def __init__(self, env: ManipulationEnv) -> None:
        super().__init__(env)
        self.view = GoalView(tuple(o.kind for o in env.unwrapped.objects))
        self.test: str | None = None  # one per task: HER relabels across episodes
        obs, info = env.reset(seed=0)
        self.view.reset(info["instruction"])
        self.view(obs)
        dim = GoalView.observation_dim(self.view.test)
        self.observation_space = spaces.Dict(
            {"observation": _box(dim), "achieved_goal": _box(GOAL_DIM),
             "desired_goal": _box(GOAL_DIM)}
        )  # fmt: skip
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), dtype=np.float32)

    def _view(self, obs) -> dict[str, np.ndarray]:
        out = {k: _checked(v, k) for k, v in self.view(obs).items()}
        if self.test is None:
            self.test = self.view.test
        elif self.view.test != self.test:
            raise ValueError(
                f"HER relabels goals across episodes, which needs one goal test per task; "
                f"this task's episodes need both {self.test!r} and {self.view.test!r}"
            )
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.view.reset(info["instruction"])
        return self._view(obs), info

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(np.asarray(action, np.float64))
        view = self._view(obs)
        reward = float(self.compute_reward(view["achieved_goal"], view["desired_goal"], info))
        return view, reward, terminated, truncated, info

    def compute_reward(self, achieved_goal, desired_goal, info) -> np.ndarray:
        return self.view.compute_reward(achieved_goal, desired_goal, info)


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
        scale: float | tuple[float, ...],
        seed: int = 0,
        planner: str = "learned",
        reward: str = "shaped",
        gamma: float = 0.97,
        privileged: bool = False,
        previous_action: bool = False,
    ) -> None:
        super().__init__(env)
        self.rewards = RewardView(reward, gamma)
        self.state = GroundedState(tuple(o.kind for o in env.unwrapped.objects))
        self.scale = residual_bounds(scale)
        self.bundle, self.task, self.planner = bundle, task, planner
        self.episodes = 0
        self.seed_base = seed
        self.agent: ResidualAgent | None = None
        self.previous_action = previous_action
        probe_obs, probe_info = env.reset(seed=seed)
        probe = self._new_agent(probe_info)
        self.actor_dim = len(probe.prepare(probe_obs))
        """The residual agent's input: the leading entries of the observation."""
        self.critic_dim = STATE_DIM if privileged else 0
        """Privileged state after it, which only an asymmetric critic reads."""
        self.observation_space = _box(self.actor_dim + self.critic_dim)
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), dtype=np.float32)

    def _new_agent(self, info: dict[str, Any]) -> ResidualAgent:
        base = self.bundle.make(
            seed=self.seed_base + self.episodes, task=self.task, planner=self.planner
        )
        agent = ResidualAgent(base, None, self.scale, previous_action=self.previous_action)
        agent.reset(info["instruction"])
        agent.observe(info)
        self.state.reset(info["instruction"])
        return agent

    def _observation(self, obs: dict[str, Any]) -> np.ndarray:
        x = self.agent.prepare(obs)
        if self.critic_dim:
            x = np.concatenate([x, self.state(obs)])
        return _checked(x, "residual")

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.episodes += 1
        self.agent = self._new_agent(info)
        self.rewards.reset(info)
        return self._observation(obs), info

    def step(self, action):
        if self.agent is None:
            raise RuntimeError("call reset() before step()")
        executed = self.agent.combine(np.asarray(action, dtype=np.float32))
        obs, _, terminated, truncated, info = self.env.step(executed.astype(np.float64))
        self.agent.observe(info)
        return self._observation(obs), self.rewards(info), terminated, truncated, info


def env_settings(task: str, bundle, world_model, obs_mode: str | None) -> dict[str, Any]:
    """The task settings an RL run acts in: the base agent's observation layout (residual), the
    world model's (dream), or state (from scratch); a clear error for a mismatched ``obs_mode``."""
    if bundle is not None:
        overrides = env_overrides(bundle)
        wanted, why = overrides.get("obs_mode", "pixels"), "the base agent reads"
    elif world_model is not None:
        spec = world_model.spec
        overrides = {"obs_mode": "pixels" if spec.image_keys else "state"}
        if spec.image_keys:
            overrides["cameras"] = tuple(k.removeprefix("image_") for k in spec.image_keys)
            overrides["image_size"] = spec.image_size
        wanted, why = overrides["obs_mode"], "the world model reads"
    else:
        if obs_mode not in (None, "state"):
            raise ValueError(
                "RL from scratch reads task-relative state (obs_mode 'state'); a pixel agent "
                "learns by RL as a residual over a trained one: --init RUN --residual"
            )
        return {"obs_mode": "state"}
    if obs_mode not in (None, wanted):
        raise ValueError(f"{why} obs_mode {wanted!r}; got obs_mode {obs_mode!r}")
    return overrides


def start_observations(env, world_model, count: int, seed: int) -> dict[str, np.ndarray]:
    """The first observation of ``count`` seeded episodes, the keys the world model encodes."""
    keys = (*world_model.image_keys, *world_model.input_vector_keys)
    starts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for i in range(count):
        obs, _ = env.reset(seed=seed + i)
        for k in keys:
            starts[k].append(np.asarray(obs[k]))
    return {k: np.stack(v) for k, v in starts.items()}


def imagined_returns(dream_env, policy, episodes: int, seed: int) -> dict[str, float]:
    """Mean return and success of ``policy`` (deterministic) in the dream env."""
    returns, wins = [], 0
    for i in range(episodes):
        z, _ = dream_env.reset(seed=400_000 + seed * 1000 + i)
        total, done = 0.0, False
        while not done:
            action, _ = policy.predict(z, deterministic=True)
            z, reward, terminated, truncated, _ = dream_env.step(action)
            total += reward
            done = terminated or truncated
        returns.append(total)
        wins += int(terminated)
    return {"imagined_return": float(np.mean(returns)), "imagined_success": wins / episodes}
