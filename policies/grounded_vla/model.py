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

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.base import IMAGE_PREFIX
from envs.link_features import MAX_LINKS, Link
from policies.bc_config import BCStateConfig
from policies.config import POLICY_BUILDERS
from policies.grounded_vla.config import GroundedVLAConfig, HierarchicalVLAConfig
from policies.grounded_vla.encoder import WordsAndObjects
from policies.grounded_vla.links import DIRECTION_CLASSES, NO_DEST
from policies.grounded_vla.speaker import SubtaskSpeaker
from policies.perception import ObjectPerception
from policies.state_mlp import BCStatePolicy

_NEG = -1e4
"""The logit of a masked choice (finite, so a row with nothing to choose stays finite)."""
TARGET_KEYS = ("present", "obj", "dest", "direction", "pushed")


class LanguageGrounder(nn.Module):
    """``tokens (B, L, G), tables (B, K, 4) -> link logits``: which perceived objects the
    instruction's links name (module docstring)."""

    def __init__(self, config: GroundedVLAConfig) -> None:
        super().__init__()
        d = config.d_model
        self.encoder = WordsAndObjects(config)
        self.queries = nn.Parameter(torch.randn(MAX_LINKS, d) * 0.5)
        layer = nn.TransformerDecoderLayer(
            d, config.heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, config.link_layers)
        self.present = nn.Linear(d, 1)
        self.obj_query, self.obj_key = nn.Linear(d, d), nn.Linear(d, d)
        self.dest_query, self.dest_key = nn.Linear(2 * d, d), nn.Linear(d, d)
        self.no_dest = nn.Linear(2 * d, 1)
        self.direction = nn.Linear(2 * d, len(DIRECTION_CLASSES))
        self.pushed = nn.Linear(2 * d, 1)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts)

    def forward(
        self, tokens: torch.Tensor, tables: torch.Tensor, chosen: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Logits of each link: ``present (B, M)``, ``obj (B, M, K)``, ``dest (B, M, K + 1)``
        (the last: no destination object), ``direction (B, M, 5)``, ``pushed (B, M)``.
        ``chosen (B, M)``: the objects the destinations are conditioned on (training: the true
        ones); default: the most likely."""
        fused, memory_mask, length = self.encoder(tokens, tables)
        present = ~memory_mask[:, length:]
        q = self.decoder(
            self.queries.expand(len(tokens), -1, -1), fused, memory_key_padding_mask=memory_mask
        )
        obj_tokens = fused[:, length:]
        scale = 1.0 / math.sqrt(q.shape[-1])
        missing = ~present[:, None, :]
        obj = torch.einsum("bmd,bkd->bmk", self.obj_query(q), self.obj_key(obj_tokens)) * scale
        obj = obj.masked_fill(missing, _NEG)
        if chosen is None:
            chosen = obj.argmax(-1)
        picked = torch.gather(obj_tokens, 1, chosen[..., None].expand(-1, -1, q.shape[-1]))
        qc = torch.cat([q, picked], -1)
        dest = torch.einsum("bmd,bkd->bmk", self.dest_query(qc), self.dest_key(obj_tokens)) * scale
        dest = torch.cat([dest.masked_fill(missing, _NEG), self.no_dest(qc)], -1)
        return {
            "present": self.present(q)[..., 0],
            "obj": obj,
            "dest": dest,
            "direction": self.direction(qc),
            "pushed": self.pushed(qc)[..., 0],
        }

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """``batch``: ``tokens (B, L, G)``, ``first_table (B, K, 4)`` and the targets of
        :func:`~policies.grounded_vla.links.link_targets` (``link_<key> (B, M)``)."""
        device = self.queries.device
        t = {k: torch.as_tensor(batch[f"link_{k}"], device=device) for k in TARGET_KEYS}
        out = self(
            torch.as_tensor(batch["tokens"], device=device),
            torch.as_tensor(batch["first_table"], device=device),
            chosen=t["obj"],
        )
        on = t["present"] > 0
        n = on.sum().clamp_min(1)
        ce = lambda logits, target: (
            F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
            .view_as(target) * on
        ).sum() / n  # fmt: skip
        loss = (
            F.binary_cross_entropy_with_logits(out["present"], t["present"])
            + ce(out["obj"], t["obj"]) + ce(out["dest"], t["dest"])
            + ce(out["direction"], t["direction"])
            + (F.binary_cross_entropy_with_logits(out["pushed"], t["pushed"], reduction="none")
               * on).sum() / n
        )  # fmt: skip
        with torch.no_grad():
            parts = {
                "present": (out["present"] > 0) == on,
                "obj": ~on | (out["obj"].argmax(-1) == t["obj"]),
                "dest": ~on | (out["dest"].argmax(-1) == t["dest"]),
                "direction": ~on | (out["direction"].argmax(-1) == t["direction"]),
                "pushed": ~on | ((out["pushed"] > 0) == (t["pushed"] > 0)),
            }
            right = torch.stack(list(parts.values())).all(0)
        info = {f"{k}_accuracy": float(v.all(-1).float().mean()) for k, v in parts.items()}
        return loss, info | {
            "language_loss": float(loss.detach()),
            "instruction_accuracy": float(right.all(-1).float().mean()),
        }

    @torch.no_grad()
    def links(self, tokens: np.ndarray, table: np.ndarray) -> list[Link]:
        """The links of one instruction ``(L, G)`` in a scene ``(K, 4)``, the most likely choice
        for each; the first link always (an instruction asks for something), the others while
        the model says they are present."""
        device = self.queries.device
        out = self(
            torch.as_tensor(tokens[None], device=device),
            torch.as_tensor(np.asarray(table, np.float32)[None], device=device),
        )
        links = []
        for m in range(MAX_LINKS):
            if m and out["present"][0, m] <= 0:
                break
            dest = int(out["dest"][0, m].argmax())
            links.append(
                Link(
                    obj=int(out["obj"][0, m].argmax()),
                    dest=None if dest == NO_DEST else dest,
                    direction=DIRECTION_CLASSES[int(out["direction"][0, m].argmax())],
                    pushed=bool(out["pushed"][0, m] > 0),
                )
            )
        return links


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
