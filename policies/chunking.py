"""The action-chunk queue: execute the first actions of each predicted chunk, then ask again.

Without ensembling, a chunk of ``k`` actions is predicted, its first ``execute`` actions are played
and the rest dropped. With temporal ensembling (ACT, Zhao et al. 2023) a chunk is predicted every
step and the action played at step ``t`` is the weighted mean of every stored chunk's prediction
for ``t``, the oldest weighted most: ``w_i = exp(-m * i)``.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class ActionChunkQueue:
    """``needs_chunk()`` says when to predict; ``push(chunk)`` stores one; ``pop()`` plays an action."""

    def __init__(self, execute: int, temporal_ensemble: float = 0.0) -> None:
        if execute < 1:
            raise ValueError(f"execute must be >= 1, got {execute}")
        if temporal_ensemble < 0:
            raise ValueError(f"temporal_ensemble must be >= 0, got {temporal_ensemble}")
        self.execute = execute
        self.ensemble = temporal_ensemble
        self._queue: deque[np.ndarray] = deque()
        self._chunks: list[tuple[int, np.ndarray]] = []  # (first step, chunk) when ensembling
        self._step = 0

    def clear(self) -> None:
        """Forget every stored action (on reset, or when the subtask changes)."""
        self._queue.clear()
        self._chunks.clear()

    def needs_chunk(self) -> bool:
        return True if self.ensemble > 0 else not self._queue

    def push(self, chunk: np.ndarray) -> None:
        """``chunk (k, A)``: the actions for this step and the next ``k - 1``."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 2:
            raise ValueError(f"a chunk has shape (k, action_dim), got {chunk.shape}")
        if self.ensemble > 0:
            self._chunks.append((self._step, chunk))
        else:
            self._queue.extend(chunk[: self.execute])

    def pop(self) -> np.ndarray:
        if self.ensemble <= 0:
            if not self._queue:
                raise RuntimeError("the chunk queue is empty: push a chunk first")
            self._step += 1
            return self._queue.popleft()
        live = [(s, c) for s, c in self._chunks if self._step - s < len(c)]
        if not live:
            raise RuntimeError("the chunk queue is empty: push a chunk first")
        self._chunks = live
        preds = np.stack([c[self._step - s] for s, c in live])  # oldest first
        weights = np.exp(-self.ensemble * np.arange(len(live)))
        self._step += 1
        return (weights[:, None] * preds).sum(0) / weights.sum()
