"""Scripted-expert success per task over seeded episodes, through the one evaluation harness."""

from __future__ import annotations

from typing import Any

import envs
from embodied.agent import ExpertAgent
from embodied.evaluation.harness import evaluate


def bench_experts(
    tasks: list[str] | None = None,
    episodes: int = 100,
    noise: float = 0.0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    results: dict[str, Any] = {"episodes": episodes, "noise": noise, "seed": seed, "tasks": {}}
    for task in tasks or envs.TASKS.names():
        r = evaluate(
            lambda env, s: ExpertAgent(env, noise=noise, seed=s),
            task,
            episodes,
            seed=seed,
            progress=progress,
            obs_mode="state",
        )
        results["tasks"][task] = {
            "success_rate": r.success_rate,
            "ci95": r.ci95,
            "mean_links_fraction": r.mean_links_fraction,
            "mean_length": r.mean_length,
            "failed_seeds": r.failed_seeds,
            "skipped_seeds": r.skipped_seeds,
            "seconds": r.seconds,
        }
    return results
