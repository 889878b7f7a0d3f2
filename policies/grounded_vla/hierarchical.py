"""The hierarchical VLA agent: System 2 (:class:`~policies.grounded_vla.speaker.SubtaskSpeaker`)
reads the instruction once (its links, pointed at the objects of the first scene), then tracks
the next link in the scene and says it in words; System 1 (the grounded VLA) reads those words
as it would read a person's, and acts. System 2 speaks at the first step, every
``decide_every`` steps and when System 1 perceives its subtask done. A person can speak in its place (:meth:`inject`): their
subtask holds until it is done, then System 2 resumes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from envs.base import PROPRIO
from envs.instructions import GENERATED_SPLITS, describe
from policies.agent_registry import AGENTS
from policies.grounded_vla.end_to_end import GroundedVLAAgent
from policies.grounded_vla.links import features_of_links, plan_links
from policies.grounded_vla.model import GroundedVLAPolicy
from policies.grounded_vla.speaker import subtask_text
from policies.grounded_vla.tokenizer import require_words
from policies.grounded_vla.training import link_of_position, link_plans, plan_subtasks

SYSTEM2, PERSON = "System 2", "you"
"""Who proposed the current subtask (shown in videos)."""


@AGENTS.register("hierarchical")
class HierarchicalVLAAgent:
    """``reset(instruction)``, ``act(obs)``; :attr:`subtask` says the current subtask and who
    proposed it."""

    def __init__(self, policy: GroundedVLAPolicy, features: Any = None) -> None:
        if policy.decision.speaker is None:
            raise ValueError("a hierarchical VLA needs a policy with System 2 (hierarchical)")
        self.policy = policy.eval()
        self.speaker = policy.decision.speaker
        self.system1 = GroundedVLAAgent(policy)
        self.decide_every = policy.config.decide_every
        self.schedule: dict[int, str] = {}
        self.deliberation_ms: list[float] = []
        self.words: str | None = None

    def inject(self, step: int, text: str) -> None:
        """From step ``step`` of every episode, do ``text`` until it is done (a person's
        subtask in place of System 2's)."""
        self.schedule[int(step)] = require_words(text, "an injected subtask")

    def reset(self, instruction: str) -> None:
        self.tokens = self.speaker.reader.encode([require_words(instruction)])[0]
        self.instruction = instruction
        self.system1.begin_episode()
        self.words, self.proposer, self.step, self.spoke_at = None, SYSTEM2, 0, 0
        self.plan: list | None = None
        """System 2's reading of the instruction: its links (after the first step)."""

    @property
    def subtask(self) -> str:
        return f"{self.proposer}: {self.words}" if self.words else "none"

    def _say(self, words: str, who: str) -> None:
        if words != self.words or who != self.proposer:
            self.system1.read(words)
            self.words, self.proposer = words, who

    def _deliberate(self, obs: dict[str, Any]) -> None:
        """Read the instruction (first time), pick the next link, say it."""
        start = time.perf_counter()
        scene = self.system1.scene
        if self.plan is None:
            self.plan = self.speaker.read(self.tokens, scene.initial)
        proprio = np.asarray(obs[PROPRIO], np.float32)[None]
        features = features_of_links(
            scene.memory[None], proprio, scene.initial, self.plan, "instruction"
        )[0]
        link = min(self.speaker.next_link(features), len(self.plan) - 1)
        words = self.speaker.say(self.plan[link])
        self.deliberation_ms.append((time.perf_counter() - start) * 1000)
        # nothing said (no word before <eos>): keep the subtask, or at first the whole instruction
        self._say(words or self.words or self.instruction, SYSTEM2)
        self.spoke_at = self.step

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        start = time.perf_counter()
        self.system1.scene.observe(obs)  # System 2 sees the scene System 1 then acts on
        perceive_ms = (time.perf_counter() - start) * 1e3
        if self.step in self.schedule:
            self._say(self.schedule[self.step], PERSON)
        elif self.words is None or self.system1.done(obs) or (
            self.proposer == SYSTEM2 and self.step - self.spoke_at >= self.decide_every
        ):
            self._deliberate(obs)
        self.step += 1
        action = self.system1.act(obs)
        self.system1.timings[-1] += perceive_ms  # System 1's step includes perceiving the frame
        return action

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        return self.system1.embed(obs)

    def pop_timings(self) -> dict[str, list[float]]:
        """System 1's milliseconds per step and System 2's per deliberation since the last call."""
        out = self.system1.pop_timings() | {"system2": self.deliberation_ms}
        self.deliberation_ms = []
        return out

    @classmethod
    def create(cls, policy: GroundedVLAPolicy, features: Any, planner: str):
        """The agent with its own System 2 (``learned``) or its System 1 under the oracle
        System 2 (``oracle``: the env's own plan, said in System 2's words)."""
        return OracleVLAAgent(policy) if planner == "oracle" else cls(policy)


class OracleVLAAgent:
    """System 1 under the oracle System 2: the link the env's plan is on (privileged: it reads
    ``info["plan"]`` and ``info["subtask_index"]`` through ``observe``), in System 2's words, or,
    when the env draws its language from the generator (``--set language=heldout-where``...),
    in that split's words: System 1 alone on held-out phrasings of subtasks. Against the learned
    System 2 it tells how much of a failure is planning."""

    def __init__(self, policy: GroundedVLAPolicy) -> None:
        self.system1 = GroundedVLAAgent(policy)
        self.words: str | None = None

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.system1.begin_episode()
        self.words = None
        self._said: tuple[int, Any] | None = None

    def observe(self, info: dict[str, Any]) -> None:
        labels = list(info["plan"])
        plan = plan_subtasks(labels)
        link = int(link_of_position(plan)[min(int(info["subtask_index"]), len(plan))])
        if (link, info["seed"]) == self._said:
            return
        self._said = (link, info["seed"])
        words = subtask_text(plan_links(labels)[link])
        split = info.get("language")
        if split in GENERATED_SPLITS:  # say the link in the episode's language split
            subplan = link_plans(plan)[link]
            named = sorted({n for s in subplan for n in (s.obj, s.dest) if n and "_" in n})
            task = "pick-place" if info["task"] == "sort" else info["task"]
            rng = np.random.default_rng([int(info["seed"]), link])
            words = describe(task, subplan, named, rng, split)[0]
        self.system1.read(words)
        self.words = words

    @property
    def subtask(self) -> str:
        return f"oracle: {self.words}" if self.words else "none"

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        if self.words is None:
            raise RuntimeError("the oracle System 2 needs observe(info) before act")
        return self.system1.act(obs)

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        return self.system1.embed(obs)

    def pop_timings(self) -> dict[str, list[float]]:
        return self.system1.pop_timings()
