"""What every agent of a System 2 over a System 1 shares: the System 2 rules of the
parsed-language hierarchical agent (advance, step back, give up, deliberate), its oracle, and
which agent kinds take which System 2 (``--planner``)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

KIND = "agent"
"""The checkpoint kind of every saved agent."""


@dataclass(frozen=True)
class PlanView:
    """What the planner believes at three plan positions ``index - 1, index, index + 1``."""

    log_probs: np.ndarray
    """``(3, V)`` log-probabilities of each subtask at those positions."""
    done: np.ndarray
    """``(3,)`` probabilities that the subtask at each position is already done."""


@dataclass(frozen=True)
class PlanRules:
    """When System 2 moves along its plan (:class:`HierarchicalAgent`)."""

    max_subtasks: int = 8
    """Longest plan tracked."""
    decide_every: int = 4
    """Steps between System 2 calls."""
    patience: int = 60
    """Steps on one subtask before it counts as failed."""
    candidates: int = 3
    """Subtasks deliberated over (re-scored in imagination when there is a world model)."""
    wm_weight: float = 2.0
    """Weight of imagined progress against the planner's log-probability."""
    done_threshold: float = 0.7
    """Belief above which the current subtask is done (advance)."""
    undone_threshold: float = 0.3
    """Belief below which the previous subtask is undone (step back)."""
    step_back_after: int = 1
    """System 2 calls in a row that must find the previous subtask undone before stepping back."""


def _elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1e3



class Planner(Protocol):
    """What the hierarchical agent needs of System 2's network (a fake in tests)."""

    def assess(self, obs: dict, index: int) -> PlanView: ...


class TwoSystems:
    """What every agent of a System 2 over a ``system1`` shares: System 1's readout, and both
    systems' timings for the harness (System 2's in ``self.timings``)."""

    system1: Any
    timings: list[float]

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        """System 1's readout under the current subtask (after ``act`` chose it)."""
        return self.system1.embed(obs)

    def pop_timings(self) -> dict[str, list[float]]:
        out = {"system1": self.system1.timings, "system2": self.timings}
        self.system1.timings, self.timings = [], []
        return out


class HierarchicalAgent(TwoSystems):
    """System 2 decides the subtask every ``decide_every`` steps; System 1 executes it.

    Each System 2 call reads the planner's beliefs at plan positions ``i - 1, i, i + 1``. It moves
    on when subtask ``i`` looks done, steps back when subtask ``i - 1`` looks undone (a dropped
    cube), and counts a subtask as failed after ``patience`` steps without finishing it. On each
    of these (and at the start) it deliberates: the top ``candidates`` subtasks at the position
    are scored by the planner's log-probability plus, with a world model, ``wm_weight`` times the
    progress each one makes in imagination; failed subtasks are not proposed again there.
    """

    def __init__(
        self,
        planner: Planner,
        system1: Any,
        subtasks: tuple[str, ...],
        config: PlanRules,
        check: Any = None,
    ) -> None:
        self.planner = planner
        self.system1 = system1
        self.subtasks = subtasks
        self.config = config
        self.check = check
        self.calls: Counter[str] = Counter()
        self.timings: list[float] = []
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.system1.reset("none")  # a new episode: nothing queued from the last one
        self._prepare(instruction)
        self.index = 0
        self.current: int | None = None
        self._failed: set[int] = set()
        self._since_decision = 0
        self._on_subtask = 0
        self._undone_calls = 0
        self.calls.clear()

    def _prepare(self, instruction: str) -> None:
        """Per-episode conditioning of System 2 (sets ``self._allowed``: which subtasks it may
        propose)."""
        raise NotImplementedError

    def _assess(self, obs: dict[str, Any]) -> PlanView:
        """The planner's beliefs around the current plan position."""
        raise NotImplementedError

    @property
    def subtask(self) -> str:
        return "none" if self.current is None else self.subtasks[self.current]

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        if self.current is None or self._since_decision >= self.config.decide_every:
            self._decide(obs)
            self._since_decision = 0
        self._since_decision += 1
        self._on_subtask += 1
        return self.system1.act(obs)

    # ------------------------------------------------------------------ System 2

    def _decide(self, obs: dict[str, Any]) -> None:
        start = time.perf_counter()
        self.calls["decisions"] += 1
        view = self._assess(obs)
        row = 1  # the row of the current position in view
        reason = None
        undone = self.index > 0 and view.done[0] < self.config.undone_threshold
        self._undone_calls = self._undone_calls + 1 if undone else 0
        if self.current is None:
            reason = "start"
        elif view.done[1] > self.config.done_threshold and self.index < self.config.max_subtasks:
            self.index, row, reason = self.index + 1, 2, "advance"
        elif undone and self._undone_calls >= self.config.step_back_after:
            self.index, row, reason = self.index - 1, 0, "step_back"
        elif self._on_subtask > self.config.patience:
            self._failed.add(self.current)
            reason = "failure"
        if reason is not None:
            self.calls[reason] += 1
            if reason in ("advance", "step_back"):
                self._failed.clear()
                self._undone_calls = 0
            self._commit(self._deliberate(view.log_probs[row]))
        self.timings.append(_elapsed_ms(start))

    def _deliberate(self, log_probs: np.ndarray) -> int:
        """The subtask to pursue: the planner's best candidates among those about what the
        instruction names, re-scored in imagination when there is a world model."""
        allowed = [int(i) for i in np.argsort(-log_probs) if self._allowed[int(i)]]
        # when everything allowed has failed here, retry the planner's best allowed
        order = [i for i in allowed if i not in self._failed] or allowed
        candidates = order[: self.config.candidates]
        scores = log_probs[candidates].astype(np.float64)
        if self.check is not None and len(candidates) > 1:
            self.calls["imagined"] += 1
            scores = scores + self.config.wm_weight * self._imagined_progress(candidates)
        return candidates[int(np.argmax(scores))]

    def _imagined_progress(self, candidates: list[int]) -> np.ndarray:
        """``(C,)`` progress the world model imagines for each candidate subtask."""
        raise NotImplementedError

    def _commit(self, subtask: int) -> None:
        self.current = subtask
        self._on_subtask = 0
        self.system1.set_text(self.subtasks[subtask])  # drops queued actions if the text changed


class OracleHierarchicalAgent:
    """System 1 pursuing the env's own current subtask (``info["subtask"]``): the oracle System 2.

    The harness shows it every step's ``info`` through ``observe``; it switches System 1's text
    whenever the env's plan pointer moves (a subtask done, or a dropped cube sending ``place``
    back to ``pick``). System 2 costs nothing here, so only System 1 is timed.
    """

    def __init__(self, system1: Any) -> None:
        self.system1 = system1
        self._label = "none"

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self._label = "none"
        self.system1.reset("none")

    def observe(self, info: dict[str, Any]) -> None:
        self._label = str(info["subtask"])

    @property
    def subtask(self) -> str:
        return self._label

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        self.system1.set_text(self._label)
        return self.system1.act(obs)

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        return self.system1.embed(obs)

    def pop_timings(self) -> dict[str, list[float]]:
        out = {"system1": self.system1.timings}
        self.system1.timings = []
        return out


HIERARCHICAL_KINDS: tuple[str, ...] = ("hierarchical", "hierarchical-keypoints")
"""Agent kinds with a System 2 (and a System 1 trained on subtask labels)."""
PLANNERS: tuple[str, ...] = ("learned", "oracle", "imagined")
"""System 2: the agent's own planner, the env's subtask sequence, or imagination alone (a
world model scores every allowed subtask: ``policies.imagined_progress.ImaginedPlanAgent``)."""
IMAGINING_KINDS: tuple[str, ...] = ("hierarchical-keypoints",)
"""Agents whose System 2 can think with a world model given at evaluation (``--world-model``)."""



def check_planner(planner: str, kind: str) -> None:
    """Raise a clear error for an unknown System 2 or one the agent kind cannot use."""
    if planner not in PLANNERS:
        raise ValueError(f"unknown planner {planner!r}; accepted: {', '.join(PLANNERS)}")
    if planner == "oracle" and kind not in HIERARCHICAL_KINDS:
        raise ValueError(
            f"planner 'oracle' replaces the System 2 of a hierarchical agent, whose System 1 "
            f"was trained on subtask labels; this agent is {kind!r}"
        )
    if planner == "imagined" and kind not in IMAGINING_KINDS:
        raise ValueError(
            f"planner 'imagined' drives the System 1 of {', '.join(IMAGINING_KINDS)} with a world "
            f"model of the perceived objects; this agent is {kind!r}"
        )


