"""The one evaluation harness: seeded episodes of an ``Agent`` on a task, with the same initial
states for every agent, success with a 95% interval, chain length, latency and optional videos.

Episodes use the seeds ``seed, seed + 1, ...`` in order, skipping any whose initial state is
already a success, so every agent meets the same initial states. With ``num_envs=1`` they run
one after another in an env in this process. With ``num_envs > 1`` they run in a Gymnasium
``AsyncVectorEnv``: each worker process steps (and renders) one env while this process runs the
agents, one agent per slot, made by the factory for each episode. Both paths give the same
episodes with the same outcomes for an agent that is deterministic given its observations.

Used by ``bench experts``, ``bench agents``, the demo, ``eval`` on the command line and the tests.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode
from tqdm import tqdm

import envs
from embodied.agent import Agent, ExpertAgent, observe
from embodied.media.video import write_video
from embodied.rollout import EpisodeRun, Rollout, run_episode
from envs.base import ACTION_DIM, ManipulationEnv
from sandbox_common.atomic import write_json_atomic

AgentFactory = Callable[[ManipulationEnv | None, int], Agent]
"""Makes the agent for one episode from the env and the episode seed.

The env is the in-process env on the serial path (``num_envs=1``, and the video episodes) and
``None`` on the vectorized path, whose envs live in worker processes. A factory whose agent
reads the env (privileged state, like the scripted expert) is marked with :func:`needs_env`.
"""

MP_CONTEXT = "spawn"
"""How env workers start: fresh interpreters that import ``envs`` (never torch, never an
inherited GL context). Like any non-fork start, a script calling ``evaluate(num_envs > 1)``
needs the ``if __name__ == "__main__":`` guard."""


def needs_env(make_agent: AgentFactory) -> AgentFactory:
    """Mark a factory whose agent reads the in-process env: ``evaluate`` keeps it on
    ``num_envs=1`` (and says so) instead of handing it ``None``."""
    make_agent.needs_env = True  # type: ignore[attr-defined]
    return make_agent


def expert_factory(noise: float = 0.0) -> AgentFactory:
    """The scripted expert (privileged state, so serial only), seeded by the episode seed."""

    def make(env: ManipulationEnv | None, seed: int) -> Agent:
        if env is None:
            raise ValueError("the scripted expert needs the in-process env; use num_envs=1")
        return ExpertAgent(env, noise=noise, seed=seed)

    return needs_env(make)


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

    def observe(self, info: dict[str, Any]) -> None:
        observe(self.agent, info)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        start = time.perf_counter()
        action = self.agent.act(obs)
        self.act_ms.append((time.perf_counter() - start) * 1e3)
        return action

    def pop_timings(self) -> dict[str, list[float]]:
        """The agent's own measurements (ms per named part, e.g. ``system1``), if it keeps any."""
        pop = getattr(self.agent, "pop_timings", None)
        return {name: list(ms) for name, ms in pop().items()} if callable(pop) else {}

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
    """``act_mean``/``act_p95`` (wall time of ``act``) and, for agents with ``pop_timings()``,
    ``<name>_mean``, ``<name>_p95`` and ``<name>_calls_per_episode`` for each part it times."""
    skipped_seeds: list[int] = field(default_factory=list)
    """Seeds whose initial state was already a success (never evaluated)."""
    failed_seeds: list[int] = field(default_factory=list)
    per_episode: list[dict[str, Any]] = field(default_factory=list)
    """Seed, instruction, success, length, links completed and return of each episode, by seed."""
    videos: list[str] = field(default_factory=list)
    seconds: float = 0.0
    num_envs: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Collector:
    """Gathers finished episodes, skipped seeds and timings from either path."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar
        self.rollouts: list[Rollout] = []
        self.skipped: list[int] = []
        self.act_ms: list[float] = []
        self.timings: dict[str, list[float]] = {}

    def finish(self, rollout: Rollout, agent: TimedAgent) -> None:
        self.rollouts.append(rollout)
        self.act_ms.extend(agent.act_ms)
        for name, ms in agent.pop_timings().items():
            self.timings.setdefault(name, []).extend(ms)
        self.bar.update(1)

    def latency(self) -> dict[str, float]:
        out = {
            "act_mean": float(np.mean(self.act_ms)),
            "act_p95": float(np.percentile(self.act_ms, 95)),
        }
        for name in sorted(self.timings):
            ms = self.timings[name]
            if ms:
                out[f"{name}_mean"] = float(np.mean(ms))
                out[f"{name}_p95"] = float(np.percentile(ms, 95))
            out[f"{name}_calls_per_episode"] = len(ms) / len(self.rollouts)
        return out


def _run_serial(
    make_agent: AgentFactory,
    task: str,
    count: int,
    seeds: Iterator[int],
    out: _Collector,
    video_episodes: int,
    video_dir: Path | None,
    video_size: int,
    env_overrides: dict[str, Any],
) -> list[str]:
    """``count`` episodes in an in-process env, the first ``video_episodes`` on video."""
    env = envs.make(task, **env_overrides)
    videos: list[str] = []
    try:
        done = 0
        while done < count:
            candidate = next(seeds)
            _, info = env.reset(seed=candidate)
            if info["success"]:
                out.skipped.append(candidate)
                continue
            agent = TimedAgent(make_agent(env, candidate))
            record = done < video_episodes
            rollout = run_episode(env, agent, candidate, video_size=video_size if record else None)
            if record:
                assert video_dir is not None
                path = video_dir / f"{task}-seed{candidate}.mp4"
                write_video(rollout.frames, path, fps=env.metadata["render_fps"])
                videos.append(str(path))
                rollout.frames = []
            out.finish(rollout, agent)
            done += 1
    finally:
        env.close()
    return videos


def _info_at(infos: dict[str, Any], index: int) -> dict[str, Any]:
    """One env's info out of a vector env's batched infos (keys it did not report left out)."""
    return {
        key: _info_at(value, index) if isinstance(value, dict) else value[index]
        for key, value in infos.items()
        if not key.startswith("_") and infos[f"_{key}"][index]
    }


def _obs_at(obs: dict[str, Any], index: int) -> dict[str, Any]:
    return {key: value[index] for key, value in obs.items()}


def _action(action: Any) -> np.ndarray:
    """The agent's action as the env would read it (float64, so both paths act identically)."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (ACTION_DIM,):
        raise ValueError(
            f"action must have shape ({ACTION_DIM},) = [dx, dy, dz, dyaw, gripper], got shape {a.shape}"
        )
    return a


def _run_vector(
    make_agent: AgentFactory,
    task: str,
    count: int,
    seeds: Iterator[int],
    out: _Collector,
    num_envs: int,
    env_overrides: dict[str, Any],
) -> None:
    """``count`` episodes in ``num_envs`` worker processes, one episode per slot at a time.

    Autoreset is disabled: a slot whose episode ended is reset with the next seed through
    ``reset(seed=[...], options={"reset_mask": mask})``, so the seeds are exactly the serial
    path's. Slots left without an episode near the end step with a zero action, ignored.
    """
    n = min(num_envs, count)
    vec = AsyncVectorEnv(
        [partial(envs.make, task, **env_overrides)] * n,
        shared_memory=False,  # gymnasium's shared memory reads Text (the instruction) only once
        context=MP_CONTEXT,
        autoreset_mode=AutoresetMode.DISABLED,
    )
    try:
        slots: list[EpisodeRun | None] = [None] * n
        started = 0
        obs: dict[str, Any] = {}
        while True:
            free = [i for i, slot in enumerate(slots) if slot is None]
            while free and started < count:  # never draw more seeds than episodes still needed
                take = free[: count - started]
                drawn = {i: next(seeds) for i in take}
                mask = np.array([i in drawn for i in range(n)])
                obs, infos = vec.reset(
                    seed=[drawn.get(i) for i in range(n)], options={"reset_mask": mask}
                )
                for i, candidate in drawn.items():
                    info = _info_at(infos, i)
                    if info["success"]:
                        out.skipped.append(candidate)
                        continue
                    run = EpisodeRun(TimedAgent(make_agent(None, candidate)), candidate)
                    run.start(None, _obs_at(obs, i), info)
                    slots[i] = run
                    started += 1
                free = [i for i, slot in enumerate(slots) if slot is None]
            active = [i for i, slot in enumerate(slots) if slot is not None]
            if not active:
                return
            actions = np.zeros((n, ACTION_DIM), dtype=np.float64)
            for i in active:
                actions[i] = _action(slots[i].act(None, _obs_at(obs, i)))
            obs, rewards, terminated, truncated, infos = vec.step(actions)
            for i in active:
                run = slots[i]
                info = _info_at(infos, i)
                if run.record(None, _obs_at(obs, i), rewards[i], terminated[i], truncated[i], info):
                    out.finish(run.rollout(), run.agent)
                    slots[i] = None
    finally:
        vec.close()


def evaluate(
    make_agent: AgentFactory,
    task: str,
    episodes: int,
    seed: int = 0,
    video_episodes: int = 0,
    video_dir: str | Path | None = None,
    video_size: int = 256,
    progress: bool = False,
    num_envs: int = 1,
    **env_overrides: Any,
) -> EvalResult:
    """Run ``episodes`` episodes with seeds ``seed, seed + 1, ...`` (skipping any whose initial
    state is already a success) and aggregate the results.

    ``num_envs > 1`` steps the episodes in that many worker processes and hands the factory
    ``env=None``. The first ``video_episodes`` episodes are always run in-process (the factory
    gets the env) and recorded with overlays; the rest follow from the next seed. Factories
    marked with :func:`needs_env` need ``num_envs=1``. Agents with ``pop_timings()`` have their
    timings read after every episode (see ``EvalResult.latency_ms``).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(
            f"num_envs must be an integer >= 1 (1: in-process, N > 1: N worker processes), "
            f"got {num_envs!r}"
        )
    if num_envs > 1 and getattr(make_agent, "needs_env", False):
        raise ValueError(
            "this agent reads the in-process env (privileged state, e.g. the scripted expert); "
            f"evaluate it with num_envs=1, got num_envs={num_envs}"
        )
    if video_episodes and video_dir is None:
        raise ValueError("video_episodes needs a video_dir")
    start = time.perf_counter()
    seeds = itertools.count(seed)
    serial = episodes if num_envs == 1 else min(video_episodes, episodes)
    bar = tqdm(total=episodes, desc=f"eval {task}", disable=not progress)
    out = _Collector(bar)
    videos: list[str] = []
    try:
        if serial:
            videos = _run_serial(
                make_agent,
                task,
                serial,
                seeds,
                out,
                video_episodes,
                None if video_dir is None else Path(video_dir),
                video_size,
                env_overrides,
            )
        if episodes > serial:
            _run_vector(make_agent, task, episodes - serial, seeds, out, num_envs, env_overrides)
    finally:
        bar.close()
    return aggregate(task, out, videos, round(time.perf_counter() - start, 2), num_envs)


def aggregate(
    task: str, out: _Collector, videos: list[str], seconds: float, num_envs: int
) -> EvalResult:
    """The :class:`EvalResult` of the episodes ``out`` gathered (any runner: serial, vectorized,
    Ray), episodes sorted by seed."""
    rollouts = sorted(out.rollouts, key=lambda r: r.seed)
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
        latency_ms=out.latency(),
        skipped_seeds=sorted(out.skipped),
        failed_seeds=[r.seed for r in rollouts if not r.success],
        per_episode=[
            {
                "seed": r.seed,
                "instruction": r.instruction,
                "success": r.success,
                "length": r.length,
                "links_completed": r.links_completed,
                "total_reward": r.total_reward,
                "events_fired": r.events_fired,
                "counterfactual": r.counterfactual,
                "original_goal_reached": r.original_goal_reached,
            }
            for r in rollouts
        ],
        videos=videos,
        seconds=seconds,
        num_envs=num_envs,
    )


def write_metrics(result: EvalResult, out_dir: str | Path) -> Path:
    """Write ``result`` as ``out_dir/metrics.json`` (atomically); return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(out / "metrics.json", result.to_dict())
