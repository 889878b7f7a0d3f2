"""The arrays and batches the ``grounded-vla`` decision network trains on, from the demos
(:class:`embodied.training.baselines.Demos`) and a set of identity tables (true in the first
stage, perceived in the second).

Every update draws fresh instructions for its episodes from the generator
(:func:`envs.instructions.describe`, the config's ``language`` split; a quarter of the time the
demo's own recorded instruction) with misspellings (``typo_rate``), so the language path meets
thousands of phrasings of each scene while the action head learns from the same demos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.instructions import describe
from envs.language import SUBTASK_VOCAB, Subtask
from policies.grounded_vla.config import GroundedVLAConfig
from policies.grounded_vla.links import (
    features_of_links,
    link_targets,
    plan_links,
    scene_names,
)
from policies.grounded_vla.model import TARGET_KEYS
from policies.grounded_vla.tokenizer import PieceTokenizer, add_typos
from policies.history import HistoryShape, with_history

RECORDED_SHARE = 0.25
"""The share of drawn instructions that are the demo's own recorded one."""


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


@dataclass
class EpisodeMeanings:
    """What each episode means, for drawing its instructions: task, plan, scene, recorded text."""

    tasks: list[str]
    plans: list[list[Subtask]]
    scenes: list[list[str]]
    recorded: list[str]


def decision_arrays(
    demos, tables: np.ndarray, history: HistoryShape
) -> tuple[dict[str, np.ndarray], EpisodeMeanings]:
    """``features (N_act, F)`` of the plan's links on ``tables (N_obs, K, 4)``, with the history
    block; per episode its first table (the true one where the given first table misses an
    object the plan names) and its link targets ``link_<key> (E, M)``."""
    features, firsts, targets = [], [], []
    meanings = EpisodeMeanings([], [], [], [])
    for e, (instruction, _) in enumerate(demos.episodes):
        rows = slice(demos.obs_start[e], demos.obs_start[e] + demos.lengths[e])
        labels = [SUBTASK_VOCAB[i] for i in demos.plans[e]]
        links = plan_links(labels)
        t = tables[rows]
        features.append(features_of_links(t, demos.proprio[rows], t[0], links))
        first = t[0]
        named = [i for link in links for i in (link.obj, link.dest) if i is not None]
        if any(first[i, 0] <= 0 for i in named):
            first = demos.tables[rows.start]
        firsts.append(first)
        targets.append(link_targets(links))
        meanings.tasks.append(demos.tasks[e])
        meanings.plans.append(plan_subtasks(labels))
        meanings.scenes.append(scene_names(demos.tables[rows.start]))
        meanings.recorded.append(instruction)
    out = {
        "features": with_history(
            np.concatenate(features).astype(np.float32), demos.actions, demos.lengths, history
        ),
        "first_table": np.stack(firsts).astype(np.float32),
    }
    for key in TARGET_KEYS:
        out[f"link_{key}"] = np.stack([t[key] for t in targets])
    return out, meanings


def draw_instructions(
    meanings: EpisodeMeanings, episodes: np.ndarray, rng: np.random.Generator,
    config: GroundedVLAConfig,
) -> list[str]:  # fmt: skip
    """One fresh instruction per episode index."""
    texts = []
    for e in episodes:
        if rng.random() < RECORDED_SHARE:
            text = meanings.recorded[e]
        else:
            text, _ = describe(
                meanings.tasks[e], meanings.plans[e], meanings.scenes[e], rng, config.language
            )
        texts.append(add_typos(text, rng, config.typo_rate))
    return texts


def decision_sampler(
    demos, arrays: dict[str, np.ndarray], meanings: EpisodeMeanings,
    config: GroundedVLAConfig, balanced,
):  # fmt: skip
    """``sample(rng) -> batch`` of ``state_batch`` steps (every task equally likely:
    ``balanced(demos, rows_per_episode)``) and ``language_batch`` freshly worded episodes."""
    draw_rows = balanced(demos, demos.lengths)
    draw_episodes = balanced(demos, np.ones(len(demos.lengths), np.int64))
    tokenizer = PieceTokenizer(config.buckets, config.max_words)

    def sample(rng: np.random.Generator) -> dict[str, Any]:
        rows = draw_rows(rng, config.state_batch)
        batch = {"features": arrays["features"][rows], "actions": demos.actions[rows]}
        eps = draw_episodes(rng, config.language_batch)
        batch["tokens"] = tokenizer.encode_batch(draw_instructions(meanings, eps, rng, config))
        batch["first_table"] = arrays["first_table"][eps]
        for key in TARGET_KEYS:
            batch[f"link_{key}"] = arrays[f"link_{key}"][eps]
        return batch

    return sample
