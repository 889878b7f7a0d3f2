"""Training data of the agents that act on perceived objects (``bc-keypoints``,
``hierarchical-keypoints``; ``policies.bc_keypoints``), used by ``embodied.training.baselines``.

Two stages. First, perception learns from every frame (labels projected from the privileged
``object_state`` through the cameras' geometry) while the decision networks learn from the
*true* tables of the demos. Second, perception runs over the training frames step by step, as
the agent will (its errors, its memory of occluded objects), and the decision networks continue
on those perceived tables with the same expert labels: without it bc-keypoints reached 32% on
pick-place, with it 96% (docs/BENCHMARKS.md).

The arrays the decision networks read, from one set of tables (true or perceived):

* ``features (N_act, STATE_DIM)``: the instruction's task-relative features (bc-keypoints'
  policy; the hierarchical agent's System 2 reads the same);
* ``s1_features (N_act, SYSTEM1_DIM)``: the executed subtask's features and verb (System 1);
* ``codes (E, C, CODE_DIM)``, ``code_mask (E, C)``: each episode's candidate subtasks;
  ``plan_targets (E, S + 1)``: the candidate at each plan position (``none`` past the end).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.base import IMAGE_PREFIX
from envs.language import SUBTASK_VOCAB
from envs.task_features import TaskFeatures
from policies.bc_keypoints import hand_yaw, perceived_tables, slot_identities, table_features
from policies.grounded_vla import training as grounded_vla_training
from policies.hierarchical_keypoints import subtask_features
from policies.history import NO_HISTORY, HistoryShape, history_shape, with_history
from policies.object_planner import CODE_DIM, candidates
from policies.perception import object_state_from_table
from policies.perception_geometry import cell_labels
from world_models import Trainer

VLA_KINDS = ("end-to-end", "hierarchical")
"""The kinds whose language is learned (``policies.grounded_vla``)."""
KEYPOINT_KINDS = ("bc-keypoints", "hierarchical-keypoints", *VLA_KINDS)


def slot_order_of(config) -> str:
    """The slot order of ``features``: System 2's ``planner_slots``; bc-keypoints' policy reads
    the active link first."""
    return getattr(config, "planner_slots", "active")


def label_cells(demos, rig: np.ndarray) -> None:
    """Fill ``demos.cells`` from the cameras' geometry ``rig``."""
    keys = sorted(demos.images)
    size = int(demos.images[keys[0]].shape[1])
    demos.cells = dict(zip(keys, cell_labels(demos.tables, rig, demos.proprio, size)))


def _episode_rows(demos, e: int) -> slice:
    return slice(demos.obs_start[e], demos.obs_start[e] + demos.lengths[e])


def decision_arrays(
    kind: str,
    demos,
    tables: np.ndarray,
    from_perception: bool = False,
    slot_order: str = "active",
    history: HistoryShape = NO_HISTORY,
) -> dict[str, np.ndarray]:
    """The decision networks' inputs computed from ``tables (N_obs, K, 4)`` (module docstring);
    ``features`` lay out the links in ``slot_order`` (System 2's ``planner_slots``).

    System 2's candidates are bound on each episode's first table. With ``from_perception``,
    an episode whose first frame misses an object its plan names (perception's error, e.g. a
    cube hidden by the arm; 1 of 6,000 six-task demos) takes its candidates from the true table
    instead; on true tables that is a data error and raises.
    """
    if kind in VLA_KINDS:
        return grounded_vla_training.decision_arrays(
            demos, tables, history, system2=kind == "hierarchical"
        )
    features, s1, codes, targets = [], [], [], []
    for e, (instruction, kinds) in enumerate(demos.episodes):
        rows = _episode_rows(demos, e)
        t, p = tables[rows], demos.proprio[rows]
        features.append(table_features(t, p, instruction, kinds, slot_order))
        if kind == "bc-keypoints":
            continue
        acts = slice(demos.act_start[e], demos.act_start[e] + demos.lengths[e])
        labels = [SUBTASK_VOCAB[i] for i in demos.subtask_ids[acts]]
        s1.append(subtask_features(t, p, labels, kinds))
        tf = TaskFeatures(kinds)
        plan = [*demos.plans[e], 0]  # "none" past the end of the plan
        first_tables = (t[0], demos.tables[rows.start]) if from_perception else (t[0],)
        for first_table in first_tables:
            slots = slot_identities(first_table, kinds, instruction)
            first = object_state_from_table(first_table, kinds, slots, hand_yaw(p[0]))
            index, code = candidates(instruction, tf.bind(instruction, first))
            where = {int(v): i for i, v in enumerate(index)}
            missing = [SUBTASK_VOCAB[i] for i in plan if i not in where]
            if not missing:
                break
        codes.append(code)
        if missing:
            raise ValueError(
                f"episode {e} ({instruction!r}): plan subtasks {missing} name objects the "
                "instruction does not bind in its scene"
            )
        targets.append([where[i] for i in plan])
    out = {"features": np.concatenate(features).astype(np.float32)}
    # the state policy's past steps (their features, their expert labels): bc-keypoints' policy
    # reads the instruction's features, the hierarchical agent's System 1 its subtask's
    if kind == "bc-keypoints":
        out["features"] = with_history(out["features"], demos.actions, demos.lengths, history)
        return out
    width = max(len(c) for c in codes)
    out["codes"] = np.zeros((len(codes), width, CODE_DIM), dtype=np.float32)
    out["code_mask"] = np.zeros((len(codes), width), dtype=np.float32)
    for e, c in enumerate(codes):
        out["codes"][e, : len(c)], out["code_mask"][e, : len(c)] = c, 1.0
    out["plan_targets"] = np.zeros((len(targets), max(map(len, targets))), dtype=np.int64)
    out["plan_length"] = np.array([len(t) - 1 for t in targets], dtype=np.int64)
    for e, t in enumerate(targets):
        out["plan_targets"][e, : len(t)] = t
    s1_features = np.concatenate(s1).astype(np.float32)
    out["s1_features"] = with_history(s1_features, demos.actions, demos.lengths, history)
    return out


def task_balanced(demos, rows_per_episode: np.ndarray):
    """``draw(rng, n) -> n row indices`` of arrays laid out episode by episode
    (``rows_per_episode[e]`` rows each): every task equally likely, rows uniform within a task.

    Uniform rows would give each task its share of the frames: on the six tasks' demos reach
    gets 3% and sort 38%, and a one-network agent learnt reach from 3% of its updates.
    """
    row_task = np.repeat(np.asarray(demos.tasks), rows_per_episode)
    _, task_of_row, task_rows = np.unique(row_task, return_inverse=True, return_counts=True)
    if len(task_rows) == 1:  # one task: plain uniform rows (the single-task benchmarks' draws)
        return lambda rng, n: rng.integers(0, len(row_task), n)
    cdf = np.cumsum(1.0 / task_rows[task_of_row])
    cdf /= cdf[-1]
    return lambda rng, n: np.minimum(np.searchsorted(cdf, rng.random(n), "right"), len(cdf) - 1)


def decision_sampler(
    kind: str, demos, arrays: dict[str, np.ndarray], batch_size: int, config: Any = None
):
    """``sample(rng) -> batch`` for the decision networks' ``loss``."""
    if kind in VLA_KINDS:
        return grounded_vla_training.decision_sampler(demos, arrays, config, task_balanced)
    episode_of = np.repeat(np.arange(len(demos.lengths)), demos.lengths)
    draw = task_balanced(demos, demos.lengths)

    def sample(rng: np.random.Generator) -> dict[str, np.ndarray]:
        rows = draw(rng, batch_size)
        batch = {"features": arrays["features"][rows], "actions": demos.actions[rows]}
        if kind == "bc-keypoints":
            return batch
        ep = episode_of[rows]
        pointer = demos.pointer[demos.obs_start[ep] + rows - demos.act_start[ep]]
        u = rng.random(batch_size)  # the current position, one or two back, or the next
        back = np.maximum(pointer - rng.integers(1, 3, batch_size), 0)
        index = np.where(u < 0.5, pointer, np.where(u < 0.85, back, pointer + 1))
        index = np.minimum(index, arrays["plan_length"][ep])
        batch["s1_features"] = arrays["s1_features"][rows]
        batch["position"] = index
        batch["codes"], batch["code_mask"] = arrays["codes"][ep], arrays["code_mask"][ep]
        batch["target"] = arrays["plan_targets"][ep, index]
        batch["done"] = (index < pointer).astype(np.float32)
        return batch

    return sample


def sampler(
    kind: str, demos, arrays: dict[str, np.ndarray], batch_size: int, decision_batch: int,
    config: Any = None,
):  # fmt: skip
    """Stage one: ``batch_size`` frames for perception, ``decision_batch`` steps for the rest."""
    decision = decision_sampler(kind, demos, arrays, decision_batch, config)
    draw = task_balanced(demos, demos.lengths + 1)

    def sample(rng: np.random.Generator) -> dict[str, np.ndarray]:
        frames = draw(rng, batch_size)
        batch = {f"obs/{k}": v[frames] for k, v in demos.images.items()}
        for k, (cells, seen) in demos.cells.items():
            cam = k[len(IMAGE_PREFIX) :]
            batch[f"cells/{cam}"] = cells[frames]
            batch[f"seen/{cam}"] = seen[frames]
        batch["table"], batch["proprio"] = demos.tables[frames], demos.proprio[frames]
        return batch | decision(rng)

    return sample


def perceived(policy, demos) -> np.ndarray:
    """``(N_obs, K, 4)``: the tables the agent would hold at each demo frame, step by step."""
    out = []
    for e in range(len(demos.lengths)):
        rows = slice(demos.obs_start[e], demos.obs_start[e] + demos.lengths[e] + 1)
        images = {k[len(IMAGE_PREFIX) :]: v[rows] for k, v in demos.images.items()}
        out.append(perceived_tables(policy.perception, images, demos.proprio[rows]))
    return np.concatenate(out)


def fit_decision_on_perception(
    kind: str, policy, config, demos, val, out: Path, seed: int, progress: bool,
    tensorboard: bool, device: torch.device,
) -> dict[str, Any]:  # fmt: skip
    """Stage two: ``policy.decision`` continues on what perception reports on the training
    frames, with the same expert labels, so it acts on what it will see."""
    start = time.perf_counter()
    policy.cpu().eval()
    order = slot_order_of(config)
    past = history_shape(config)
    train_arrays = decision_arrays(kind, demos, perceived(policy, demos), True, order, past)
    val_arrays = decision_arrays(kind, val, perceived(policy, val), True, order, past)
    seconds = time.perf_counter() - start
    settings = replace(
        config.train, steps=config.state_steps, batch_size=config.state_batch,
        learning_rate=1e-3, warmup=0, eval_every=max(1, config.state_steps // 4),
        checkpoint_every=max(1, config.state_steps // 4),
    )  # fmt: skip
    val_sample = decision_sampler(kind, val, val_arrays, config.state_batch, config)
    trainer = Trainer(
        policy.decision,
        out,
        decision_sampler(kind, demos, train_arrays, config.state_batch, config),
        kind=f"{kind}-decision-training",
        settings=settings,
        identity={"agent": kind, "stage": "decision_on_perception"},
        seed=seed,
        validation=[val_sample(np.random.default_rng([seed, 10**6 + i])) for i in range(4)],
        tensorboard=tensorboard,
        desc=f"train {kind} decisions on perception ({out.parent.name})",
        device=device,
    )
    trainer.resume()
    trainer.fit(progress=progress)
    policy.cpu()
    last = trainer.history[-1] if trainer.history else {}
    return {
        "steps": trainer.step,
        "perceive_seconds": round(seconds, 1),
        "train_seconds": round(trainer.total_seconds, 3),
        "final": {k: v for k, v in last.items() if k.startswith("val_") or k == "loss"},
    }
