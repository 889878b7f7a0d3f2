"""Scripted-expert success per task over seeded episodes, through the same rollout code as videos."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from tqdm import tqdm

import envs
from embodied.agent import ExpertAgent
from embodied.rollout import run_episode


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def bench_experts(
    tasks: list[str] | None = None,
    episodes: int = 100,
    noise: float = 0.0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    results: dict[str, Any] = {"episodes": episodes, "noise": noise, "seed": seed, "tasks": {}}
    for task in tasks or envs.TASKS.names():
        env = envs.make(task, obs_mode="state")
        start = time.perf_counter()
        rollouts = []
        for i in tqdm(range(episodes), desc=f"expert {task}", disable=not progress):
            agent = ExpertAgent(env, noise=noise, seed=seed + i)
            rollouts.append(run_episode(env, agent, seed + i))
        env.close()
        wins = sum(r.success for r in rollouts)
        results["tasks"][task] = {
            "success_rate": wins / episodes,
            "ci95": wilson_interval(wins, episodes),
            "mean_links_fraction": float(
                np.mean([r.links_completed / r.num_links for r in rollouts])
            ),
            "mean_length": float(np.mean([r.length for r in rollouts])),
            "failed_seeds": [r.seed for r in rollouts if not r.success],
            "seconds": round(time.perf_counter() - start, 2),
        }
    return results
