"""A Gymnasium env backed by a world model: start from encoded real observations, step in latent space."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from world_models.latent import LatentWorldModel

LATENT_BOUND = 10.0
"""Latents are layer-normalised, so every entry stays well inside [-10, 10]."""


class DreamEnv(gym.Env):
    """Observation: the latent z. Reward: the reward head. Terminated: the success head says so.

    ``start_obs`` holds real observations (dict of ``(N, ...)`` arrays) to start from; each
    reset encodes one of them, drawn with the env's seeded generator.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        model: LatentWorldModel,
        start_obs: dict[str, np.ndarray],
        max_steps: int = 50,
        action_low: float = -1.0,
        action_high: float = 1.0,
        success_threshold: float = 0.5,
    ) -> None:
        n = {len(v) for v in start_obs.values()}
        if len(n) != 1 or 0 in n:
            raise ValueError(
                f"start_obs must hold the same number (>0) of observations per key, got {n}"
            )
        self.model = model.eval()
        self.start_obs = start_obs
        self.max_steps = max_steps
        self.success_threshold = success_threshold
        dim = model.latent_size
        self.observation_space = spaces.Box(-LATENT_BOUND, LATENT_BOUND, (dim,), dtype=np.float32)
        self.action_space = spaces.Box(
            action_low, action_high, (model.spec.action_dim,), dtype=np.float32
        )
        self._z: torch.Tensor | None = None
        self._steps = 0

    def _obs(self) -> np.ndarray:
        return self._z[0].numpy().clip(-LATENT_BOUND, LATENT_BOUND).astype(np.float32)

    @torch.no_grad()
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        i = int(self.np_random.integers(len(next(iter(self.start_obs.values())))))
        self._z = self.model.encode({k: v[i : i + 1] for k, v in self.start_obs.items()})
        self._steps = 0
        return self._obs(), {"start_index": i}

    @torch.no_grad()
    def step(self, action):
        if self._z is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float32).reshape(1, -1)
        if a.shape[1] != self.action_space.shape[0] or not np.isfinite(a).all():
            raise ValueError(
                f"action must be {self.action_space.shape[0]} finite numbers, got {action!r}"
            )
        a = np.clip(a, self.action_space.low, self.action_space.high)
        self._z = self.model.next(self._z, torch.from_numpy(a))
        self._steps += 1
        reward = float(self.model.reward(self._z)[0])
        success = float(self.model.success(self._z)[0])
        terminated = success > self.success_threshold
        truncated = self._steps >= self.max_steps
        return (
            self._obs(),
            reward,
            terminated,
            truncated,
            {"success_prob": success, "is_success": terminated},
        )
