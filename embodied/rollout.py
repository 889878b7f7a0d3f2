"""Run one episode of an ``Agent`` in an env, optionally recording annotated video frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodied.agent import Agent
from embodied.video import annotate
from envs.base import ManipulationEnv


@dataclass
class Rollout:
    """What happened in one episode."""

    seed: int
    instruction: str
    success: bool
    length: int
    links_completed: int
    num_links: int
    total_reward: float
    unstable: bool
    frames: list[np.ndarray] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)


def run_episode(
    env: ManipulationEnv,
    agent: Agent,
    seed: int,
    video_size: int | None = None,
    camera: str = "front",
    keep_infos: bool = False,
) -> Rollout:
    """Reset ``env`` with ``seed``, let ``agent`` act until the episode ends.

    With ``video_size``, every step renders ``camera`` at that size with overlays of the
    instruction, the agent's subtask, the step and success.
    """
    obs, info = env.reset(seed=seed)
    agent.reset(info["instruction"])
    frames: list[np.ndarray] = []
    infos: list[dict[str, Any]] = []

    def record(step: int, info: dict[str, Any]) -> None:
        if video_size is not None:
            frame = env.render_camera(camera, video_size, fast=False)
            subtask = getattr(agent, "subtask", "none")
            if subtask == "none":  # the agent has not acted yet, or has no subtasks: show the env's
                subtask = info["subtask"]
            frames.append(annotate(frame, info["instruction"], subtask, step, info["success"]))

    record(0, info)
    total, steps, done = 0.0, 0, False
    while not done:
        action = agent.act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        steps += 1
        done = terminated or truncated
        if keep_infos:
            infos.append(info)
        record(steps, info)
    return Rollout(
        seed=seed,
        instruction=info["instruction"],
        success=bool(info["success"]),
        length=steps,
        links_completed=int(info["links_completed"]),
        num_links=int(info["num_links"]),
        total_reward=float(total),
        unstable=bool(info["unstable"]),
        frames=frames,
        infos=infos,
    )
