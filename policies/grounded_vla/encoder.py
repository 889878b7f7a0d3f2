"""Word and object tokens, fused: the encoder both the VLA's language path (System 1) and
System 2 read the instruction and the scene through."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from envs.language import COLOR_NAMES
from envs.link_features import KINDS
from policies.grounded_vla.config import GroundedVLAConfig
from policies.grounded_vla.tokenizer import PieceTokenizer
from policies.perception import NUM_IDENTITIES

_SAME_KIND = torch.tensor(
    [[i % len(KINDS) == j % len(KINDS) for j in range(NUM_IDENTITIES)]
     for i in range(NUM_IDENTITIES)]
)  # fmt: skip


def _encoder(d: int, heads: int, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class WordsAndObjects(nn.Module):
    """Word tokens (hashed pieces, positions, a transformer) and object tokens (colour, kind,
    rank left to right within the kind, position; with ``motion``, also how far each moved since
    the episode began) fused by a transformer over both."""

    def __init__(self, config: GroundedVLAConfig, motion: bool = False) -> None:
        super().__init__()
        d = config.d_model
        self.motion = motion
        self.tokenizer = PieceTokenizer(config.buckets, config.max_words)
        self.pieces = nn.Embedding(config.buckets, d, padding_idx=0)
        self.position = nn.Embedding(config.max_words, d)
        self.text = _encoder(d, config.heads, config.text_layers)
        self.colour = nn.Embedding(len(COLOR_NAMES), d)
        self.kind = nn.Embedding(len(KINDS), d)
        self.rank = nn.Embedding(NUM_IDENTITIES, d)
        self.where = nn.Linear(6 if motion else 3, d)
        self.token_type = nn.Embedding(2, d)
        self.fusion = _encoder(d, config.heads, config.fusion_layers)
        ident = torch.arange(NUM_IDENTITIES)
        self.register_buffer("_colour_ids", ident // len(KINDS), persistent=False)
        self.register_buffer("_kind_ids", ident % len(KINDS), persistent=False)
        self.register_buffer("_same_kind", _SAME_KIND, persistent=False)

    def encode(self, texts: list[str]) -> np.ndarray:
        """``(B, L, G)`` piece ids of ``texts`` (:class:`InstructionError` on an unreadable one)."""
        return self.tokenizer.encode_batch(texts)

    def objects(self, tables: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Object tokens ``(B, K, d)`` and which are present ``(B, K)`` of tables ``(B, K, 4)``
        (with ``motion``: ``(B, K, 7)``, the last three the move since the episode began)."""
        present = tables[..., 0] > 0
        y = tables[..., 2]
        left_of = (y[:, None, :] > y[:, :, None]) & present[:, None, :] & self._same_kind
        rank = left_of.sum(-1).clamp_max(NUM_IDENTITIES - 1)
        where = tables[..., 1:7] if self.motion else tables[..., 1:4]
        tokens = (
            self.colour(self._colour_ids) + self.kind(self._kind_ids) + self.rank(rank)
            + self.where(where * 5.0) + self.token_type.weight[1]
        )  # fmt: skip
        return tokens, present

    def forward(
        self, tokens: torch.Tensor, tables: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Word and object tokens after the fusion layers ``(B, L + K, d)``, which are padding or
        absent objects ``(B, L + K)``, and ``L`` (the batch's longest instruction)."""
        words = tokens > 0
        word_mask = words.any(-1)
        length = max(int(word_mask.sum(1).max()), 1)
        tokens, words, word_mask = tokens[:, :length], words[:, :length], word_mask[:, :length]
        emb = (self.pieces(tokens) * words[..., None]).sum(2) / words.sum(
            2, keepdim=True
        ).clamp_min(1)
        emb = emb + self.position.weight[:length] + self.token_type.weight[0]
        text = self.text(emb, src_key_padding_mask=~word_mask)
        objs, present = self.objects(tables)
        padding = ~torch.cat([word_mask, present], 1)
        fused = self.fusion(torch.cat([text, objs], 1), src_key_padding_mask=padding)
        return fused, padding, length
