"""The per-step state MLP (``bc-state``'s network, and the action head of every agent on
perceived objects): standardised link features, and optionally the last steps, in; one action
out. The gripper command is executed as its sign (:func:`executable`).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.link_features import STATE_DIM
from policies.bc_config import BCStateConfig
from policies.config import POLICY_BUILDERS
from policies.history import StepMemory, history_shape

GRIPPER = 4
"""Index of the gripper command in an action."""


class Normalizer(nn.Module):
    """Fixed per-feature standardisation, fitted once on the training data."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, data: np.ndarray) -> None:
        x = torch.as_tensor(np.asarray(data, dtype=np.float32))
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes[:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


@POLICY_BUILDERS.register(BCStateConfig)
class BCStatePolicy(nn.Module):
    """``features (B, input_dim) -> action (B, A)``; ``input_dim`` is ``STATE_DIM`` but for a
    System 1 that also reads its subtask's verb (``policies.hierarchical_keypoints``)."""

    def __init__(
        self, config: BCStateConfig, action_dim: int = 5, input_dim: int = STATE_DIM
    ) -> None:
        super().__init__()
        self.config = config
        self.action_dim = action_dim
        self.history = history_shape(config)
        """The past steps it reads after the features (:mod:`policies.history`)."""
        self.feature_dim = input_dim
        input_dim += self.history.width(input_dim, action_dim)
        self.normalizer = Normalizer(input_dim)
        self.net = mlp([input_dim, *config.hidden, action_dim])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalizer(features))

    def memory(self) -> StepMemory:
        """A new episode's memory of the steps this policy reads (empty for a policy that reads
        none): :meth:`StepMemory.inputs` builds what it reads when acting."""
        return StepMemory(self.history, self.action_dim)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """The last hidden layer ``(B, hidden[-1])``: what a residual policy reads."""
        return self.net[:-1](self.normalizer(features))

    @torch.no_grad()
    def act_on(self, inputs: np.ndarray) -> np.ndarray:
        """The raw action ``(A,)`` for one step's inputs ``(input_dim,)``."""
        return self(torch.from_numpy(inputs)[None])[0].numpy()

    @torch.no_grad()
    def embed_one(self, inputs: np.ndarray) -> np.ndarray:
        """:meth:`embed` of one step's inputs ``(input_dim,)``."""
        return self.embed(torch.from_numpy(inputs)[None])[0].numpy()

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None):
        """``batch``: ``features (B, F)``, ``actions (B, A)``; mean squared error."""
        device = self.normalizer.mean.device
        features = torch.as_tensor(batch["features"], device=device)
        target = torch.as_tensor(batch["actions"], device=device)
        if self.training and self.config.previous_action_dropout:  # the history's columns
            keep = torch.rand(len(features), 1, generator=generator, device=device)
            keep = (keep >= self.config.previous_action_dropout).to(features.dtype)
            now = features.shape[1] - self.history.width(self.feature_dim, self.action_dim)
            features = torch.cat([features[:, :now], features[:, now:] * keep], 1)
        pred = self(features)
        loss = F.mse_loss(pred, target)
        grip_ok = (torch.sign(pred[:, GRIPPER]) == torch.sign(target[:, GRIPPER])).float().mean()
        return loss, {"loss": float(loss.detach()), "gripper_accuracy": float(grip_ok)}


def executable(action: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1] and snap the gripper to +-1 (its sign), as the baselines execute."""
    out = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
    out[GRIPPER] = 1.0 if out[GRIPPER] > 0 else -1.0
    return out
