"""The ``end-to-end`` network: cameras and words in, an action out.

* **Vision tokens**: per-identity heatmaps (:class:`~policies.perception.ObjectPerception`,
  trained on labels projected from the privileged object state: learning by cheating) give the
  table of perceived objects; each present object is a token (its colour, kind, position and
  its rank left to right among objects of its kind).
* **Word tokens**: each word is the mean of its hashed character pieces
  (:mod:`~policies.grounded_vla.tokenizer`), with its position, through a transformer encoder.
* **Fusion**: a transformer over words and objects together, then ``MAX_LINKS`` learned link
  queries decode over them (cross-attention). Each link points at the object it acts on
  (attention logits over the object tokens), then, given that object, at its destination object
  or none, and says its direction and whether it is pushed.
* **Action head**: the state MLP (:class:`~policies.state_mlp.BCStatePolicy`) on the geometry of
  the objects the links point at (:func:`envs.link_features.link_features`), and the last steps.

Everything the instruction means reaches the action through the pointers, so a rewording that
points at the same objects yields the same action. The pointers are trained against the env's
plan (which objects an instruction names: a training label) on instructions drawn fresh from the
generator every update.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from envs.base import IMAGE_PREFIX
from policies.bc_config import BCStateConfig
from policies.config import POLICY_BUILDERS
from policies.grounded_vla.config import GroundedVLAConfig, HierarchicalVLAConfig
from policies.grounded_vla.grounder import TARGET_KEYS, LanguageGrounder
from policies.grounded_vla.speaker import SubtaskSpeaker
from policies.perception import ObjectPerception
from policies.state_mlp import BCStatePolicy

__all__ = ["TARGET_KEYS", "GroundedVLAPolicy", "LanguageGrounder", "VLADecision"]


class VLADecision(nn.Module):
    """What acts on perceived tables: the language path and the action head, and System 2 when
    ``system2`` (trained together; the second stage of training fits them on what perception
    reports)."""

    def __init__(self, config: GroundedVLAConfig, action_dim: int, system2: bool = False) -> None:
        super().__init__()
        self.speaker = SubtaskSpeaker(config) if system2 else None
        self.grounder = LanguageGrounder(config)
        self.state = BCStatePolicy(
            BCStateConfig(
                hidden=config.state_hidden, history=config.history,
                previous_action_dropout=config.previous_action_dropout,
            ),
            action_dim,
        )  # fmt: skip

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None):
        state_loss, info = self.state.loss(batch, generator)
        info = {"state_loss": info.pop("loss"), **info}
        loss = state_loss
        if "tokens" in batch:
            language_loss, language_info = self.grounder.loss(batch)
            loss, info = loss + language_loss, info | language_info
        if self.speaker is not None and "s2_tokens" in batch:
            speaker_loss, speaker_info = self.speaker.loss(batch)
            loss, info = loss + speaker_loss, info | speaker_info
        return loss, info | {"loss": float(loss.detach())}


@POLICY_BUILDERS.register(GroundedVLAConfig)
class GroundedVLAPolicy(nn.Module):
    """Perception, the language path and the action head (module docstring)."""

    def __init__(
        self,
        config: GroundedVLAConfig,
        image_keys: tuple[str, ...],
        image_size: int,
        action_dim: int = 5,
    ) -> None:
        super().__init__()
        self.config = config
        self.image_keys = tuple(image_keys)
        self.image_size = image_size
        self.action_dim = action_dim
        cameras = tuple(k[len(IMAGE_PREFIX) :] for k in self.image_keys)
        self.perception = ObjectPerception(cameras, image_size, config.width)
        self.decision = VLADecision(config, action_dim, isinstance(config, HierarchicalVLAConfig))

    @property
    def grounder(self) -> LanguageGrounder:
        return self.decision.grounder

    @property
    def state(self) -> BCStatePolicy:
        return self.decision.state

    @property
    def normalizer(self):
        return self.state.normalizer

    def fit_normalizers(self, data: dict[str, np.ndarray]) -> None:
        self.state.normalizer.fit(data["features"])

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None):
        """Perception's loss on the batch's frames plus :meth:`VLADecision.loss` on its steps
        and instructions."""
        perception_loss, info = self.perception.batch_loss(batch, self.normalizer.mean.device)
        decision_loss, decision_info = self.decision.loss(batch, generator)
        loss = perception_loss + decision_loss
        info |= decision_info
        info |= {"loss": float(loss.detach()), "perception_loss": float(perception_loss.detach())}
        return loss, info


POLICY_BUILDERS.register(HierarchicalVLAConfig)(GroundedVLAPolicy)
