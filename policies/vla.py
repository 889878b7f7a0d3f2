"""System 1: a small vision-language-action policy that outputs action chunks.

Batches (arrays or tensors):

    obs/<key>     (B, H, W, 3) uint8 images, (B, D) vectors (proprioception)
    tokens        (B, L) int64 language ids (instruction or subtask label)
    actions       (B, k, A) float, in [-1, 1]: the next k actions from the demo
    action_mask   (B, k) float: 0 where the chunk runs past the end of its episode

Two action heads share the backbone: ``discrete`` bins every action dimension and predicts all
``k * A`` tokens in parallel (cross-entropy); ``flow`` learns a velocity field from Gaussian noise
to the chunk (rectified flow) and integrates it with a few Euler steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from policies.config import POLICY_BUILDERS, VLAConfig
from policies.fusion import FusionBackbone, as_tensor, random_shift
from world_models.config import ObsSpec
from world_models.networks import mlp


def split_obs(batch: dict) -> dict:
    return {k[4:]: v for k, v in batch.items() if k.startswith("obs/")}


def training_obs(module, batch: dict, generator) -> dict:
    """The ``obs/<key>`` entries of a batch, images randomly shifted while ``module`` trains."""
    obs = split_obs(batch)
    if not module.training:
        return obs
    pad, keys = module.config.train.shift, module.spec.image_keys
    return {
        k: random_shift(as_tensor(v), pad, generator) if k in keys else v for k, v in obs.items()
    }


class DiscreteActionHead(nn.Module):
    """Readout ``(B, d)`` -> logits ``(B, k, A, bins)``; each dimension's bins span [-1, 1]."""

    def __init__(self, d: int, chunk: int, action_dim: int, bins: int) -> None:
        super().__init__()
        self.chunk, self.action_dim, self.bins = chunk, action_dim, bins
        self.net = mlp(d, 4 * d, chunk * action_dim * bins, layers=1)
        self.register_buffer("centres", torch.linspace(-1.0, 1.0, bins))

    def to_bins(self, actions: torch.Tensor) -> torch.Tensor:
        return ((actions.clamp(-1, 1) + 1) * 0.5 * (self.bins - 1)).round().long()

    def loss(
        self, h: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor, generator=None
    ) -> torch.Tensor:
        logits = self.net(h).view(-1, self.chunk, self.action_dim, self.bins)
        ce = F.cross_entropy(logits.permute(0, 3, 1, 2), self.to_bins(actions), reduction="none")
        return (ce.mean(-1) * mask).sum() / mask.sum().clamp(min=1)

    def sample(self, h: torch.Tensor, generator=None) -> torch.Tensor:
        logits = self.net(h).view(-1, self.chunk, self.action_dim, self.bins)
        return self.centres[logits.argmax(-1)]


class FlowMatchingHead(nn.Module):
    """A velocity field ``v(x_t, t | h)`` moving noise (t = 0) to the action chunk (t = 1).

    The conditioning ``h`` enters the first layer additively, so at sampling time its projection
    is computed once and each Euler step only runs the small rest of the network.
    """

    def __init__(self, d: int, chunk: int, action_dim: int, hidden: int, steps: int) -> None:
        super().__init__()
        self.chunk, self.action_dim, self.steps = chunk, action_dim, steps
        self.time_dim = 32
        self.inp = nn.Linear(chunk * action_dim + self.time_dim, hidden)
        self.cond = nn.Linear(d, hidden, bias=False)
        self.net = nn.Sequential(
            nn.LayerNorm(hidden),
            nn.Mish(),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.Mish(),
            nn.Linear(hidden, chunk * action_dim),
        )

        half = self.time_dim // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(1000.0) / half))
        self.register_buffer("freqs", freqs, persistent=False)

    def _time(self, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * 100.0 * self.freqs
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    def velocity(self, x: torch.Tensor, time: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``time = self._time(t)``, ``cond = self.cond(h)``."""
        return self.net(self.inp(torch.cat([x.flatten(1), time], dim=-1)) + cond).view_as(x)

    def loss(
        self, h: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor, generator=None
    ) -> torch.Tensor:
        b = actions.shape[0]
        # drawn on the CPU from the seeded generator (same numbers on any device), then moved
        noise = torch.randn(actions.shape, generator=generator).to(actions.device)
        t = torch.rand(b, generator=generator).to(actions.device)
        x_t = (1 - t)[:, None, None] * noise + t[:, None, None] * actions
        err = (self.velocity(x_t, self._time(t), self.cond(h)) - (actions - noise)) ** 2
        return (err.mean(-1) * mask).sum() / mask.sum().clamp(min=1)

    def sample(self, h: torch.Tensor, generator=None) -> torch.Tensor:
        x = torch.randn(h.shape[0], self.chunk, self.action_dim, generator=generator).to(h.device)
        cond = self.cond(h)
        dt = 1.0 / self.steps
        steps = torch.arange(self.steps, dtype=torch.float32, device=h.device)
        times = self._time(steps * dt)  # (steps, time_dim)
        for i in range(self.steps):
            x = x + dt * self.velocity(x, times[i].expand(h.shape[0], -1), cond)
        return x.clamp(-1.0, 1.0)


@POLICY_BUILDERS.register(VLAConfig)
class VLAPolicy(nn.Module):
    """Small verbs: ``predict_chunk(obs, tokens)`` and ``loss(batch)``."""

    def __init__(self, config: VLAConfig, spec: ObsSpec, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.spec = spec
        self.vocab_size = vocab_size
        self.backbone = FusionBackbone(config.fusion, spec, vocab_size)
        d = config.fusion.d_model
        if config.head == "discrete":
            self.head: nn.Module = DiscreteActionHead(d, config.chunk, spec.action_dim, config.bins)
        else:
            self.head = FlowMatchingHead(
                d, config.chunk, spec.action_dim, config.flow_hidden, config.flow_steps
            )

    @torch.inference_mode()
    def predict_chunk(
        self, obs: dict, tokens, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Observations with a batch dim and ``tokens (B, L)`` -> actions ``(B, k, A)`` in [-1, 1]."""
        h = self.backbone(obs, as_tensor(tokens, torch.long))
        return self.head.sample(h, generator=generator)

    def loss(
        self, batch: dict, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        obs = training_obs(self, batch, generator)
        h = self.backbone(obs, as_tensor(batch["tokens"], torch.long))
        actions = as_tensor(batch["actions"], torch.float32)
        mask = as_tensor(batch["action_mask"], torch.float32)
        loss = self.head.loss(h, actions, mask, generator=generator)
        metrics = {"loss": float(loss.detach())}
        if not self.training:  # validation: how far sampled chunks are from the demo's
            err = ((self.head.sample(h, generator=generator) - actions) ** 2).mean(-1)
            metrics["action_mse"] = float((err * mask).sum() / mask.sum().clamp(min=1))
        return loss, metrics
