"""Collect scripted-expert demonstrations into a dataset directory, resumably and in parallel."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import envs
from embodied.agent import ExpertAgent
from embodied.dataset import (
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
from envs.base import INSTRUCTION, ManipulationEnv
from envs.language import subtask_id
from sandbox_common.atomic import write_json_atomic


def record_episode(
    env: ManipulationEnv, seed: int, noise: float
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run the expert for one episode; return the arrays and metadata of an episode file."""
    agent = ExpertAgent(env, noise=noise, seed=seed)
    obs, info = env.reset(seed=seed)
    agent.reset(info["instruction"])
    keys = [k for k in obs if k != INSTRUCTION]
    observations: dict[str, list[np.ndarray]] = {k: [obs[k]] for k in keys}
    steps: dict[str, list[Any]] = {k: [] for k in STEP_KEYS}
    done = False
    unstable = False
    while not done:
        action = agent.act(obs)
        steps["subtask_id"].append(subtask_id(agent.subtask))
        steps["action"].append(action)
        steps["expert_action"].append(agent.last_clean_action)
        obs, reward, terminated, truncated, info = env.step(action)
        for k in keys:
            observations[k].append(obs[k])
        steps["reward"].append(reward)
        steps["reward_dense"].append(info["reward_dense"])
        steps["reward_sparse"].append(info["reward_sparse"])
        steps["success"].append(info["success"])
        steps["terminated"].append(terminated)
        steps["truncated"].append(truncated)
        steps["subtask_index"].append(info["subtask_index"])
        steps["links_completed"].append(info["links_completed"])
        unstable |= info["unstable"]
        done = terminated or truncated
    dtypes = {
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
    arrays = {OBS_PREFIX + k: np.stack(v) for k, v in observations.items()}
    arrays |= {k: np.asarray(v, dtype=dtypes[k]) for k, v in steps.items()}
    meta = {
        "seed": seed,
        "instruction": info["instruction"],
        "plan": [s.label for s in env.plan],
        "success": bool(info["success"]),
        "links_completed": int(info["links_completed"]),
        "num_links": int(info["num_links"]),
        "length": len(steps["action"]),
        "unstable": bool(unstable),
        "task": env.task_name,
        "env_version": envs.ENV_VERSION,
        "noise": noise,
    }
    return arrays, meta


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


def _check_same_collection(root: Path, wanted: dict[str, Any]) -> None:
    have = read_json(root / META_FILE)
    diffs = [
        f"{k}: on disk {have.get(k)!r}, asked {wanted[k]!r}"
        for k in (
            "format_version",
            "task",
            "env_version",
            "env_config",
            "seed",
            "noise",
            "obs_keys",
        )
        if _jsonable(have.get(k)) != _jsonable(wanted[k])
    ]
    if diffs:
        raise DatasetError(
            f"{root} holds a different collection; resume needs the same settings ("
            + "; ".join(diffs)
            + "). Use another --out directory."
        )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


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
    config = envs.make_config(task, **overrides)
    root = Path(out)
    probe = config.build()
    obs_keys = sorted(k for k in probe.observation_space.spaces if k != INSTRUCTION)
    probe.close()
    wanted = _dataset_meta(task, config, seed, noise, obs_keys)

    root.mkdir(parents=True, exist_ok=True)
    if (root / META_FILE).exists():
        _check_same_collection(root, wanted)
    else:
        write_json_atomic(root / META_FILE, wanted)
    for name in os.listdir(root):  # episodes that were in flight when a run died
        if name.startswith(".episode_") and name.endswith(".npz.tmp"):
            os.remove(root / name)

    done: dict[int, dict[str, Any]] = {}
    for name in sorted(os.listdir(root)):
        match = EPISODE_PATTERN.match(name)
        if match and int(match.group(1)) < episodes:
            done[int(match.group(1))] = load_episode(root / name).meta  # verifies the whole file
    todo = [i for i in range(episodes) if i not in done]

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

    metas = [done[i] for i in range(episodes)]
    summary = {
        "task": task,
        "gym_id": envs.gym_id(task),
        "episodes": episodes,
        "success_rate": float(np.mean([m["success"] for m in metas])),
        "mean_links_completed": float(
            np.mean([m["links_completed"] / m["num_links"] for m in metas])
        ),
        "mean_length": float(np.mean([m["length"] for m in metas])),
        "unstable_episodes": int(sum(m["unstable"] for m in metas)),
        "seed": seed,
        "noise": noise,
        "env_version": envs.ENV_VERSION,
        "newly_collected": len(todo),
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_json_atomic(root / SUMMARY_FILE, summary)
    return summary
