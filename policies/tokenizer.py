"""The project's own word-level tokenizer for instructions and subtask labels (no downloaded weights).

The vocabulary is fitted on the texts an agent will see (template instructions, subtask labels);
words it has never seen map to ``<unk>``, so a new instruction never crashes a policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

PAD, UNK = "<pad>", "<unk>"
_WORDS = re.compile(r"[a-z]+|[0-9]+|[(),._]")


def split_words(text: str) -> list[str]:
    """Lower-case words, numbers and the punctuation of subtask labels: ``pick(red_cube)`` ->
    ``pick ( red _ cube )``."""
    return _WORDS.findall(text.lower())


@dataclass(frozen=True)
class WordTokenizer:
    """``vocab[i]`` is the word of token id ``i``; id 0 is padding, id 1 is unknown."""

    vocab: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.vocab[:2] != (PAD, UNK):
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {self.vocab[:2]}")
        if len(set(self.vocab)) != len(self.vocab):
            raise ValueError("the vocabulary has duplicate words")
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.vocab)})

    @classmethod
    def fit(cls, texts: Iterable[str]) -> WordTokenizer:
        """A vocabulary of every word in ``texts``, sorted (so the same texts give the same ids)."""
        words = sorted({w for text in texts for w in split_words(text)})
        return cls((PAD, UNK, *words))

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, max_len: int) -> np.ndarray:
        """Token ids ``(max_len,) int64``, padded with 0 and cut at ``max_len``."""
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        ids = [self._index.get(w, 1) for w in split_words(text)][:max_len]  # type: ignore[attr-defined]
        return np.array(ids + [0] * (max_len - len(ids)), dtype=np.int64)

    def encode_batch(self, texts: list[str], max_len: int) -> np.ndarray:
        """``(len(texts), max_len) int64``."""
        return np.stack([self.encode(t, max_len) for t in texts])

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.vocab[i] for i in ids if i != 0)

    def to_dict(self) -> dict:
        return {"vocab": list(self.vocab)}

    @classmethod
    def from_dict(cls, data: dict) -> WordTokenizer:
        return cls(tuple(data["vocab"]))
