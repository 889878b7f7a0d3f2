"""System 2 of the hierarchical VLA: reads the instruction's word pieces and the scene's object
tokens (where each object is, and how far it moved since the episode began) and says the next
subtask in words, one word at a time ("put the red cube on the blue pad"), which System 1 then
reads through its own language path, as it would read a person's.

A subtask is one link of the instruction; its words come from a small output vocabulary
(:data:`SPEAKER_WORDS`). Trained on the demos: at every step, the words of the link the expert
was working on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.language import COLOR_NAMES, DIRECTIONS
from envs.link_features import KINDS, Link
from policies.grounded_vla.config import GroundedVLAConfig
from policies.grounded_vla.encoder import WordsAndObjects
from policies.grounded_vla.links import identity_name

SPEAKER_WORDS: tuple[str, ...] = (
    "<pad>", "<bos>", "<eos>", "put", "push", "reach", "the", "on", "onto",
    *COLOR_NAMES, *KINDS, *DIRECTIONS,
)  # fmt: skip
BOS, EOS = SPEAKER_WORDS.index("<bos>"), SPEAKER_WORDS.index("<eos>")
MAX_SAID = 12
"""Words of the longest subtask System 2 says, ``<eos>`` included."""


def subtask_text(link: Link) -> str:
    """The words System 2 says for a link."""
    obj = identity_name(link.obj).replace("_", " ")
    if link.direction is not None:
        return f"push the {obj} {link.direction}"
    if link.dest is not None:
        dest = identity_name(link.dest).replace("_", " ")
        return f"push the {obj} onto the {dest}" if link.pushed else f"put the {obj} on the {dest}"
    return f"reach the {obj}"


def said_ids(text: str) -> np.ndarray:
    """``(MAX_SAID,)``: the word ids of ``text``, then ``<eos>``, padded."""
    ids = [SPEAKER_WORDS.index(w) for w in text.split()] + [EOS]
    out = np.zeros(MAX_SAID, np.int64)
    out[: len(ids)] = ids
    return out


def motion_tables(tables: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """``(..., K, 7)``: each table with each object's move since ``initial`` (zeros for objects
    absent from either)."""
    both = (tables[..., :1] > 0) & (initial[..., :1] > 0)
    moved = (tables[..., 1:4] - initial[..., 1:4]) * both
    return np.concatenate([tables, moved], -1).astype(np.float32)


class SubtaskSpeaker(nn.Module):
    """``tokens (B, L, G), tables (B, K, 7) -> logits (B, MAX_SAID, V)`` of the next subtask's
    words, teacher-forced; :meth:`say` decodes greedily."""

    def __init__(self, config: GroundedVLAConfig) -> None:
        super().__init__()
        d = config.d_model
        self.encoder = WordsAndObjects(config, motion=True)
        self.query = nn.Parameter(torch.randn(1, 1, d) * 0.5)
        self.attend = nn.MultiheadAttention(d, config.heads, batch_first=True)
        self.words = nn.Embedding(len(SPEAKER_WORDS), d)
        self.gru = nn.GRU(d, d, batch_first=True)
        self.out = nn.Linear(2 * d, len(SPEAKER_WORDS))

    def _context(self, tokens: torch.Tensor, tables: torch.Tensor):
        fused, padding, _ = self.encoder(tokens, tables)
        ctx, _ = self.attend(
            self.query.expand(len(tokens), -1, -1), fused, fused, key_padding_mask=padding
        )
        return fused, padding, ctx[:, 0]

    def _step_logits(self, h: torch.Tensor, fused, padding) -> torch.Tensor:
        look, _ = self.attend(h, fused, fused, key_padding_mask=padding)
        return self.out(torch.cat([h, look], -1))

    def forward(self, tokens: torch.Tensor, tables: torch.Tensor, said: torch.Tensor):
        fused, padding, ctx = self._context(tokens, tables)
        previous = torch.cat([torch.full_like(said[:, :1], BOS), said[:, :-1]], 1)
        h, _ = self.gru(self.words(previous), ctx[None].contiguous())
        return self._step_logits(h, fused, padding)

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """``batch``: ``s2_tokens (B, L, G)``, ``s2_tables (B, K, 7)``, ``s2_said (B, MAX_SAID)``."""
        device = self.query.device
        said = torch.as_tensor(batch["s2_said"], device=device)
        logits = self(
            torch.as_tensor(batch["s2_tokens"], device=device),
            torch.as_tensor(batch["s2_tables"], device=device),
            said,
        )
        loss = F.cross_entropy(logits.flatten(0, 1), said.flatten(), ignore_index=0)
        with torch.no_grad():
            right = ((logits.argmax(-1) == said) | (said == 0)).all(-1)
        return loss, {"system2_loss": float(loss.detach()),
                      "system2_accuracy": float(right.float().mean())}  # fmt: skip

    @torch.no_grad()
    def say(self, tokens: np.ndarray, table: np.ndarray) -> str:
        """The next subtask in words, for one instruction ``(L, G)`` and scene ``(K, 7)``."""
        device = self.query.device
        fused, padding, ctx = self._context(
            torch.as_tensor(tokens[None], device=device),
            torch.as_tensor(np.asarray(table, np.float32)[None], device=device),
        )
        h, word, out = ctx[None].contiguous(), BOS, []
        for _ in range(MAX_SAID):
            step, h = self.gru(self.words(torch.tensor([[word]], device=device)), h)
            word = int(self._step_logits(step, fused, padding)[0, 0].argmax())
            if word in (EOS, 0):
                break
            out.append(SPEAKER_WORDS[word])
        return " ".join(out)
