"""The one interface that evaluation, video and comparison code use: ``reset(instruction)``, ``act(obs)``."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from envs.base import ManipulationEnv
from envs.experts import ScriptedExpert


@runtime_checkable
class Agent(Protocol):
    """Anything that turns observations into actions for one episode at a time."""

    def reset(self, instruction: str) -> None:
        """Start an episode with this instruction; forget everything about the previous one.

        Also called mid-episode when the world changes the instruction (the
        ``change-instruction`` world event): the agent starts over on the new words from the
        current state."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """The next action, shape ``(5,)`` in [-1, 1]."""

    @property
    def subtask(self) -> str:
        """The subtask the agent is pursuing now (``none`` for agents without one)."""


def observe(agent: Any, info: dict[str, Any]) -> None:
    """Show ``info`` to an agent that reads it (an optional ``observe(info)`` method).

    Only privileged references use it: the oracle System 2 reads the env's own subtask
    (``info["subtask"]``); learned agents act on observations alone.
    """
    method = getattr(agent, "observe", None)
    if method is not None:
        method(info)


class ExpertAgent:
    """The scripted expert as an ``Agent``. It reads privileged state, so it is bound to one env."""

    def __init__(self, env: ManipulationEnv, noise: float = 0.0, seed: int | None = None) -> None:
        self.expert = ScriptedExpert(env, noise=noise, seed=seed)
        self._subtask = "none"
        self.last_clean_action: np.ndarray | None = None

    def reset(self, instruction: str) -> None:
        self._subtask = "none"
        self.last_clean_action = None

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        step = self.expert.act(obs)
        self._subtask = step.subtask
        self.last_clean_action = step.action
        return step.executed

    @property
    def subtask(self) -> str:
        return self._subtask
