"""What a per-step policy reads of the steps before now: the features it read then (as differences
from now) and the actions it took, the same way in training (:func:`history_block`, from a
dataset's arrays) and when acting (:class:`StepMemory`).

Why: under an observation lag, an action lag, action noise and a changed actuator gain or joint
damping at once, the state a policy sees is old and its commands move the arm by an unknown
amount. Its last action says where the arm is being sent; the last two frames' change says how
far the arm really went per command, which tells the plant apart (a history-based policy's
implicit system identification, as in RMA, Kumar et al. 2021). Measured on pick-place with every
factor at the middle magnitude (docs/BENCHMARKS.md, issue 13).

The block after the current features: ``feature_steps`` differences ``f_{t-i} - f_t``
(i = 1..feature_steps), then ``action_steps`` actions ``a_{t-i}``. Before an episode's start a
past frame is the first one (difference zero) and a past action is zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HistoryShape:
    """How many past steps a policy reads: feature differences and actions."""

    feature_steps: int = 0
    action_steps: int = 0

    def width(self, feature_dim: int, action_dim: int) -> int:
        """Columns of the block after the current features."""
        return self.feature_steps * feature_dim + self.action_steps * action_dim

    def __bool__(self) -> bool:
        return bool(self.feature_steps or self.action_steps)


NO_HISTORY = HistoryShape()
"""A policy that reads the current step alone."""


def history_shape(config) -> HistoryShape:
    """A state policy config's history: ``history`` past steps of both, or with
    ``previous_action`` the last action alone."""
    steps = int(getattr(config, "history", 0))
    actions = max(steps, int(bool(getattr(config, "previous_action", False))))
    return HistoryShape(steps, actions)


def history_block(
    features: np.ndarray, actions: np.ndarray, lengths: np.ndarray, shape: HistoryShape
) -> np.ndarray:
    """``(N, width)``: each step's history block, for rows laid out episode after episode
    (``lengths`` steps each) with ``features (N, F)`` and the actions taken ``(N, A)``; a step
    sees only its own episode's past."""
    parts = []
    start = 0
    for n in np.asarray(lengths, dtype=np.int64):
        f, a = features[start : start + n], actions[start : start + n]
        row = []
        for i in range(1, shape.feature_steps + 1):
            past = np.concatenate([np.repeat(f[:1], min(i, n), 0), f[: max(n - i, 0)]])
            row.append(past - f)
        for i in range(1, shape.action_steps + 1):
            past = np.concatenate([np.zeros((min(i, n), a.shape[1]), a.dtype), a[: max(n - i, 0)]])
            row.append(past)
        parts.append(np.concatenate(row, 1) if row else np.zeros((n, 0), np.float32))
        start += n
    return np.concatenate(parts).astype(np.float32)


def with_history(
    features: np.ndarray, actions: np.ndarray, lengths: np.ndarray, shape: HistoryShape
) -> np.ndarray:
    """``features (N, F)`` followed by their :func:`history_block` (``features`` itself when
    ``shape`` reads no past step): what a policy with that history trains on."""
    if not shape:
        return features
    return np.concatenate([features, history_block(features, actions, lengths, shape)], 1)


class StepMemory:
    """One episode's past as a policy reads it when acting: :meth:`inputs` builds the current
    step's input from the features it reads now, :meth:`record` adds the step once acted."""

    def __init__(self, shape: HistoryShape, action_dim: int) -> None:
        self.shape = shape
        self.action_dim = action_dim
        self.reset()

    def reset(self) -> None:
        self.features: list[np.ndarray] = []
        """Past features, newest first (at most ``shape.feature_steps``)."""
        self.actions: list[np.ndarray] = []
        """Past actions, newest first (at most ``shape.action_steps``)."""

    @property
    def last_action(self) -> np.ndarray:
        """The action recorded last (zeros at an episode's start)."""
        return self.actions[0] if self.actions else np.zeros(self.action_dim, np.float32)

    def inputs(self, features: np.ndarray) -> np.ndarray:
        """``features`` followed by the history block (module docstring)."""
        features = np.asarray(features, dtype=np.float32)
        parts = [features]
        for i in range(self.shape.feature_steps):
            # before the episode's first step, a past frame is the first one (or this one)
            past = self.features[min(i, len(self.features) - 1)] if self.features else features
            parts.append(past - features)
        zeros = np.zeros(self.action_dim, np.float32)
        parts += [self.actions[i] if i < len(self.actions) else zeros
                  for i in range(self.shape.action_steps)]  # fmt: skip
        return np.concatenate(parts).astype(np.float32)

    def record(self, features: np.ndarray, action: np.ndarray) -> None:
        """The step just acted: the features read and the action taken."""
        if self.shape.feature_steps:
            self.features = [np.asarray(features, np.float32).copy(), *self.features]
            del self.features[self.shape.feature_steps :]
        self.actions = [np.asarray(action, np.float32).copy(), *self.actions]
        del self.actions[max(self.shape.action_steps, 1) :]
