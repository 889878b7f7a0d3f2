"""Train the reference baselines (``bc-state``, ``bc-pixels``) by imitation, with optional DAgger.

    RUN/
      round_0/checkpoint.pt   training state (atomic; resumed when present), tensorboard/
      round_0/agent.pt        the agent after plain behaviour cloning on the demos
      round_1/data/           DAgger round 1: the round-0 agent acts, the teacher labels
                              (an ordinary dataset directory: crash-safe, resumable, loadable)
      round_1/checkpoint.pt   round-0 weights trained further on demos + round 1
      round_1/agent.pt
      ...
      agent.pt                the last round's agent
      train.json              data, rounds, timings, the success of each round's rollouts

The teacher is the scripted expert (``expert``) or a trained ``bc-state`` run: a smooth
privileged teacher for a pixel student ("learning by cheating"). Each round's rollouts use
seeds of their own (``DAGGER_SEED + 10000 * round``), disjoint from the demos' and the
evaluation's.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import envs
from embodied.data.collect import collect_rollouts, expert_teacher
from embodied.data.dataset import DatasetError, EpisodeDataset, FrameStack
from embodied.training import keypoints
from embodied.training.data_split import data_summary, one_layout, split_episodes
from embodied.training.keypoints import KEYPOINT_KINDS
from envs.base import IMAGE_PREFIX, OBJECT_STATE, PROPRIO
from envs.language import SUBTASK_VOCAB
from envs.task_features import PROPRIO_USED, TaskFeatures, instruction_vector
from policies.bc import BC_KINDS, BCBundle, BCStateAgent
from policies.bc_config import bc_preset
from policies.history import history_shape, with_history
from policies.perception import identity_table
from policies.perception_geometry import camera_rig
from sandbox_common.atomic import atomic_write, write_json_atomic
from world_models import Trainer
from world_models.trainer import resolve_device

AGENT_FILE = "agent.pt"
DAGGER_SEED = 500_000
"""First seed of DAgger rollouts (demos start at 100000 in the benchmarks; evaluation at 0)."""


@functools.cache
def task_kinds(task: str) -> tuple[str, ...]:
    """The kinds of a task's scene objects, in scene order (the layout of ``object_state``)."""
    env = envs.make(task, obs_mode="state")
    try:
        return tuple(o.kind for o in env.objects)
    finally:
        env.close()


def open_datasets(roots: list[str | Path], kind: str) -> tuple[list[EpisodeDataset], dict]:
    """Open the dataset directories and check they hold what ``kind`` reads, in one layout."""
    if not roots:
        raise DatasetError("no dataset directories given")
    datasets = [EpisodeDataset(r) for r in roots]
    layouts = {}
    for ds in datasets:
        keys = ds.obs_keys
        missing = [k for k in (PROPRIO, OBJECT_STATE) if k not in keys]
        if missing:
            raise DatasetError(f"{ds.root}: no {missing} observations; it has {keys}")
        cfg = ds.meta.get("env_config", {})
        if kind != "bc-state":
            if not any(k.startswith(IMAGE_PREFIX) for k in keys):
                raise DatasetError(
                    f"{ds.root}: {kind} sees camera images; this dataset has {keys} "
                    "(collect with --obs-mode pixels)"
                )
            layout = {
                "obs_mode": "pixels",
                "cameras": list(cfg.get("cameras") or []),
                "image_size": cfg.get("image_size"),
            }
        else:
            layout = {"obs_mode": "state"}
        layouts[str(ds.root)] = layout
    return datasets, one_layout(layouts)


@dataclass
class Demos:
    """Every episode of the datasets, concatenated; rows ``obs_start[e] + t`` are observations."""

    actions: np.ndarray
    """``(N_act, A)``: the teachers' clean actions."""
    lengths: np.ndarray
    obs_start: np.ndarray
    act_start: np.ndarray
    features: np.ndarray | None = None
    """bc-state: ``(N_act, F)`` task-relative features of the observation before each action."""
    images: dict[str, np.ndarray] | None = None
    """bc-pixels: ``(N_obs, H, W, 3) uint8`` per camera."""
    proprio: np.ndarray | None = None
    instructions: np.ndarray | None = None
    """bc-pixels: ``(E, I)`` instruction codes."""
    tables: np.ndarray | None = None
    """Keypoint kinds: ``(N_obs, K, 4)`` where each object identity is (perception's labels)."""
    cells: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    """Keypoint kinds: per camera, each identity's true heatmap cell and whether it is in view."""
    subtask_ids: np.ndarray | None = None
    """Keypoint kinds: ``(N_act,)`` the subtask executed at each step (SUBTASK_VOCAB index)."""
    pointer: np.ndarray | None = None
    """Keypoint kinds: ``(N_obs,)`` the plan position at each observation."""
    plans: list[list[int]] = field(default_factory=list)
    """Keypoint kinds: each episode's plan (SUBTASK_VOCAB indices)."""
    episodes: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    """Each episode's instruction and scene layout (object kinds)."""
    tasks: list[str] = field(default_factory=list)
    """Each episode's task (keypoint kinds draw every task equally often)."""


def load_demos(datasets: list[EpisodeDataset], kind: str, pairs: list[tuple[int, int]]) -> Demos:
    actions, lengths, features, proprio, codes, tables, episodes = [], [], [], [], [], [], []
    subtask_ids, pointer, plans, tasks = [], [], [], []
    image_keys = sorted(k for k in datasets[0].obs_keys if k.startswith(IMAGE_PREFIX))
    frames = FrameStack(datasets, pairs, [] if kind == "bc-state" else image_keys)
    for d, e in pairs:
        ep = datasets[d].read(e)
        n = len(ep)
        frames.add(ep)
        lengths.append(n)
        actions.append(ep.steps["expert_action"].astype(np.float32))
        kinds = task_kinds(ep.meta["task"])
        episodes.append((ep.instruction, kinds))
        tasks.append(ep.meta["task"])
        state = ep.obs[OBJECT_STATE]
        if kind in KEYPOINT_KINDS:  # features come later, from true or perceived tables
            tables.append(identity_table(state, kinds))
            subtask_ids.append(ep.steps["subtask_id"].astype(np.int64))
            pointer.append(np.concatenate([[0], ep.steps["subtask_index"].astype(np.int64)]))
            plans.append([SUBTASK_VOCAB.index(label) for label in ep.meta["plan"]])
        elif kind == "bc-state":
            tf = TaskFeatures(kinds)
            bound = tf.bind(ep.instruction, state[0])
            features.append(tf.state_features(ep.obs[PROPRIO][:n], state[:n], state[0], bound))
        if kind != "bc-state":
            proprio.append(ep.obs[PROPRIO].astype(np.float32))
            codes.append(instruction_vector(ep.instruction))
    lengths_a = np.array(lengths, dtype=np.int64)
    demos = Demos(
        actions=np.concatenate(actions),
        lengths=lengths_a,
        obs_start=np.concatenate([[0], np.cumsum(lengths_a + 1)[:-1]]),
        act_start=np.concatenate([[0], np.cumsum(lengths_a)[:-1]]),
        episodes=episodes,
        tasks=tasks,
    )
    if kind == "bc-state":
        demos.features = np.concatenate(features).astype(np.float32)
    if kind != "bc-state":
        demos.images = frames.arrays
        demos.proprio = np.concatenate(proprio)
        demos.instructions = np.stack(codes)
    if kind in KEYPOINT_KINDS:
        demos.tables = np.concatenate(tables)
        demos.subtask_ids, demos.pointer = np.concatenate(subtask_ids), np.concatenate(pointer)
        demos.plans = plans
    return demos


def sampler(demos: Demos, kind: str, batch_size: int, chunk: int = 1):
    """``sample(rng) -> batch`` for the policy's ``loss``."""
    if kind == "bc-state":

        def sample_state(rng: np.random.Generator) -> dict[str, np.ndarray]:
            rows = rng.integers(0, len(demos.actions), batch_size)
            return {"features": demos.features[rows], "actions": demos.actions[rows]}

        return sample_state

    def sample_pixels(rng: np.random.Generator) -> dict[str, np.ndarray]:
        ep = rng.integers(0, len(demos.lengths), batch_size)
        t = (rng.random(batch_size) * demos.lengths[ep]).astype(np.int64)
        offsets = t[:, None] + np.arange(chunk)[None]
        mask = offsets < demos.lengths[ep][:, None]
        act_rows = demos.act_start[ep][:, None] + np.minimum(
            offsets, demos.lengths[ep][:, None] - 1
        )
        rows = demos.obs_start[ep] + t
        batch = {f"obs/{k}": v[rows] for k, v in demos.images.items()}
        batch[f"obs/{PROPRIO}"] = demos.proprio[rows]
        batch["instruction"] = demos.instructions[ep]
        batch["actions"] = demos.actions[act_rows]
        batch["action_mask"] = mask.astype(np.float32)
        return batch

    return sample_pixels


def _fit_round(
    kind: str,
    config,
    datasets: list[EpisodeDataset],
    layout: dict[str, Any],
    round_dir: Path,
    seed: int,
    init: dict[str, torch.Tensor] | None,
    progress: bool,
    stop_after: int | None,
    tensorboard: bool,
    device: torch.device,
) -> tuple[BCBundle | None, dict[str, Any]]:
    """Train one round on ``datasets``; returns the bundle (None when stopped early) and a report."""
    train_pairs, val_pairs = split_episodes(datasets)
    demos = load_demos(datasets, kind, train_pairs)
    val = load_demos(datasets, kind, val_pairs)
    tasks = sorted({ds.meta["task"] for ds in datasets})
    torch.manual_seed(seed)
    if kind == "bc-state":
        policy = config.build()
        for part in (demos, val):
            part.features = with_history(
                part.features, part.actions, part.lengths, history_shape(config)
            )
    else:
        keys = tuple(sorted(demos.images))
        policy = config.build(keys, int(demos.images[keys[0]].shape[1]))
    if kind in KEYPOINT_KINDS:
        env = envs.make(tasks[0], obs_mode="state")
        try:
            env.reset(seed=0)
            rig = camera_rig(env, policy.perception.cameras)
        finally:
            env.close()
        policy.perception.rig.copy_(torch.from_numpy(rig))
        arrays = []  # the decision networks first learn on the true tables
        for part in (demos, val):
            keypoints.label_cells(part, rig)
            arrays.append(
                keypoints.decision_arrays(
                    kind,
                    part,
                    part.tables,
                    slot_order=keypoints.slot_order_of(config),
                    history=history_shape(config),
                )
            )
        train_sample, val_sample = (
            keypoints.sampler(kind, part, a, config.train.batch_size, config.state_batch, config)
            for part, a in zip((demos, val), arrays)
        )
    else:
        chunk = config.chunk if kind == "bc-pixels" else 1
        train_sample, val_sample = (
            sampler(part, kind, config.train.batch_size, chunk) for part in (demos, val)
        )
    if init is not None:
        policy.load_state_dict(init)
    elif kind == "bc-pixels":
        policy.normalizer.fit(demos.proprio[:, list(PROPRIO_USED)])
    elif kind in KEYPOINT_KINDS:
        policy.fit_normalizers(arrays[0])
    else:
        policy.normalizer.fit(demos.features)
    data_info = data_summary(datasets, train_pairs, val_pairs, demos.lengths)
    trainer = Trainer(
        policy,
        round_dir,
        train_sample,
        kind=f"{kind}-training",
        settings=config.train,
        identity={"agent": kind, "config": config.to_dict(), "env": layout},
        seed=seed,
        data_info=data_info,
        validation=[val_sample(np.random.default_rng([seed, 10**6 + i])) for i in range(4)],
        tensorboard=tensorboard,
        desc=f"train {kind} ({round_dir.name})",
        device=device,
    )
    resumed = trainer.resume()
    trainer.fit(progress=progress, stop_after=stop_after)
    last = trainer.history[-1] if trainer.history else {}
    report = {
        "steps": trainer.step,
        "resumed": resumed,
        "train_seconds_this_call": round(trainer.seconds, 1),
        "train_seconds": round(trainer.total_seconds, 3),
        "device": str(device),
        "final": {k: v for k, v in last.items() if k.startswith("val_") or k == "loss"},
        "data": data_info,
    }
    if trainer.step < config.train.steps:
        return None, report
    if kind in KEYPOINT_KINDS and config.state_steps:
        report["decision_on_perception"] = keypoints.fit_decision_on_perception(
            kind, policy, config, demos, val, round_dir / "decision_on_perception", seed,
            progress, tensorboard, device,
        )  # fmt: skip
    bundle = BCBundle(
        kind=kind,
        policy=policy.cpu().eval(),  # agents act on the CPU
        env=layout,
        tasks=tuple(tasks),
        task_kinds={t: task_kinds(t) for t in tasks},
        info={"seed": seed, "data": data_info},
    )
    bundle.save(round_dir / AGENT_FILE)
    return bundle, report


class MixedAgent:
    """DAgger's rollout policy (Ross et al., 2011): the teacher's action with probability
    ``beta``, else the student's. Early rounds lean on the teacher, so the rollouts reach the
    later stages of a long task instead of piling up states where the student is stuck."""

    def __init__(self, student: Any, teacher: Any, env: Any, beta: float, seed: int) -> None:
        self.student, self.teacher, self.env = student, teacher, env
        self.beta = beta
        self.rng = np.random.default_rng([seed, 7])

    def reset(self, instruction: str) -> None:
        self.student.reset(instruction)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        action = self.student.act(obs)  # always, so a stateful student sees every step
        if self.beta > 0 and self.rng.random() < self.beta:
            return np.asarray(self.teacher(self.env, obs, self.student), dtype=np.float32)
        return action

    @property
    def subtask(self) -> str:
        return "none"


class RunTeacher:
    """A trained ``bc-state`` run as a DAgger teacher: labels every state with its raw action."""

    def __init__(self, path: str | Path) -> None:
        from embodied.saved_agents import load_bundle

        bundle = load_bundle(path)
        if bundle.kind != "bc-state":
            raise DatasetError(
                f"{path}: a DAgger teacher must be a bc-state run, got {bundle.kind}"
            )
        self.bundle = bundle
        self.path = str(path)
        self._agent: BCStateAgent | None = None

    def on_reset(self, env, obs, info) -> None:
        self._agent = self.bundle.make(task=env.task_name)
        self._agent.reset(info["instruction"])

    def __call__(self, env, obs, agent) -> np.ndarray:
        assert self._agent is not None
        return np.clip(self._agent.raw_action(obs), -1.0, 1.0).astype(np.float32)


def train_bc(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Train (or resume) a baseline: :func:`train_bc_agent`'s report alone (``RUN/train.json``,
    or ``{"stopped_at": STEP, "round": R}`` when ``stop_after`` stopped it)."""
    return train_bc_agent(*args, **kwargs)[0]


def train_bc_agent(
    kind: str,
    data: list[str | Path],
    out: str | Path,
    preset: str = "default",
    seed: int = 0,
    steps: int | None = None,
    dagger: int = 0,
    dagger_episodes: int = 50,
    teacher: str = "expert",
    dagger_beta: float = 0.5,
    progress: bool = True,
    stop_after: int | None = None,
    tensorboard: bool = True,
    device: str = "cpu",
) -> tuple[dict[str, Any], BCBundle | None]:
    """Train (or resume) a baseline and ``dagger`` DAgger rounds; returns ``RUN/train.json``
    and the last round's agent as training left it in memory (the one ``RUN/agent.pt`` holds;
    None when ``stop_after`` stopped the training)."""
    if kind not in BC_KINDS:
        raise KeyError(f"unknown baseline {kind!r}; known: {', '.join(BC_KINDS)}")
    if not 0.0 <= dagger_beta <= 1.0:
        raise ValueError(f"dagger_beta must be in [0, 1], got {dagger_beta}")
    if dagger < 0 or dagger_episodes < 1:
        raise ValueError(
            f"need dagger >= 0 and dagger_episodes >= 1, got {dagger}, {dagger_episodes}"
        )
    config = bc_preset(kind, preset)
    torch_device = resolve_device(device)
    if steps is not None:
        config = replace(config, train=replace(config.train, steps=steps))
    teach = expert_teacher if teacher == "expert" else RunTeacher(teacher)
    out = Path(out)
    start = time.perf_counter()
    datasets, layout = open_datasets(list(data), kind)
    report: dict[str, Any] = {
        "kind": kind,
        "preset": preset,
        "seed": seed,
        "teacher": teacher if teacher == "expert" else str(teacher),
        "rounds": [],
    }
    bundle, round_report = _fit_round(
        kind, config, datasets, layout, out / "round_0", seed, None, progress, stop_after,
        tensorboard, torch_device,
    )  # fmt: skip
    report["rounds"].append(round_report)
    if bundle is None:
        return {"stopped_at": round_report["steps"], "round": 0}, None
    base = list(datasets)
    for r in range(1, dagger + 1):
        round_dir = out / f"round_{r}"
        rollouts = []
        for task in bundle.tasks:
            source = next(ds for ds in base if ds.meta["task"] == task)
            overrides = dict(source.meta.get("env_config", {}))
            overrides["cameras"] = tuple(overrides.get("cameras") or ("front", "wrist"))
            summary = collect_rollouts(
                round_dir / "data" / task,
                task,
                [DAGGER_SEED + 10_000 * r + i for i in range(dagger_episodes)],
                lambda env, s, b=bundle, t=task, beta=dagger_beta**r: MixedAgent(
                    b.make(seed=s, task=t), teach, env, beta, s
                ),
                teach,
                meta={
                    "dagger_round": r,
                    "teacher": report["teacher"],
                    "teacher_probability": dagger_beta**r,
                },
                progress=progress,
                **overrides,
            )
            rollouts.append({"task": task, "rollout_success": summary["success_rate"]})
            datasets.append(EpisodeDataset(round_dir / "data" / task))
        init = {k: v.clone() for k, v in bundle.policy.state_dict().items()}
        bundle, round_report = _fit_round(
            kind, config, datasets, layout, round_dir, seed + r, init, progress, stop_after,
            tensorboard, torch_device,
        )  # fmt: skip
        round_report["rollouts"] = rollouts
        report["rounds"].append(round_report)
        if bundle is None:
            return {"stopped_at": round_report["steps"], "round": r}, None
    final = (out / f"round_{dagger}" / AGENT_FILE).read_bytes()
    atomic_write(out / AGENT_FILE, lambda fh: fh.write(final))
    report["seconds_this_call"] = round(time.perf_counter() - start, 1)
    write_json_atomic(out / "train.json", report)
    return report, bundle
