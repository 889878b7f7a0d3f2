"""The ``end-to-end`` agent: perceives the objects every step, reads the instruction once (at
the episode's first observation, pointing its links at the objects it then sees), and acts with
the action head on those objects' geometry and its last steps.

Nothing here, nor anything it imports, reads the instruction by hand: ``envs.task_features``
(the parser) is never imported on this path (``tests/test_grounded_vla.py`` checks the import
graph).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from envs.base import PROPRIO
from envs.link_features import PROPRIO_USED, Link
from policies.agent_registry import AGENTS
from policies.grounded_vla.links import features_of_links, identity_name
from policies.grounded_vla.model import GroundedVLAPolicy
from policies.grounded_vla.tokenizer import require_words
from policies.perceived_scene import PerceivedScene
from policies.state_mlp import executable

PROGRESS = len(PROPRIO_USED)
"""Where the link features hold the share of links done."""


@AGENTS.register("end-to-end")
class GroundedVLAAgent:
    """``reset(instruction)``, ``act(obs)``. An instruction with no words, or longer than the
    model's context, raises :class:`InstructionError` at ``reset``. One that names no object of
    the scene still acts: each link points at the present object it finds most likely
    (:attr:`grounding` says which)."""

    def __init__(self, policy: GroundedVLAPolicy, features: Any = None) -> None:
        self.policy = policy.eval()
        self.scene = PerceivedScene(policy.perception)
        self.memory = policy.state.memory()
        self.instruction = ""
        self.tokens: np.ndarray | None = None
        self.links: list[Link] | None = None
        self._perceived = None
        self.timings: list[float] = []

    def reset(self, instruction: str) -> None:
        self.read(instruction)
        self.begin_episode()

    def begin_episode(self) -> None:
        """Forget the last episode's scene and steps (the words stay until :meth:`read`)."""
        self.scene.reset()
        self.memory.reset()

    def read(self, text: str) -> None:
        """Take ``text`` as what to do from the next step on (a new episode's instruction, or a
        hierarchical agent's next subtask): its links are pointed at the objects of the
        episode's first table at the next :meth:`act`. The scene and the past steps stay."""
        self.tokens = self.policy.grounder.encode([require_words(text)])[0]
        self.instruction = text
        self.links = None
        self._perceived: tuple[Any, np.ndarray] | None = None

    @property
    def grounding(self) -> list[str]:
        """The links this episode's instruction was read as, in words (after the first act)."""
        if self.links is None:
            return []
        out = []
        for link in self.links:
            where = identity_name(link.dest) if link.dest is not None else link.direction
            verb = "push" if link.pushed else ("reach" if where is None else "move")
            out.append(f"{verb} {identity_name(link.obj)}" + (f" -> {where}" if where else ""))
        return out

    def features(self, obs: dict[str, Any]) -> np.ndarray:
        """The link features of what perception sees in ``obs`` (perceived once per ``obs``)."""
        if self.tokens is None:
            raise RuntimeError("act before reset(instruction)")
        if self._perceived is not None and self._perceived[0] is obs:
            return self._perceived[1]
        table = self.scene.observe(obs)
        if self.links is None:
            self.links = self.policy.grounder.links(self.tokens, self.scene.initial)
        proprio = np.asarray(obs[PROPRIO], dtype=np.float32)
        features = features_of_links(table[None], proprio[None], self.scene.initial, self.links)[0]
        self._perceived = (obs, features)
        return features

    def done(self, obs: dict[str, Any]) -> bool:
        """Whether every link of the current words is where they want it (perceived)."""
        return bool(self.features(obs)[PROGRESS] >= 1.0)

    def decision_input(self, obs: dict[str, Any]) -> np.ndarray:
        return self.memory.inputs(self.features(obs))

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        start = time.perf_counter()
        action = executable(self.policy.state.act_on(self.decision_input(obs)))
        self.memory.record(self.features(obs), action)
        self.timings.append((time.perf_counter() - start) * 1e3)
        return action

    def pop_timings(self) -> dict[str, list[float]]:
        """System 1's milliseconds per step (perception included) since the last call."""
        out, self.timings = {"system1": self.timings}, []
        return out

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        """The action head's last hidden layer: what a residual policy reads."""
        return self.policy.state.embed_one(self.decision_input(obs))

    @property
    def subtask(self) -> str:
        return "none"
