"""Collect scripted-expert demonstrations into a dataset directory, resumably and in parallel."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import envs
from embodied.agent import ExpertAgent
from embodied.data.dataset import (
    EPISODE_PATTERN,
    FORMAT_VERSION,
    META_FILE,
    OBS_PREFIX,
    STEP_KEYS,
    SUMMARY_FILE,
    DatasetError,
    load_episode,
    read_json,
    write_episode,
)
from embodied.rollout import run_episode
from envs.base import INSTRUCTION, ManipulationEnv
from envs.experts import ScriptedExpert
from envs.language import subtask_id
from sandbox_common.atomic import write_json_atomic

Teacher = Callable[[ManipulationEnv, dict[str, Any], Any], np.ndarray]
"""The label of a state: ``teacher(env, obs, agent) -> clean action (5,)``, called before the
env executes the agent's action for ``obs``."""

STEP_DTYPES: dict[str, Any] = {
    "action": np.float32,
    "expert_action": np.float32,
    "reward": np.float32,
    "reward_dense": np.float32,
    "reward_sparse": np.float32,
    "success": bool,
    "terminated": bool,
    "truncated": bool,
    "subtask_id": np.int16,
    "subtask_index": np.int16,
    "links_completed": np.int16,
}


def expert_teacher(env: ManipulationEnv, obs: dict[str, Any], agent: Any) -> np.ndarray:
    """The scripted expert's clean action for the env's current state (a DAgger teacher)."""
    return ScriptedExpert(env).label()[0]


def own_clean_action(env: ManipulationEnv, obs: dict[str, Any], agent: Any) -> np.ndarray:
    """The acting expert's own clean action (collection: noise executed, clean action kept)."""
    return agent.last_clean_action


class EpisodeRecorder:
    """An episode hook that keeps what a dataset episode file holds: every observation, the
    executed action, the teacher's label (``expert_action``), the env's subtask, rewards, flags."""

    def __init__(self, teacher: Teacher, agent: Any) -> None:
        self.teacher = teacher
        self.agent = agent
        self.keys: list[str] = []
        self.observations: dict[str, list[np.ndarray]] = {}
        self.steps: dict[str, list[Any]] = {k: [] for k in STEP_KEYS}
        self.unstable = False
        self.info: dict[str, Any] = {}

    def on_reset(self, env, obs, info) -> None:
        self.keys = [k for k in obs if k != INSTRUCTION]
        self.observations = {k: [obs[k]] for k in self.keys}
        self.info = info

    def before_step(self, env, obs, action) -> None:
        self.steps["subtask_id"].append(subtask_id(self.info["subtask"]))
        self.steps["action"].append(np.asarray(action, dtype=np.float32))
        self.steps["expert_action"].append(np.asarray(self.teacher(env, obs, self.agent)))

    def after_step(self, env, obs, reward, terminated, truncated, info) -> None:
        for k in self.keys:
            self.observations[k].append(obs[k])
        steps = self.steps
        steps["reward"].append(reward)
        steps["reward_dense"].append(info["reward_dense"])
        steps["reward_sparse"].append(info["reward_sparse"])
        steps["success"].append(info["success"])
        steps["terminated"].append(terminated)
        steps["truncated"].append(truncated)
        steps["subtask_index"].append(info["subtask_index"])
        steps["links_completed"].append(info["links_completed"])
        self.unstable |= info["unstable"]
        self.info = info

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {OBS_PREFIX + k: np.stack(v) for k, v in self.observations.items()}
        return arrays | {k: np.asarray(v, dtype=STEP_DTYPES[k]) for k, v in self.steps.items()}


def _record(
    env: ManipulationEnv, agent: Any, seed: int, recorder: EpisodeRecorder, hooks: list[Any]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    rollout = run_episode(env, agent, seed, hooks=[*hooks, recorder])
    info = recorder.info
    meta = {
        "seed": seed,
        "instruction": info["instruction"],
        "plan": [s.label for s in env.plan],
        "success": rollout.success,
        "links_completed": rollout.links_completed,
        "num_links": rollout.num_links,
        "length": rollout.length,
        "unstable": bool(recorder.unstable),
        "task": env.task_name,
        "env_version": envs.ENV_VERSION,
        "factors": dict(info.get("factors", {})),
        "events_fired": info.get("events_fired", ""),
        "counterfactual": bool(info.get("counterfactual", False)),
    }
    return recorder.arrays(), meta


def record_episode(
    env: ManipulationEnv, seed: int, noise: float
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run the expert for one episode; return the arrays and metadata of an episode file."""
    agent = ExpertAgent(env, noise=noise, seed=seed)
    arrays, meta = _record(env, agent, seed, EpisodeRecorder(own_clean_action, agent), [])
    return arrays, meta | {"noise": noise}


# ---------------------------------------------------------------- worker processes

_worker_env: ManipulationEnv | None = None


def _worker_init(task: str, overrides: dict[str, Any]) -> None:
    global _worker_env
    _worker_env = envs.make(task, **overrides)


def _worker_run(job: tuple[Path, int, int, float]) -> dict[str, Any]:
    root, index, seed, noise = job
    assert _worker_env is not None
    arrays, meta = record_episode(_worker_env, seed, noise)
    write_episode(root, index, arrays, meta)
    return {"index": index} | meta


# ---------------------------------------------------------------- collection


def _dataset_meta(
    task: str, config: envs.TaskConfig, seed: int, noise: float, obs_keys: list[str]
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "task": task,
        "gym_id": envs.gym_id(task),
        "env_version": envs.ENV_VERSION,
        "env_config": dataclasses.asdict(config),
        "seed": seed,
        "noise": noise,
        "obs_keys": obs_keys,
        "episode_seed_rule": "episode i uses seed + i",
    }


RESUME_KEYS = ("format_version", "task", "env_version", "env_config", "seed", "noise", "obs_keys")
"""Fields of ``meta.json`` that must match for a collection to resume."""
RETIRED_META = {"gripper_flip": (0.0, "collect --gripper-flip, retired 2026-12-08")}
"""Fields of ``meta.json`` that retired options wrote when set: name -> (the value every
collection now has, the option). A collection made with the option cannot be resumed (its
episodes stay readable)."""


def _check_same_collection(
    root: Path, wanted: dict[str, Any], extra_keys: tuple[str, ...] = ()
) -> None:
    have = read_json(root / META_FILE)
    diffs = [
        f"{k}: on disk {have.get(k)!r}, asked {wanted[k]!r}"
        for k in (*RESUME_KEYS, *extra_keys)
        if _jsonable(have.get(k)) != _jsonable(wanted[k])
    ]
    diffs += [
        f"{k}: on disk {have[k]!r}, made with {option}, which this code no longer has"
        for k, (default, option) in RETIRED_META.items()
        if have.get(k, default) != default
    ]
    if diffs:
        raise DatasetError(
            f"{root} holds a different collection; resume needs the same settings ("
            + "; ".join(diffs)
            + "). Use another --out directory."
        )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _existing_episodes(root: Path, count: int) -> dict[int, dict[str, Any]]:
    """Metadata of the episodes already on disk (each file verified whole); drops the temp file
    of an episode that was in flight when a run died."""
    for name in os.listdir(root):
        if name.startswith(".episode_") and name.endswith(".npz.tmp"):
            os.remove(root / name)
    done: dict[int, dict[str, Any]] = {}
    for name in sorted(os.listdir(root)):
        match = EPISODE_PATTERN.match(name)
        if match and int(match.group(1)) < count:
            done[int(match.group(1))] = load_episode(root / name).meta
    return done


def _summary(task: str, metas: list[dict[str, Any]], seed: int, noise: float) -> dict[str, Any]:
    return {
        "task": task,
        "gym_id": envs.gym_id(task),
        "episodes": len(metas),
        "success_rate": float(np.mean([m["success"] for m in metas])),
        "mean_links_completed": float(
            np.mean([m["links_completed"] / m["num_links"] for m in metas])
        ),
        "mean_length": float(np.mean([m["length"] for m in metas])),
        "unstable_episodes": int(sum(m["unstable"] for m in metas)),
        "seed": seed,
        "noise": noise,
        "env_version": envs.ENV_VERSION,
    }


def open_collection(
    task: str,
    out: str | os.PathLike,
    count: int,
    seed: int,
    noise: float,
    overrides: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> tuple[envs.TaskConfig, Path, dict[int, dict[str, Any]], list[int]]:
    """Create (or reopen, checking it holds the same collection) a dataset directory.

    Returns the task config, the root, the metadata of the episodes already on disk and the
    indices still to record. ``extra`` adds fields to ``meta.json`` (and must match on resume).
    """
    config = envs.make_config(task, **overrides)
    root = Path(out)
    probe = config.build()
    obs_keys = sorted(k for k in probe.observation_space.spaces if k != INSTRUCTION)
    probe.close()
    wanted = _dataset_meta(task, config, seed, noise, obs_keys) | dict(extra or {})
    root.mkdir(parents=True, exist_ok=True)
    if (root / META_FILE).exists():
        _check_same_collection(root, wanted, tuple(extra or {}))
    else:
        write_json_atomic(root / META_FILE, wanted)
    done = _existing_episodes(root, count)
    return config, root, done, [i for i in range(count) if i not in done]


def finish_collection(
    root: Path,
    task: str,
    done: dict[int, dict[str, Any]],
    count: int,
    seed: int,
    noise: float,
    newly: int,
    start: float,
) -> dict[str, Any]:
    """Write and return ``summary.json`` of a finished collection."""
    metas = [done[i] for i in range(count)]
    summary = _summary(task, metas, seed, noise) | {
        "newly_collected": newly,
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_json_atomic(root / SUMMARY_FILE, summary)
    return summary


def collect(
    task: str,
    episodes: int,
    out: str | os.PathLike,
    seed: int = 0,
    noise: float = 0.0,
    workers: int = 1,
    progress: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Write ``episodes`` expert episodes of ``task`` to ``out``; resume if ``out`` holds a partial run.

    Episode ``i`` uses seed ``seed + i``, so a resumed or parallel collection writes exactly the
    files an uninterrupted serial one would. Returns the summary (also in ``out/summary.json``).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    config, root, done, todo = open_collection(task, out, episodes, seed, noise, overrides)
    start = time.perf_counter()
    bar = tqdm(
        total=episodes, initial=len(done), desc=f"collect {task}", unit="ep", disable=not progress
    )
    jobs = [(root, i, seed + i, noise) for i in todo]
    if workers == 1 or len(jobs) <= 1:
        env = config.build()
        try:
            for root_, index, ep_seed, ep_noise in jobs:
                arrays, meta = record_episode(env, ep_seed, ep_noise)
                write_episode(root_, index, arrays, meta)
                done[index] = meta
                bar.update(1)
        finally:
            env.close()
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init, initargs=(task, overrides)) as pool:
            for result in pool.imap_unordered(_worker_run, jobs):
                done[result.pop("index")] = result
                bar.update(1)
    bar.close()
    return finish_collection(root, task, done, episodes, seed, noise, len(todo), start)


def collect_rollouts(
    out: str | os.PathLike,
    task: str,
    seeds: list[int],
    make_agent: Callable[[ManipulationEnv, int], Any],
    teacher: Teacher,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Write one episode per seed in which ``make_agent(env, seed)`` acts and ``teacher`` labels
    every state (DAgger), as an ordinary dataset directory: crash-safe, resumed at the first
    missing episode. A teacher with ``on_reset`` also sees every episode start."""
    extra = {
        "episode_seed_rule": "episode i uses seeds[i]",
        "seeds": list(seeds),
        "source": dict(meta or {}),
    }
    config, root, done, todo = open_collection(
        task, out, len(seeds), seeds[0], 0.0, overrides, extra
    )
    hooks = [teacher] if hasattr(teacher, "on_reset") else []
    start = time.perf_counter()
    env = config.build()
    try:
        for index in tqdm(todo, desc=f"rollouts {task}", disable=not progress):
            agent = make_agent(env, seeds[index])
            recorder = EpisodeRecorder(teacher, agent)
            arrays, episode_meta = _record(env, agent, seeds[index], recorder, hooks)
            episode_meta |= dict(meta or {})
            write_episode(root, index, arrays, episode_meta)
            done[index] = episode_meta
    finally:
        env.close()
    return finish_collection(root, task, done, len(seeds), seeds[0], 0.0, len(todo), start)
