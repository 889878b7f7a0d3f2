"""System 2's learned part: which subtask comes at position ``i`` of the plan, and is it done yet.

Batches:

    obs/<key>      (B, H, W, 3) uint8 images, (B, D) vectors
    tokens         (B, L) int64: the instruction
    plan_index     (B,) int64: a position in the plan (0 = first subtask)
    subtask        (B,) int64: the subtask at that position (an index into the subtask vocabulary,
                   whose entry 0 is ``none``: past the end of the plan)
    done           (B,) float: 1 if that subtask is already completed in this observation

Both are learned by imitation from the demos' subtask labels: the plan position and the done
flags come from the env's plan pointer recorded at every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from policies.config import POLICY_BUILDERS, PlannerConfig
from policies.fusion import FusionBackbone, as_tensor
from policies.vla import training_obs
from world_models.config import ObsSpec


@dataclass
class PlanView:
    """What the planner believes at three plan positions ``index - 1, index, index + 1``."""

    log_probs: np.ndarray
    """``(3, V)`` log-probabilities of each subtask at those positions."""
    done: np.ndarray
    """``(3,)`` probabilities that the subtask at each position is already done."""


@POLICY_BUILDERS.register(PlannerConfig)
class SubtaskPlanner(nn.Module):
    """Instruction + observation + plan position -> subtask logits ``(B, V)`` and done logit ``(B,)``."""

    def __init__(
        self, config: PlannerConfig, spec: ObsSpec, vocab_size: int, num_subtasks: int
    ) -> None:
        super().__init__()
        self.config = config
        self.spec = spec
        self.vocab_size = vocab_size
        self.num_subtasks = num_subtasks
        d = config.fusion.d_model
        self.backbone = FusionBackbone(config.fusion, spec, vocab_size)
        self.position = nn.Embedding(config.max_subtasks + 1, d)
        self.subtask_head = nn.Linear(d, num_subtasks)
        self.done_head = nn.Linear(d, 1)

    def forward(self, obs: dict, tokens, plan_index) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.done_head.weight.device
        index = as_tensor(plan_index, torch.long, device).clamp(0, self.config.max_subtasks)
        h = self.backbone(
            obs, as_tensor(tokens, torch.long, device), extra=self.position(index).unsqueeze(1)
        )
        return self.subtask_head(h), self.done_head(h).squeeze(-1)

    @torch.no_grad()
    def assess(self, obs: dict, tokens: np.ndarray, index: int) -> PlanView:
        """One observation (batch dim 1) and ``tokens (1, L)``: beliefs at ``index - 1 .. index + 1``
        in one forward pass (positions below 0 are clamped to 0)."""
        positions = torch.tensor([max(index - 1, 0), index, index + 1])
        batch = {k: as_tensor(v).expand(3, *v.shape[1:]) for k, v in obs.items()}
        logits, done = self(batch, as_tensor(tokens).expand(3, -1), positions)
        return PlanView(
            log_probs=torch.log_softmax(logits, -1).cpu().numpy(),
            done=torch.sigmoid(done).cpu().numpy(),
        )

    def loss(
        self, batch: dict, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        obs = training_obs(self, batch, generator)
        logits, done_logit = self(obs, batch["tokens"], batch["plan_index"])
        target = as_tensor(batch["subtask"], torch.long)
        done = as_tensor(batch["done"], torch.float32)
        subtask_loss = F.cross_entropy(logits, target)
        done_loss = F.binary_cross_entropy_with_logits(done_logit, done)
        loss = subtask_loss + done_loss
        return loss, {
            "loss": float(loss.detach()),
            "subtask_loss": float(subtask_loss.detach()),
            "done_loss": float(done_loss.detach()),
            "subtask_accuracy": float((logits.argmax(-1) == target).float().mean()),
            "done_accuracy": float(((done_logit > 0).float() == done).float().mean()),
        }
