"""The language path: which perceived objects an instruction's links name.

``MAX_LINKS`` learned link queries decode over the fused word and object tokens
(:class:`~policies.grounded_vla.encoder.WordsAndObjects`). Each link points at the object it
acts on (attention logits over the object tokens), then, given that object, at its destination
object or none, and says its direction and whether it is pushed. System 1 reads an instruction
(or a subtask) with one; System 2 reads the whole instruction with its own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.link_features import MAX_LINKS, Link
from policies.grounded_vla.config import GroundedVLAConfig
from policies.grounded_vla.encoder import WordsAndObjects
from policies.grounded_vla.links import DIRECTION_CLASSES, NO_DEST

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
