"""Links over object identities: what the VLA's language path predicts and what its action head
reads.

An identity is a colour and a kind (``policies.perception.identity``: 18 of them); the perceived
table holds every identity's presence and position. A link names identities: the object acted
on, its destination (another identity, or none) and a direction. The action head reads the
links' geometry through :func:`envs.link_features.link_features` on a scene laid out as the 18
identities, so a link's features are exactly those a parsed-language agent computes.
"""

from __future__ import annotations

import math

import numpy as np

from envs.language import COLOR_NAMES, DIRECTIONS
from envs.link_features import KINDS, MAX_LINKS, Link, link_features
from policies.perception import NUM_IDENTITIES, identity, object_state_from_table

IDENTITY_KINDS: tuple[str, ...] = tuple(KINDS[i % len(KINDS)] for i in range(NUM_IDENTITIES))
"""The scene layout whose slot ``j`` is identity ``j``."""
IDENTITIES = np.arange(NUM_IDENTITIES)
DIRECTION_CLASSES: tuple[str | None, ...] = (None, *DIRECTIONS)
NO_DEST = NUM_IDENTITIES
"""The destination class of a link with no destination object."""


def identity_of(name: str) -> int:
    """``red_cube`` -> its identity index."""
    color, kind = name.split("_")
    return identity(color, kind)


def identity_name(index: int) -> str:
    return f"{COLOR_NAMES[index // len(KINDS)]}_{KINDS[index % len(KINDS)]}"


def plan_links(labels: list[str]) -> list[Link]:
    """The links of a plan of subtask labels (``pick(red_cube)``, ``place(blue_pad)``, ...): a
    pick and its place are one link; a push, a reach are one each."""
    out: list[Link] = []
    held: str | None = None
    for label in labels:
        verb, _, rest = label.partition("(")
        args = [a.strip() for a in rest.rstrip(")").split(",")]
        if verb == "pick":
            held = args[0]
        elif verb == "place":
            if held is None:
                raise ValueError(f"a place with no pick before it in {labels}")
            out.append(Link(identity_of(held), identity_of(args[0]), None, False))
            held = None
        elif verb == "push":
            if args[1] in DIRECTIONS:
                out.append(Link(identity_of(args[0]), None, args[1], True))
            else:
                out.append(Link(identity_of(args[0]), identity_of(args[1]), None, True))
        elif verb == "reach":
            out.append(Link(identity_of(args[0]), None, None, False))
        else:
            raise ValueError(f"unknown subtask {label!r}")
    return out[:MAX_LINKS]


def named_identities(links: list[Link]) -> list[int]:
    """The identities ``links`` name (objects and destination objects)."""
    return [i for link in links for i in (link.obj, link.dest) if i is not None]


def link_targets(links: list[Link]) -> dict[str, np.ndarray]:
    """The language path's training targets, ``(MAX_LINKS,)`` each: ``present``, ``obj``
    (identity; 0 where absent), ``dest`` (identity or :data:`NO_DEST`), ``direction`` (class in
    :data:`DIRECTION_CLASSES`) and ``pushed``."""
    out = {
        "present": np.zeros(MAX_LINKS, np.float32),
        "obj": np.zeros(MAX_LINKS, np.int64),
        "dest": np.full(MAX_LINKS, NO_DEST, np.int64),
        "direction": np.zeros(MAX_LINKS, np.int64),
        "pushed": np.zeros(MAX_LINKS, np.float32),
    }
    for k, link in enumerate(links[:MAX_LINKS]):
        out["present"][k] = 1.0
        out["obj"][k] = link.obj
        if link.dest is not None:
            out["dest"][k] = link.dest
        out["direction"][k] = DIRECTION_CLASSES.index(link.direction)
        out["pushed"][k] = float(link.pushed)
    return out


def scene_names(table: np.ndarray) -> list[str]:
    """The names of the identities a table holds present."""
    return [identity_name(i) for i in np.flatnonzero(table[:, 0] > 0)]


def hand_yaw(proprio: np.ndarray) -> float:
    return float(math.atan2(proprio[3], proprio[4]))


def table_states(tables: np.ndarray, proprio: np.ndarray) -> np.ndarray:
    """``(T, D)`` object states of identity tables ``(T, K, 4)`` in the identities' layout."""
    return np.stack(
        [
            object_state_from_table(t, IDENTITY_KINDS, IDENTITIES, hand_yaw(p))
            for t, p in zip(tables, np.atleast_2d(proprio))
        ]
    )


def features_of_links(
    tables: np.ndarray,
    proprio: np.ndarray,
    initial_table: np.ndarray,
    links: list[Link],
    slot_order: str = "active",
) -> np.ndarray:
    """``(T, STATE_DIM)`` link features of an episode's tables ``(T, K, 4)`` (the first table
    ``initial_table``, where pushes are measured from), active link first (or in the
    instruction's order: ``slot_order="instruction"``)."""
    states = table_states(tables, proprio)
    initial = table_states(initial_table[None], np.atleast_2d(proprio)[:1])[0]
    return link_features(IDENTITY_KINDS, proprio, states, initial, links, slot_order)
