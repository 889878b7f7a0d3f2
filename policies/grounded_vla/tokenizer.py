"""Sub-word pieces of an instruction: every word is the set of its character bigrams and
trigrams (with word-boundary marks) and the whole word, each hashed into a fixed number of
buckets (fastText's recipe, Bojanowski et al. 2017). Nothing is fitted or downloaded: an unseen
word still shares most of its pieces with the words it resembles ("blocks" with "block", a
misspelt "cbue" with "cube"), so no word collapses to one ``<unk>``.
"""

from __future__ import annotations

import functools
import re
import zlib
from dataclasses import dataclass

import numpy as np

_WORDS = re.compile(r"[a-z]+|[0-9]+|[,.;:?!]")


def split_words(text: str) -> list[str]:
    """Lower-case words, numbers and clause punctuation, in order."""
    return _WORDS.findall(text.lower())


@functools.lru_cache(maxsize=65536)
def _pieces(word: str, buckets: int, max_pieces: int) -> tuple[int, ...]:
    """The bucket ids of ``word``: itself and its bigrams and trigrams, marked ``<word>``."""
    marked = f"<{word}>"
    grams = [marked] + [marked[i : i + n] for n in (2, 3) for i in range(len(marked) - n + 1)]
    ids = [1 + zlib.crc32(g.encode()) % (buckets - 1) for g in dict.fromkeys(grams)]
    return tuple(ids[:max_pieces])


class InstructionError(ValueError):
    """An instruction the model cannot read (empty, or longer than its context)."""


def require_words(text: str, what: str = "the instruction") -> str:
    """``text``, or :class:`InstructionError` when it is empty or blank."""
    if not text or not text.strip():
        raise InstructionError(f"{what} is empty: say what to do")
    return text


@dataclass(frozen=True)
class PieceTokenizer:
    """``encode(text) -> (max_words, max_pieces) int64`` bucket ids, 0 for padding."""

    buckets: int = 4096
    """Hash buckets of the piece embedding (id 0 is padding)."""
    max_words: int = 96
    """The context: words and punctuation marks an instruction may hold."""
    max_pieces: int = 24
    """Pieces kept per word (a 12-letter word has 13 bigrams and 12 trigrams with its marks)."""

    def pieces(self, word: str) -> tuple[int, ...]:
        return _pieces(word, self.buckets, self.max_pieces)

    def encode(self, text: str) -> np.ndarray:
        """``(max_words, max_pieces)``; raises :class:`InstructionError` for an empty text or one
        longer than the context."""
        words = split_words(text)
        if not any(w.isalnum() for w in words):
            raise InstructionError(f"the instruction {text!r} has no words")
        if len(words) > self.max_words:
            raise InstructionError(
                f"the instruction has {len(words)} words and marks; this model reads at most "
                f"{self.max_words} (its max_words)"
            )
        out = np.zeros((self.max_words, self.max_pieces), dtype=np.int64)
        for i, word in enumerate(words):
            ids = self.pieces(word)
            out[i, : len(ids)] = ids
        return out

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.encode(t) for t in texts])


def add_typos(text: str, rng: np.random.Generator, rate: float) -> str:
    """``text`` with each word of 4+ letters misspelt with probability ``rate`` (a letter
    dropped, doubled, swapped with the next or replaced): training noise, so that the
    model reads the pieces of a word rather than one exact spelling."""
    if rate <= 0:
        return text
    out = []
    for word in text.split(" "):
        if len(word) >= 4 and word.isalpha() and rng.random() < rate:
            i = int(rng.integers(1, len(word) - 1))
            edit = int(rng.integers(4))
            if edit == 0:
                word = word[:i] + word[i + 1 :]
            elif edit == 1:
                word = word[:i] + word[i] + word[i:]
            elif edit == 2:
                word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
            else:
                word = word[:i] + chr(97 + int(rng.integers(26))) + word[i + 1 :]
        out.append(word)
    return " ".join(out)
