"""Task-relative features of an observation: the objects the instruction names, in the order it
names them, read out of ``object_state``.

A policy on the raw ``object_state`` must learn which of the scene's objects the colour words
point at (the scene order is random per episode), which takes hundreds of demos more than the
task itself. Grounding the words here, by their colour and kind, hands a learner the objects
*as roles*: slot 0 is the first object the instruction names (the cube to move), slot 1 the
second (its destination), and so on. It is the privileged reference of the imitation baselines
(``bc-state``), and, without the positions, the instruction code of ``bc-pixels``.

Mentions are found word by word (a colour word followed by ``cube``, ``pad`` or ``target``; a
direction word attaches to the cube mentioned before it), so any paraphrase that names the
objects works, held-out ones included. An instruction that names no object ("sort the cubes
onto the pads of their colour") is read as: every cube, left to right, each followed by the pad
of its colour, which is how the sort task orders its plan.

numpy only; the layout of ``object_state`` is the env's (see ``ManipulationEnv._object_state``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from envs.language import COLOR_NAMES, DIRECTIONS
from envs.link_features import (  # noqa: F401  (re-exported: the links' geometry)
    DIRECTION_NAMES,
    GOAL_TESTS,
    KINDS,
    LINK_DIM,
    MAX_LINKS,
    PROPRIO_USED,
    SLOT_ORDERS,
    STATE_DIM,
    Link,
    goal_reached,
    link_features,
    object_slices,
    object_state_dim,
)

MAX_MENTIONS = 8
"""Object slots: a chain of four links names at most eight objects."""
PUSH_WORDS: frozenset[str] = frozenset(
    {"push", "pushes", "pushing", "slide", "sliding", "nudge", "shove", "shift", "drive", "scoot"}
)
"""Verbs of moving a cube along the table rather than carrying it. "push the red cube onto the
blue pad" and "put the red cube on the blue pad" name the same objects; only this word tells
a push from a pick-and-place."""
_WORD = re.compile(r"[a-z]+")
_CLAUSE = re.compile(r"[,.;:]|\b(?:then|next|after)\b")


@dataclass(frozen=True)
class Mention:
    """One object the instruction names: its colour and kind, a push direction if any, and
    whether its clause says to push it (a cube pushed, not carried, to its destination)."""

    color: str
    kind: str
    direction: str | None = None
    pushed: bool = False


def parse_mentions(instruction: str) -> list[Mention]:
    """The objects an instruction names, in order (at most ``MAX_MENTIONS``).

    A cube is ``pushed`` when a push verb (:data:`PUSH_WORDS`) stands anywhere in its clause
    (clauses end at punctuation, "then", "next" and "after"): "push the red cube onto the blue
    pad", "give the red cube a push left", "move it left by pushing it".
    """
    mentions: list[Mention] = []
    for clause in _CLAUSE.split(instruction.lower()):
        words = _WORD.findall(clause)
        pushed = any(w in PUSH_WORDS for w in words)
        for i, word in enumerate(words):
            if word in COLOR_NAMES and i + 1 < len(words) and words[i + 1] in KINDS:
                mentions.append(
                    Mention(word, words[i + 1], pushed=pushed and words[i + 1] == "cube")
                )
            elif word in DIRECTIONS and mentions and mentions[-1].kind == "cube":
                last = mentions[-1]
                if last.direction is None:
                    mentions[-1] = replace(last, direction=word)
    return mentions[:MAX_MENTIONS]


"""How :meth:`TaskFeatures.state_features` lays out the link slots."""
_MENTION_WIDTH = len(COLOR_NAMES) + len(KINDS) + len(DIRECTION_NAMES) + 1
INSTRUCTION_DIM = MAX_MENTIONS * _MENTION_WIDTH


def instruction_vector(instruction: str) -> np.ndarray:
    """``(INSTRUCTION_DIM,)``: colour, kind and direction one-hots and the pushed bit of each
    object the text names, in order (the text alone: an instruction that names no object gives
    zeros)."""
    out = np.zeros((MAX_MENTIONS, _MENTION_WIDTH), dtype=np.float32)
    for slot, m in enumerate(parse_mentions(instruction)):
        out[slot, COLOR_NAMES.index(m.color)] = 1.0
        out[slot, len(COLOR_NAMES) + KINDS.index(m.kind)] = 1.0
        if m.direction is not None:
            out[slot, len(COLOR_NAMES) + len(KINDS) + DIRECTION_NAMES.index(m.direction)] = 1.0
        out[slot, -1] = float(m.pushed)
    return out.reshape(-1)


class TaskFeatures:
    """Features of one task's observations; one object per scene layout (``kinds``)."""

    def __init__(self, kinds: tuple[str, ...]) -> None:
        self.kinds = tuple(kinds)
        self.slices = object_slices(self.kinds)
        self.dim = object_state_dim(self.kinds)

    # ------------------------------------------------------------------ grounding

    def _check(self, object_state: np.ndarray) -> np.ndarray:
        state = np.asarray(object_state, dtype=np.float32)
        if state.shape[-1] != self.dim:
            raise ValueError(
                f"object_state has {state.shape[-1]} entries; a scene of {self.kinds} has {self.dim}"
            )
        return state

    def colors(self, object_state: np.ndarray) -> list[str]:
        """The colour of every object (scene order), read from its one-hot."""
        state = self._check(object_state)
        return [
            COLOR_NAMES[int(np.argmax(state[c : c + len(COLOR_NAMES)]))] for _, _, c in self.slices
        ]

    def bind(self, instruction: str, object_state: np.ndarray) -> list[tuple[int, Mention]]:
        """(object index in the scene, mention) for each object the instruction names."""
        colors = self.colors(object_state)
        mentions = parse_mentions(instruction)
        if not mentions:  # "sort": every cube left to right, each followed by its pad
            state = self._check(object_state)
            cubes = [i for i, (k, _, _) in enumerate(self.slices) if k == "cube"]
            cubes.sort(key=lambda i: -float(state[self.slices[i][1] + 1]))
            mentions = []
            for i in cubes:
                mentions += [Mention(colors[i], "cube"), Mention(colors[i], "pad")]
            mentions = mentions[:MAX_MENTIONS]
        bound = []
        for m in mentions:
            for i, (kind, _, _) in enumerate(self.slices):
                if kind == m.kind and colors[i] == m.color:
                    bound.append((i, m))
                    break
        return bound

    # ------------------------------------------------------------------ links and features

    @staticmethod
    def links(bound: list[tuple[int, Mention]]) -> list[Link]:
        """Group the named objects into links: a cube and the object named after it (a pad or a
        cube to put it on or push it to), a cube and a direction, or a lone target to reach."""
        out: list[Link] = []
        i = 0
        while i < len(bound) and len(out) < MAX_LINKS:
            obj, m = bound[i]
            nxt = bound[i + 1] if i + 1 < len(bound) else None
            if (
                m.kind == "cube"
                and m.direction is None
                and nxt is not None
                and nxt[1].kind != "target"
            ):
                out.append(Link(obj, nxt[0], None, m.pushed))
                i += 2
            else:
                out.append(Link(obj, None, m.direction, m.pushed))
                i += 1
        return out

    def state_features(
        self,
        proprio: np.ndarray,
        object_state: np.ndarray,
        initial_object_state: np.ndarray,
        bound: list[tuple[int, Mention]],
        slot_order: str = "active",
    ) -> np.ndarray:
        """:func:`envs.link_features.link_features` of the links the instruction binds."""
        return link_features(
            self.kinds, proprio, object_state, initial_object_state, self.links(bound), slot_order
        )

def subtasks_named_by(instruction: str, labels: tuple[str, ...]) -> np.ndarray:
    """``(len(labels),) bool``: which subtask labels act only on what the instruction names.

    A label is allowed when every object in it is one the instruction names (and a direction is
    the one named with its cube), in the manner the instruction names it: ``push`` only a cube
    its clause says to push, ``pick`` only one it does not. An instruction that names no object
    (sort) allows picking any cube and placing on any pad, as :meth:`TaskFeatures.bind` reads
    it. ``none`` is always allowed. System 2 keeps its proposals inside this set, so it cannot ask
    System 1 to pick a cube the scene does not have (a "green cube" where green is a pad).
    """
    mentions = parse_mentions(instruction)
    named = {f"{m.color}_{m.kind}" for m in mentions}
    pushed = {f"{m.color}_{m.kind}" for m in mentions if m.pushed}
    carried = any(m.kind == "cube" and not m.pushed for m in mentions)  # a place has a cube
    directions = {(f"{m.color}_{m.kind}", m.direction) for m in mentions if m.direction}
    out = np.zeros(len(labels), dtype=bool)
    for i, label in enumerate(labels):
        if label == "none":
            out[i] = True
            continue
        verb, _, rest = label.partition("(")
        args = [a.strip() for a in rest.rstrip(")").split(",")]
        if not mentions:
            out[i] = (verb == "pick" and args[0].endswith("_cube")) or (
                verb == "place" and args[0].endswith("_pad")
            )
        elif verb == "push" and args[1] in DIRECTIONS:
            out[i] = (args[0], args[1]) in directions
        elif not all(a in named for a in args):
            out[i] = False
        elif verb == "push":
            out[i] = args[0] in pushed
        elif verb == "pick":
            out[i] = args[0] not in pushed
        elif verb == "place":
            out[i] = carried
        else:
            out[i] = True
    return out


class GroundedState:
    """One episode's task-relative features: binds the instruction to the scene at the first
    observation (and keeps that ``object_state``, where pushes are measured from), then turns
    every observation into ``(STATE_DIM,)`` features. Used by ``bc-state`` and by RL on state."""

    def __init__(self, kinds: tuple[str, ...], slot_order: str = "active") -> None:
        self.features = TaskFeatures(kinds)
        self.slot_order = slot_order
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.initial: np.ndarray | None = None
        self.bound: list[tuple[int, Mention]] = []

    def __call__(self, obs: dict) -> np.ndarray:
        if self.initial is None:
            self.initial = np.asarray(obs["object_state"], dtype=np.float32).copy()
            self.bound = self.features.bind(self.instruction, self.initial)
        return self.features.state_features(
            obs["proprio"], obs["object_state"], self.initial, self.bound, self.slot_order
        )
