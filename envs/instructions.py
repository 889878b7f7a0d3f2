"""Instructions with real variety, and held-out splits that hold out whole phenomena.

The old templates (:data:`envs.language.TEMPLATES`, four sentences per meaning) teach a learner
one sentence shape. This generator says a task's meaning (its plan of subtasks and its scene)
in many ways along four axes, each a named *phenomenon*:

* ``order``: how verb, object and destination are arranged: ``canonical`` ("put the red cube on
  the blue pad"), ``object-first`` ("the red cube goes on the blue pad", "take the red cube and
  put it on the blue pad"), ``dest-first`` ("onto the blue pad, put the red cube"), ``passive``
  ("the red cube should be placed on the blue pad") and ``where`` ("the blue pad is where the
  red cube should go");
* ``noun``: how an object is named: ``adjective`` ("the red cube") or ``relative`` ("the cube
  that is red");
* ``frame``: the clause around it: ``plain``, ``polite`` ("could you ...?"), ``want`` ("i'd
  like you to ..."), ``two-sentences`` ("find the red cube. put it ..."), ``distractor`` (a
  mention of another object in the scene: "..., not the green pad") and ``job`` ("your job is to
  ...");
* synonyms of objects, places and verbs ("block", "mat", "slide", "carry", ...).

The ``varied`` split draws the training phenomena only. Each ``heldout-<phenomenon>`` split
forces one held-out phenomenon: the orders ``passive`` and ``where``, the noun clause
``relative`` and the frame ``job`` are held out for every task; synonyms are held out *per task*
(:data:`HELDOUT_SYNONYMS`: "block" is seen in stack's and push's training instructions, never in
pick-place's), and ``heldout-synonym`` uses at least one synonym the task never trains with.

numpy only; the env calls :func:`describe` at reset when its ``language`` is one of
:data:`GENERATED_SPLITS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.language import DIRECTIONS, Subtask

ORDERS = ("canonical", "object-first", "dest-first", "passive", "where")
NOUNS = ("adjective", "relative")
FRAMES = ("plain", "polite", "want", "two-sentences", "distractor", "job")
HELDOUT: dict[str, tuple[str, ...]] = {
    "order": ("passive", "where"),
    "noun": ("relative",),
    "frame": ("job",),
}
"""Phenomena no training split ever draws, for every task."""
PHENOMENA: tuple[str, ...] = (*HELDOUT["order"], *HELDOUT["noun"], *HELDOUT["frame"], "synonym")
GENERATED_SPLITS: tuple[str, ...] = ("varied", *(f"heldout-{p}" for p in PHENOMENA))
"""``TaskConfig.language`` values this generator serves: ``varied`` (training phenomena) and one
held-out split per phenomenon."""

LEXICON: dict[str, tuple[str, ...]] = {
    "cube": ("cube", "block", "box", "brick"),
    "pad": ("pad", "mat", "square", "tile"),
    "target": ("target", "marker", "ball", "dot"),
    "carry": ("put", "place", "set", "move", "carry", "bring", "drop"),
    "stack": ("stack", "put", "place", "set", "pile"),
    "push": ("push", "slide", "shove", "nudge"),
    "reach": ("reach", "touch", "go to", "tap", "move to"),
}
"""Words per role; the first of each is the plain one."""
HELDOUT_SYNONYMS: dict[str, frozenset[str]] = {
    "pick-place": frozenset({"block", "mat", "carry"}),
    "stack": frozenset({"box", "set"}),
    "push": frozenset({"tile", "shove", "brick"}),
    "chain": frozenset({"square", "bring", "nudge"}),
    "sort": frozenset({"brick", "drop"}),
    "reach": frozenset({"move to"}),
}
"""Per task, the synonyms its training instructions never use; each word of them is in other
tasks' training instructions (reach's "move to": "move" carries cubes elsewhere)."""
PARTICIPLE = {
    "put": "put", "place": "placed", "set": "set", "move": "moved", "carry": "carried",
    "bring": "brought", "drop": "dropped", "stack": "stacked", "pile": "piled",
    "push": "pushed", "slide": "slid", "shove": "shoved", "nudge": "nudged",
    "reach": "reached", "touch": "touched", "go to": "visited", "tap": "tapped",
    "move to": "approached",
}  # fmt: skip
DIRECTION_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("to the left", "left", "leftwards", "towards the left"),
    "right": ("to the right", "right", "rightwards", "towards the right"),
    "forward": ("forward", "forwards", "away from you", "to the front"),
    "backward": ("backward", "backwards", "towards you", "to the back"),
}
DIRECTION_PLACE = {"left": "the left", "right": "the right", "forward": "the front",
                   "backward": "the back"}  # fmt: skip
PREPOSITIONS = {"carry": ("on", "onto", "on top of"), "stack": ("on", "onto", "on top of"),
                "push_to": ("onto", "to", "over to", "into")}  # fmt: skip
JOINERS = (", then ", " and then ", ". after that, ", ". next, ", ", and after that ")


@dataclass(frozen=True)
class Clause:
    """One meaning the generator says: ``kind`` (reach, carry, stack, push_to, push_dir, sort),
    the object acted on and its destination (an object name or a direction)."""

    kind: str
    obj: str | None = None
    dest: str | None = None


def clauses_of(task: str, plan: list[Subtask]) -> list[Clause]:
    """The meanings a plan says, in order (sort says one rule for its whole plan)."""
    if task == "sort":
        return [Clause("sort")]
    out, i = [], 0
    while i < len(plan):
        s = plan[i]
        if s.verb == "reach":
            out.append(Clause("reach", s.obj))
        elif s.verb == "push":
            out.append(Clause("push_dir" if s.dest in DIRECTIONS else "push_to", s.obj, s.dest))
        elif s.verb == "pick" and i + 1 < len(plan) and plan[i + 1].verb == "place":
            dest = plan[i + 1].dest
            out.append(Clause("stack" if dest.endswith("_cube") else "carry", s.obj, dest))
            i += 1
        else:
            raise ValueError(f"a plan the generator cannot say: {[str(p) for p in plan]}")
        i += 1
    return out


class _Speaker:
    """Draws the words of one instruction under a split's phenomena."""

    def __init__(self, task: str, split: str, rng: np.random.Generator) -> None:
        if split not in GENERATED_SPLITS:
            raise ValueError(f"unknown generated split {split!r}; known: {GENERATED_SPLITS}")
        self.rng = rng
        forced = split.removeprefix("heldout-") if split != "varied" else None
        held = HELDOUT_SYNONYMS.get(task, frozenset())
        self.synonym_mode = "heldout" if forced == "synonym" else "train"
        self.held = held
        pick = lambda axis, names: (
            forced if forced in names else self.choice([n for n in names if n not in HELDOUT[axis]])
        )
        self.order = pick("order", ORDERS)
        self.noun = pick("noun", NOUNS)
        self.frame = pick("frame", FRAMES)
        self.used_heldout_synonym = False

    def choice(self, options):
        return options[int(self.rng.integers(len(options)))]

    def word(self, role: str, force_heldout: bool = False) -> str:
        options = LEXICON[role]
        if self.synonym_mode == "heldout" and (force_heldout or not self.used_heldout_synonym):
            held = [w for w in options if w in self.held]
            if held:
                self.used_heldout_synonym = True
                return self.choice(held)
        return self.choice([w for w in options if w not in self.held])

    def np(self, name: str) -> str:
        color, kind = name.split("_")
        noun = self.word(kind)
        if self.noun == "relative":
            return f"the {noun} {self.choice(('that is', 'which is'))} {color}"
        return f"the {color} {noun}"

    # ------------------------------------------------------------------ one clause

    def clause(self, c: Clause) -> tuple[str, bool]:
        """(text, imperative) of one meaning in this instruction's order."""
        o = self.order
        if c.kind == "sort":
            return self._sort()
        obj = self.np(c.obj)
        if c.kind == "reach":
            verb = self.word("reach")
            if o == "object-first":
                text = self.choice((f"{obj}: {verb} it", f"find {obj} and {verb} it"))
                return text, text.startswith("find")
            if o == "dest-first":
                return f"with the gripper, {verb} {obj}", False
            if o == "passive":
                return f"{obj} should be {PARTICIPLE[verb]} by the gripper", False
            if o == "where":
                return f"{obj} is where the gripper should go", False
            return f"{verb} {obj}", True
        if c.kind == "push_dir":
            verb = self.word("push")
            way = self.choice(DIRECTION_WORDS[c.dest])
            if o == "object-first":
                text = self.choice((f"{obj}: {verb} it {way}", f"take {obj} and {verb} it {way}"))
                return text, text.startswith("take")
            if o == "dest-first":
                return f"{way}, {verb} {obj}", False
            if o == "passive":
                return f"{obj} should be {PARTICIPLE[verb]} {way}", False
            if o == "where":
                return (
                    f"{DIRECTION_PLACE[c.dest]} is where {obj} should be {PARTICIPLE[verb]}",
                    False,
                )
            return f"{verb} {obj} {way}", True
        role = "push" if c.kind == "push_to" else c.kind
        verb = self.word(role)
        prep = self.choice(PREPOSITIONS[c.kind])
        dest = self.np(c.dest)
        if o == "object-first":
            options = [f"take {obj} and {verb} it {prep} {dest}", f"{obj}: {verb} it {prep} {dest}"]
            if c.kind != "push_to":
                options.append(f"{obj} goes {prep} {dest}")
            text = self.choice(options)
            return text, text.startswith("take")
        if o == "dest-first":
            return f"{prep} {dest}, {verb} {obj}", False
        if o == "passive":
            return f"{obj} should be {PARTICIPLE[verb]} {prep} {dest}", False
        if o == "where":
            end = "should go" if c.kind != "push_to" else f"should be {PARTICIPLE[verb]}"
            return f"{dest} is where {obj} {end}", False
        if c.kind == "carry" and self.rng.random() < 0.3:
            return f"pick up {obj} and {verb} it {prep} {dest}", True
        return f"{verb} {obj} {prep} {dest}", True

    def _sort(self) -> tuple[str, bool]:
        cube, pad, verb = self.word("cube"), self.word("pad"), self.word("carry")
        same = (
            self.choice(("that has its colour", "which has its colour"))
            if self.noun == "relative"
            else self.choice(("of its colour", "of the same colour", "matching its colour"))
        )
        o = self.order
        if o == "object-first":
            return f"each {cube}: {verb} it on the {pad} {same}", False
        if o == "dest-first":
            return f"on the {pad} {same}, {verb} each {cube}", False
        if o == "passive":
            return f"every {cube} should be {PARTICIPLE[verb]} on the {pad} {same}", False
        if o == "where":
            return f"the {pad} {same} is where each {cube} should go", False
        return self.choice((f"sort the {plural(cube)} onto the {plural(pad)} by colour",
                            f"{verb} every {cube} on the {pad} {same}")), True  # fmt: skip

    # ------------------------------------------------------------------ the frame

    def frame_text(
        self, body: str, imperative: bool, first: str | None, other: str | None
    ) -> tuple[str, str]:
        """(text, the frame it took): ``body`` in this instruction's frame. A body that does not
        start with its verb (``imperative`` False) takes the frames that fit any sentence."""
        f = self.frame
        if f == "polite":
            if imperative:
                return self.choice((f"please {body}", f"{body}, please", f"could you {body}?",
                                    f"can you {body}?")), f  # fmt: skip
            return self.choice((f"{body}, please", f"please: {body}")), f
        if f == "want":
            if imperative:
                return self.choice((f"i want you to {body}", f"i'd like you to {body}")), f
            return self.choice((f"here is what i want: {body}", f"what i'd like: {body}")), f
        if f == "two-sentences" and first is not None:
            lead = self.choice((f"find {first}.", f"there is {first} on the table.",
                                f"look at {first}."))  # fmt: skip
            return f"{lead} {body}.", f
        if f == "distractor" and other is not None:
            other_np = self.np(other)
            options = [f"{body}, not {other_np}", f"{body}. do not touch {other_np}"]
            if imperative:
                options.append(f"leave {other_np} alone and {body}")
            return self.choice(options), f
        if f == "job":
            if imperative:
                return self.choice((f"your job is to {body}", f"the goal is to {body}",
                                    f"here is the task: {body}")), f  # fmt: skip
            return self.choice((f"your job: {body}", f"the goal: {body}")), f
        return body, "plain"


def plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("x", "s", "sh", "ch")) else "s")


def describe(
    task: str, plan: list[Subtask], scene: list[str], rng: np.random.Generator, split: str
) -> tuple[str, dict[str, str]]:
    """(instruction, phenomena) saying ``plan`` in ``task``'s scene (object names such as
    ``red_cube``) under ``split`` (one of :data:`GENERATED_SPLITS`). Phenomena: the order, noun
    and frame drawn, and ``synonym``: ``heldout`` when a task-held-out synonym was used."""
    speaker = _Speaker(task, split, rng)
    clauses = clauses_of(task, plan)
    parts = [speaker.clause(c) for c in clauses]
    if len(parts) == 1:
        body, imperative = parts[0]
    else:
        body = parts[0][0]
        for text, _ in parts[1:]:
            body += speaker.choice(JOINERS) + text
        if speaker.rng.random() < 0.3:
            body = "first " + body
        imperative = parts[0][1]
    named = {n for c in clauses for n in (c.obj, c.dest) if n}
    others = [] if task == "sort" else [n for n in scene if n not in named]
    other = speaker.choice(others) if others else None
    first = speaker.np(clauses[0].obj) if clauses[0].obj else None
    if speaker.frame == "two-sentences" and len(clauses) > 1:
        first = None  # a chain is already several sentences
    text, frame = speaker.frame_text(body, imperative, first, other)
    if split == "heldout-synonym" and not speaker.used_heldout_synonym:
        raise ValueError(f"{task} has no held-out synonym for this plan")
    phenomena = {
        "order": speaker.order,
        "noun": speaker.noun,
        "frame": frame,
        "synonym": "heldout" if speaker.used_heldout_synonym else "train",
    }
    return text, phenomena
