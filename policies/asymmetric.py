"""An asymmetric actor-critic for stable-baselines3's SAC: the critic reads privileged state the
actor never sees.

The observation is ``[actor's input | privileged state]`` in one flat ``Box``. The actor's
features extractor keeps the leading ``actor_dim`` entries; the critics read all of it. So
the critic can judge a state by where the objects really are (the simulator's state, known in
training) while the actor, which is what the agent deploys, reads only what it has at run time
(for a residual: the base agent's embedding, proprioception and the base's action). Acting,
the privileged part is filled with zeros, which the actor never reads (Pinto et al., 2018,
"Asymmetric Actor Critic for Image-Based Robot Learning").
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.sac.policies import Actor, SACPolicy


class LeadingFeatures(BaseFeaturesExtractor):
    """The first ``dim`` entries of a flat observation."""

    def __init__(self, observation_space: gym.spaces.Box, dim: int) -> None:
        size = int(observation_space.shape[0])
        if not 0 < dim <= size:
            raise ValueError(f"the actor's part must be 1..{size} entries, got {dim}")
        super().__init__(observation_space, dim)
        self.dim = dim

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return observations[:, : self.dim]


class AsymmetricSACPolicy(SACPolicy):
    """SAC's policy with the actor on the leading ``actor_dim`` entries of the observation and
    the critics (and their targets) on all of it."""

    def __init__(self, *args: Any, actor_dim: int, **kwargs: Any) -> None:
        self.actor_dim = int(actor_dim)  # read by make_actor, which the base __init__ calls
        super().__init__(*args, **kwargs)
        if self.share_features_extractor:
            raise ValueError("an asymmetric critic needs its own features extractor")

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Actor:
        extractor = LeadingFeatures(self.observation_space, self.actor_dim)
        return Actor(**self._update_features_extractor(self.actor_kwargs, extractor)).to(
            self.device
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "actor_dim": self.actor_dim}


__all__ = ["AsymmetricSACPolicy", "LeadingFeatures"]
