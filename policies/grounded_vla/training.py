"""The arrays and batches the grounded VLA's decision networks train on, from the demos
(:class:`embodied.training.baselines.Demos`) and a set of identity tables (true in the first
stage, perceived in the second).

The language path learns on *units*: an episode and its whole plan (the end-to-end agent, which
reads the full instruction), or one link of an episode (System 1 of the hierarchical agent,
which reads one subtask). Every update draws fresh words for its units from the generator
(:func:`envs.instructions.describe`, the config's ``language`` split; a quarter of the time the
unit's own words: the demo's recorded instruction, or the subtask as System 2 says it), with
misspellings (``typo_rate``), so the language path meets thousands of phrasings of each scene
while the action head learns from the same demos. System 2 learns to read fresh wordings of
the whole instruction (counterfactual meanings included), to track the link the expert was
working on at every step, and to say a link in words (the demos' links and random ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.instructions import describe
from envs.language import DIRECTIONS, SUBTASK_VOCAB, Subtask
from policies.grounded_vla.config import GroundedVLAConfig
from policies.grounded_vla.links import (
    features_of_links,
    link_targets,
    named_identities,
    plan_links,
    scene_names,
)
from policies.grounded_vla.model import TARGET_KEYS  # (the import registers the builder)
from policies.grounded_vla.speaker import link_code, random_link, said_ids, subtask_text
from policies.grounded_vla.tokenizer import PieceTokenizer, add_typos
from policies.history import HistoryShape, with_history

RANDOM_LINK_SHARE = 0.5
"""The share of the links System 2's speaker learns to say that are random (any identities)."""
RECORDED_SHARE = 0.25
"""The share of drawn words that are the unit's own (recorded instruction or System 2's words)."""
COUNTERFACTUAL_SHARE = 0.5
"""The share of drawn words that say another meaning of the same scene (the language path's
training only; :func:`counterfactual_plan`)."""


def plan_subtasks(labels: list[str]) -> list[Subtask]:
    """Subtask labels back to subtasks (a place's object is the cube picked before it)."""
    out, held = [], None
    for label in labels:
        verb, _, rest = label.partition("(")
        args = [a.strip() for a in rest.rstrip(")").split(",")]
        if verb == "place":
            out.append(Subtask("place", held, args[0]))
        else:
            out.append(Subtask(verb, args[0], args[1] if len(args) > 1 else None))
            held = args[0] if verb == "pick" else held
    return out


def link_of_position(plan: list[Subtask]) -> np.ndarray:
    """``(len(plan) + 1,)``: the link each plan position works on (the last link once done)."""
    done, out = 0, []
    for s in plan:
        out.append(done)
        done += s.verb != "pick"
    out.append(max(done - 1, 0))
    return np.asarray(out, np.int64)


def link_plans(plan: list[Subtask]) -> list[list[Subtask]]:
    """The plan cut into its links' subtasks."""
    cuts, current = [], []
    for s in plan:
        current.append(s)
        if s.verb != "pick":
            cuts.append(current)
            current = []
    return cuts


@dataclass
class Units:
    """What each unit means, for drawing its words: task, plan, scene, its own words."""

    tasks: list[str] = field(default_factory=list)
    plans: list[list[Subtask]] = field(default_factory=list)
    scenes: list[list[str]] = field(default_factory=list)
    own: list[str] = field(default_factory=list)
    episode: list[int] = field(default_factory=list)

    def add(self, task: str, plan: list[Subtask], scene: list[str], own: str, episode: int):
        for part, value in zip(
            (self.tasks, self.plans, self.scenes, self.own, self.episode),
            (task, plan, scene, own, episode),
        ):
            part.append(value)


@dataclass
class Meanings:
    """The language units (System 1's) and, for a hierarchical agent, the episodes (System 2's)."""

    units: Units
    episodes: Units | None = None


def decision_arrays(
    demos, tables: np.ndarray, history: HistoryShape, system2: bool = False
) -> dict[str, Any]:
    """``features (N_act, F)``: the action head's input at each step (the plan's links; with
    ``system2``, the link the expert was working on), with the history block; per unit its
    first table (the true one where the given one misses an object the unit names) and link
    targets ``link_<key> (U, M)``; with ``system2``, System 2's arrays (``s2_``: per step the
    plan's links in the instruction's order and the link the expert works on; per episode the
    first table and the plan's link targets; per unit its link's code and words); and
    ``meanings`` (:class:`Meanings`), what the sampler draws words from."""
    features, firsts, targets = [], [], []
    s2: dict[str, list] = {
        k: [] for k in ("features", "which", "first", "targets", "codes", "said")
    }
    units, episodes = Units(), Units()
    for e, (instruction, _) in enumerate(demos.episodes):
        rows = slice(demos.obs_start[e], demos.obs_start[e] + demos.lengths[e])
        labels = [SUBTASK_VOCAB[i] for i in demos.plans[e]]
        plan, links = plan_subtasks(labels), plan_links(labels)
        task, t, proprio = demos.tasks[e], tables[rows], demos.proprio[rows]
        scene = scene_names(demos.tables[rows.start])
        episodes.add(task, plan, scene, instruction, e)
        if system2:
            parts = list(zip(links, link_plans(plan)))
            pointer = demos.pointer[rows]
            which = link_of_position(plan)[np.minimum(pointer, len(plan))]
            step_features = None
            for k, (link, _) in enumerate(parts):  # each step: the link it works on, alone
                on = which == k
                if on.any():
                    f = features_of_links(t[on], proprio[on], t[0], [link])
                    if step_features is None:
                        step_features = np.zeros((len(t), f.shape[1]), np.float32)
                    step_features[on] = f
            features.append(step_features)
            s2["features"].append(features_of_links(t, proprio, t[0], links, "instruction"))
            s2["which"].append(which)
            s2["first"].append(_first_table(t[0], demos.tables[rows.start], links))
            s2["targets"].append(link_targets(links))
            for link, subplan in parts:
                # sort says its links as pick-place does ("put the red cube on the red pad")
                units.add("pick-place" if task == "sort" else task, subplan, scene,
                          subtask_text(link), e)  # fmt: skip
                s2["codes"].append(link_code(link))
                s2["said"].append(said_ids(subtask_text(link)))
                firsts.append(_first_table(t[0], demos.tables[rows.start], [link]))
                targets.append(link_targets([link]))
        else:
            features.append(features_of_links(t, proprio, t[0], links))
            units.add(task, plan, scene, instruction, e)
            firsts.append(_first_table(t[0], demos.tables[rows.start], links))
            targets.append(link_targets(links))
    out = {
        "features": with_history(
            np.concatenate(features).astype(np.float32), demos.actions, demos.lengths, history
        ),
        "first_table": np.stack(firsts).astype(np.float32),
    }
    out |= _stacked_targets("link_", targets)
    if system2:
        out["s2_features"] = np.concatenate(s2["features"]).astype(np.float32)
        out["s2_which"] = np.concatenate(s2["which"])
        out["s2_first_table"] = np.stack(s2["first"]).astype(np.float32)
        out |= _stacked_targets("s2_link_", s2["targets"])
        out["s2_codes"] = np.stack(s2["codes"])
        out["s2_said"] = np.stack(s2["said"])
    out["meanings"] = Meanings(units, episodes if system2 else None)
    return out


def _stacked_targets(prefix: str, targets: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-unit link targets stacked per key: ``{prefix + key: (U, M)}``."""
    return {f"{prefix}{key}": np.stack([t[key] for t in targets]) for key in TARGET_KEYS}


def _picked_targets(arrays, prefix: str, picks, changed: dict[int, dict[str, np.ndarray]]):
    """The picked units' link targets, those that now say a counterfactual meaning (``changed``,
    by position in ``picks``) replaced by its targets."""
    out = {}
    for key in TARGET_KEYS:
        out[prefix + key] = arrays[prefix + key][picks].copy()
        for i, targets in changed.items():
            out[prefix + key][i] = targets[key]
    return out


def _first_table(first: np.ndarray, true_first: np.ndarray, links) -> np.ndarray:
    return true_first if any(first[i, 0] <= 0 for i in named_identities(links)) else first


def counterfactual_plan(
    plan: list[Subtask], scene: list[str], rng: np.random.Generator
) -> list[Subtask]:
    """``plan`` with its objects swapped for others of the same kind in ``scene`` (a random
    permutation per kind) and its directions redrawn: a meaning the same scene could have had.
    Trained on, it takes away the shortcut of recognising a scene and recalling its answer
    without reading the words (100 pick-place scenes alone: 100% on them, 26% on new ones)."""
    mapping: dict[str, str] = {}
    for kind in ("cube", "pad", "target"):
        names = [n for n in scene if n.endswith("_" + kind)]
        mapping |= dict(zip(names, rng.permutation(names).tolist()))
    directions = list(DIRECTIONS)
    new_direction = {d: directions[int(rng.integers(len(directions)))] for d in directions}

    def swap(name: str | None) -> str | None:
        if name is None:
            return None
        return new_direction[name] if name in DIRECTIONS else mapping.get(name, name)

    return [Subtask(s.verb, swap(s.obj), swap(s.dest)) for s in plan]


def draw_words(
    units: Units, picks: np.ndarray, rng: np.random.Generator, config: GroundedVLAConfig,
    first_tables: np.ndarray | None = None, counterfactual: bool = True,
) -> tuple[list[str], dict[int, dict[str, np.ndarray]]]:  # fmt: skip
    """Fresh words for each picked unit, and the link targets of those (by position in
    ``picks``) that say a counterfactual meaning (:data:`COUNTERFACTUAL_SHARE` of them, where
    the task names its objects and ``first_tables`` hold every object the meaning names; none
    without ``counterfactual``: System 2 must say what the real instruction asks)."""
    texts, targets = [], {}
    for i, u in enumerate(picks):
        plan = units.plans[u]
        if counterfactual and units.tasks[u] != "sort" and rng.random() < COUNTERFACTUAL_SHARE:
            other = counterfactual_plan(plan, units.scenes[u], rng)
            links = plan_links([s.label for s in other])
            named = named_identities(links)
            if first_tables is None or all(first_tables[i][j, 0] > 0 for j in named):
                plan, targets[i] = other, link_targets(links)
        if plan is units.plans[u] and rng.random() < RECORDED_SHARE:
            text = units.own[u]
        else:
            text, _ = describe(units.tasks[u], plan, units.scenes[u], rng, config.language)
        texts.append(add_typos(text, rng, config.typo_rate))
    return texts, targets


def decision_sampler(demos, arrays: dict[str, Any], config: GroundedVLAConfig, balanced):
    """``sample(rng) -> batch`` of ``state_batch`` steps (every task equally likely:
    ``balanced(demos, rows_per_episode)``) and ``language_batch`` freshly worded units (and
    System 2's steps, for a hierarchical agent)."""
    draw_rows = balanced(demos, demos.lengths)
    draw_episodes = balanced(demos, np.ones(len(demos.lengths), np.int64))
    tokenizer = PieceTokenizer(config.buckets, config.max_words)
    meanings: Meanings = arrays["meanings"]
    units = meanings.units
    units_of = [[] for _ in demos.lengths]
    for u, e in enumerate(units.episode):
        units_of[e].append(u)

    def sample(rng: np.random.Generator) -> dict[str, Any]:
        rows = draw_rows(rng, config.state_batch)
        batch = {"features": arrays["features"][rows], "actions": demos.actions[rows]}
        eps = draw_episodes(rng, config.language_batch)
        picks = np.array([units_of[e][int(rng.integers(len(units_of[e])))] for e in eps])
        batch["first_table"] = arrays["first_table"][picks]
        texts, changed = draw_words(units, picks, rng, config, batch["first_table"])
        batch["tokens"] = tokenizer.encode_batch(texts)
        batch |= _picked_targets(arrays, "link_", picks, changed)
        if meanings.episodes is not None:
            batch |= _system2_batch(arrays, meanings.episodes, eps, rows, picks, rng, config,
                                    tokenizer)  # fmt: skip
        return batch

    return sample


def _system2_batch(arrays, episodes: Units, eps, rows, picks, rng, config, tokenizer):
    """System 2's part of a batch: fresh wordings of the episodes' whole instructions (and
    counterfactual meanings) for its reader, the steps ``rows`` for its tracker, the units'
    links ``picks`` (a share of them random links) for its speaker."""
    first = arrays["s2_first_table"][eps]
    words, changed = draw_words(episodes, eps, rng, config, first)
    out = {"s2_tokens": tokenizer.encode_batch(words), "s2_first_table": first}
    out |= _picked_targets(arrays, "s2_link_", eps, changed)
    out["s2_features"] = arrays["s2_features"][rows]
    out["s2_which"] = arrays["s2_which"][rows]
    codes, said = arrays["s2_codes"][picks].copy(), arrays["s2_said"][picks].copy()
    for i in np.flatnonzero(rng.random(len(picks)) < RANDOM_LINK_SHARE):
        link = random_link(rng)
        codes[i], said[i] = link_code(link), said_ids(subtask_text(link))
    return out | {"s2_codes": codes, "s2_said": said}
