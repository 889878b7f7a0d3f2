"""The one evaluation harness: seeded episodes of an ``Agent`` on a task, with the same initial
states for every agent, success with a 95% interval, chain length, latency and optional videos.

Used by ``bench experts``, by ``eval`` on the command line and by the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import envs
from embodied.agent import Agent
from embodied.rollout import run_episode
from embodied.video import write_video
from envs.base import ManipulationEnv
from sandbox_common.atomic import write_json_atomic

AgentFactory = Callable[[ManipulationEnv, int], Agent]
"""Makes the agent for one episode from the env and the episode seed."""


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


class TimedAgent:
    """Wraps an agent and measures the wall time of every ``act`` call."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.act_ms: list[float] = []

    def reset(self, instruction: str) -> None:
        self.agent.reset(instruction)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        start = time.perf_counter()
        action = self.agent.act(obs)
        self.act_ms.append((time.perf_counter() - start) * 1e3)
        return action

    @property
    def subtask(self) -> str:
        return getattr(self.agent, "subtask", "none")


@dataclass
class EvalResult:
    """What ``evaluate`` measured; ``to_dict()`` is the ``metrics.json`` written beside videos."""

    task: str
    episodes: int
    seeds: list[int]
    success_rate: float
    ci95: tuple[float, float]
    mean_chain_length: float
    """Average links completed per episode (1 link for single-instruction tasks)."""
    mean_links_fraction: float
    mean_length: float
    latency_ms: dict[str, float]
    skipped_seeds: list[int] = field(default_factory=list)
    """Seeds whose initial state was already a success (never evaluated)."""
    failed_seeds: list[int] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    make_agent: AgentFactory,
    task: str,
    episodes: int,
    seed: int = 0,
    video_episodes: int = 0,
    video_dir: str | Path | None = None,
    video_size: int = 256,
    progress: bool = False,
    **env_overrides: Any,
) -> EvalResult:
    """Run ``episodes`` episodes with seeds ``seed, seed + 1, ...`` (skipping any whose initial
    state is already a success) and aggregate the results."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if video_episodes and video_dir is None:
        raise ValueError("video_episodes needs a video_dir")
    env = envs.make(task, **env_overrides)
    start = time.perf_counter()
    rollouts, skipped, videos, act_ms = [], [], [], []
    candidate = seed
    bar = tqdm(total=episodes, desc=f"eval {task}", disable=not progress)
    try:
        while len(rollouts) < episodes:
            _, info = env.reset(seed=candidate)
            if info["success"]:
                skipped.append(candidate)
                candidate += 1
                continue
            agent = TimedAgent(make_agent(env, candidate))
            record = len(rollouts) < video_episodes
            rollout = run_episode(env, agent, candidate, video_size=video_size if record else None)
            if record:
                path = write_video(
                    rollout.frames,
                    Path(video_dir) / f"{task}-seed{candidate}.mp4",
                    fps=env.metadata["render_fps"],
                )
                videos.append(str(path))
                rollout.frames = []
            act_ms.extend(agent.act_ms)
            rollouts.append(rollout)
            candidate += 1
            bar.update(1)
    finally:
        bar.close()
        env.close()
    wins = sum(r.success for r in rollouts)
    return EvalResult(
        task=task,
        episodes=len(rollouts),
        seeds=[r.seed for r in rollouts],
        success_rate=wins / len(rollouts),
        ci95=wilson_interval(wins, len(rollouts)),
        mean_chain_length=float(np.mean([r.links_completed for r in rollouts])),
        mean_links_fraction=float(np.mean([r.links_completed / r.num_links for r in rollouts])),
        mean_length=float(np.mean([r.length for r in rollouts])),
        latency_ms={
            "act_mean": float(np.mean(act_ms)),
            "act_p95": float(np.percentile(act_ms, 95)),
        },
        skipped_seeds=skipped,
        failed_seeds=[r.seed for r in rollouts if not r.success],
        videos=videos,
        seconds=round(time.perf_counter() - start, 2),
    )


def write_metrics(result: EvalResult, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(out / "metrics.json", result.to_dict())
