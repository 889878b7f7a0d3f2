"""Colours, object names, the subtask vocabulary and instruction templates.

Objects are named by colour and kind (``red_cube``, ``green_pad``). A subtask is a verb with
arguments and prints as a label from a small discrete vocabulary: ``reach(red_target)``,
``pick(red_cube)``, ``place(green_pad)``, ``place(blue_cube)`` (stacking), ``push(red_cube, green_pad)``
and ``push(blue_cube, left)``. Directions are the robot's own: it faces +x, so left is +y.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.15, 0.12),
    "green": (0.15, 0.70, 0.20),
    "blue": (0.15, 0.30, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.55, 0.20, 0.75),
    "orange": (0.98, 0.50, 0.05),
}
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
KINDS: tuple[str, ...] = ("cube", "pad", "target")
VERBS: tuple[str, ...] = ("reach", "pick", "place", "push")

DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (0.0, 1.0),
    "right": (0.0, -1.0),
    "forward": (1.0, 0.0),
    "backward": (-1.0, 0.0),
}


@dataclass(frozen=True)
class Subtask:
    """One step of a plan. ``obj`` is what is acted on; ``dest`` is a named object or a direction."""

    verb: str
    obj: str
    dest: str | None = None

    def __post_init__(self) -> None:
        if self.verb not in VERBS:
            raise ValueError(f"unknown subtask verb {self.verb!r}; known: {', '.join(VERBS)}")

    @property
    def label(self) -> str:
        if self.verb == "place":
            return f"place({self.dest})"
        if self.verb == "push":
            return f"push({self.obj}, {self.dest})"
        return f"{self.verb}({self.obj})"

    def __str__(self) -> str:
        return self.label


def _vocabulary() -> tuple[str, ...]:
    names = {kind: [f"{c}_{kind}" for c in COLOR_NAMES] for kind in KINDS}
    labels = ["none"]
    labels += [f"reach({t})" for t in names["target"]]
    labels += [f"pick({c})" for c in names["cube"]]
    labels += [f"place({d})" for d in names["pad"] + names["cube"]]
    for c in names["cube"]:
        labels += [f"push({c}, {d})" for d in names["pad"] + list(DIRECTIONS)]
    return tuple(labels)


SUBTASK_VOCAB: tuple[str, ...] = _vocabulary()
"""Every subtask label any task can emit; index 0 is ``none`` (no active subtask)."""
SUBTASK_INDEX: dict[str, int] = {label: i for i, label in enumerate(SUBTASK_VOCAB)}


def subtask_id(label: str) -> int:
    try:
        return SUBTASK_INDEX[label]
    except KeyError:
        raise KeyError(
            f"{label!r} is not in the subtask vocabulary ({len(SUBTASK_VOCAB)} labels)"
        ) from None


def spoken(name: str) -> str:
    """``red_cube`` -> ``red cube``."""
    return name.replace("_", " ")


TEMPLATES: dict[str, tuple[str, ...]] = {
    "reach": (
        "reach the {obj}",
        "move the gripper to the {obj}",
        "touch the {obj} with the gripper",
        "go to the {obj}",
    ),
    "push_to": (
        "push the {obj} onto the {dest}",
        "slide the {obj} to the {dest}",
        "nudge the {obj} over to the {dest}",
        "push the {obj} into the {dest}",
    ),
    "push_dir": (
        "push the {obj} to the {dest}",
        "slide the {obj} {dest}",
        "shove the {obj} to the {dest}",
        "move the {obj} {dest} by pushing it",
    ),
    "pick_place": (
        "put the {obj} on the {dest}",
        "place the {obj} onto the {dest}",
        "pick up the {obj} and put it on the {dest}",
        "move the {obj} to the {dest}",
    ),
    "stack": (
        "stack the {obj} on the {dest}",
        "put the {obj} on top of the {dest}",
        "place the {obj} onto the {dest}",
        "pick up the {obj} and stack it on the {dest}",
    ),
    "sort": (
        "sort the cubes onto the pads of their colour",
        "put every cube on the pad of the same colour",
        "place each cube on its matching pad",
        "match the cubes to the pads by colour",
    ),
}
HELDOUT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "reach": ("bring your fingers to the {obj}", "hover over the {obj}"),
    "push_to": ("shift the {obj} until it sits on the {dest}", "drive the {obj} onto the {dest}"),
    "push_dir": ("give the {obj} a push {dest}", "nudge the {obj} {dest}"),
    "pick_place": ("grab the {obj} and set it down on the {dest}", "the {obj} goes on the {dest}"),
    "stack": ("lift the {obj} and rest it on the {dest}", "the {obj} goes on top of the {dest}"),
    "sort": (
        "each cube belongs on the pad that has its colour",
        "tidy the cubes: same colour pad for each",
    ),
}
"""Paraphrases never used by the training splits: ``language="unseen-paraphrase"`` draws only
these, to measure whether an agent understood the words or memorised the sentences."""
JOINERS: tuple[str, ...] = (", then ", " and then ", ". After that, ", ", next ")

TEMPLATE_SPLITS: tuple[str, ...] = ("all", "templates", "train", "unseen-paraphrase", "unseen-composition")
"""The splits of the four-template language (``templates`` is another name of ``all``)."""
GENERATED: tuple[str, ...] = (
    "varied", "heldout-passive", "heldout-where", "heldout-relative", "heldout-job",
    "heldout-synonym",
)  # fmt: skip
"""The splits of the varied generator (``envs.instructions.GENERATED_SPLITS``)."""
LANGUAGE_SPLITS: tuple[str, ...] = TEMPLATE_SPLITS + GENERATED
HELDOUT_SPLITS: tuple[str, ...] = ("unseen-paraphrase", "unseen-composition")
"""The splits an evaluation measures beside ``all``."""
NO_COMPOSITION: tuple[str, ...] = ("reach", "sort")
"""Tasks whose instructions pair no cube with a destination: no unseen composition exists."""


def has_split(task: str, split: str) -> bool:
    """Whether ``task`` can draw instructions of language ``split``."""
    if split == "heldout-synonym":
        return True
    return split != "unseen-composition" or task not in NO_COMPOSITION


"""Which instructions an env draws (``TaskConfig.language``):

* ``all``: the training templates and every colour/destination combination (the default);
* ``train``: the same templates, but never a held-out combination (see :func:`is_heldout_pair`);
  collect demos with it to test generalisation;
* ``unseen-paraphrase``: the held-out templates (:data:`HELDOUT_TEMPLATES`) on training
  combinations;
* ``unseen-composition``: the training templates on scenes whose instruction pairs a cube
  with a destination it was never paired with in ``train`` (reach and sort pair nothing, so
  they cannot draw one).
"""


def phrase(kind: str, rng: np.random.Generator, templates: dict | None = None, **names: str) -> str:
    """One paraphrase of a meaning, drawn with ``rng`` from ``templates`` (default: the
    training templates)."""
    options = (TEMPLATES if templates is None else templates)[kind]
    text = options[int(rng.integers(len(options)))]
    return text.format(**{k: spoken(v) for k, v in names.items()})


def is_heldout_pair(color: str, dest: str) -> bool:
    """Whether a cube of ``color`` going to ``dest`` (an object name or a direction) is a
    combination the ``train`` split never shows. Every colour keeps other partners in
    training: a cube colour is held out with the destination colour three steps along the
    palette (6 of the 30 colour pairs), and with one direction each (6 of 24)."""
    i = COLOR_NAMES.index(color)
    if dest in DIRECTIONS:
        return (i + tuple(DIRECTIONS).index(dest)) % len(DIRECTIONS) == 0
    j = COLOR_NAMES.index(dest.split("_")[0])
    return (j - i) % len(COLOR_NAMES) == len(COLOR_NAMES) // 2


def plan_pairs(plan: list[Subtask]) -> list[tuple[str, str]]:
    """(cube colour, destination) of every place and push in a plan whose destination is not
    of the cube's own colour (sort's "the pad of its colour" is a rule, not a combination)."""
    return [
        (s.obj.split("_")[0], s.dest)
        for s in plan
        if s.verb in ("place", "push")
        and s.dest is not None
        and s.dest.split("_")[0] != s.obj.split("_")[0]
    ]


def join_clauses(clauses: list[str], rng: np.random.Generator) -> str:
    """Chain instructions into one sentence with varied connectives."""
    text = clauses[0]
    for clause in clauses[1:]:
        text += JOINERS[int(rng.integers(len(JOINERS)))] + clause
    return text
