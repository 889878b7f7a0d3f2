"""The one episode loop: a controller (an ``Agent``) + an env + hooks -> an episode record.

Collection (a recorder hook writing the expert's or a teacher's labels), evaluation, DAgger
(the student acts, a teacher labels) and videos all step episodes here. A new feature adds a
hook or a controller, not a loop. (The vectorized evaluation path steps many envs in worker
processes; it makes the same records for the same seeds.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from embodied.agent import Agent
from embodied.media.video import annotate
from envs.base import ManipulationEnv


class EpisodeHook(Protocol):
    """Sees every step of an episode. Each method is optional."""

    def on_reset(self, env: ManipulationEnv, obs: dict[str, Any], info: dict[str, Any]) -> None:
        """After ``env.reset`` and ``agent.reset``."""

    def before_step(self, env: ManipulationEnv, obs: dict[str, Any], action: np.ndarray) -> None:
        """After the agent chose ``action`` for ``obs``, before the env executes it."""

    def after_step(
        self,
        env: ManipulationEnv,
        obs: dict[str, Any],
        reward: float,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        """After ``env.step``."""


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


class VideoHook:
    """Renders ``camera`` at ``size`` every step, with the instruction, the agent's subtask, the
    step and success drawn on the frame."""

    def __init__(self, agent: Agent, size: int, camera: str = "front") -> None:
        self.agent, self.size, self.camera = agent, size, camera
        self.frames: list[np.ndarray] = []

    def _record(self, env: ManipulationEnv, info: dict[str, Any]) -> None:
        frame = env.render_camera(self.camera, self.size, fast=False)
        subtask = getattr(self.agent, "subtask", "none")
        if subtask == "none":  # the agent has not acted yet, or has no subtasks: show the env's
            subtask = info["subtask"]
        self.frames.append(
            annotate(frame, info["instruction"], subtask, len(self.frames), info["success"])
        )

    def on_reset(self, env, obs, info) -> None:
        self._record(env, info)

    def after_step(self, env, obs, reward, terminated, truncated, info) -> None:
        self._record(env, info)


def _call(hooks: list[Any], name: str, *args: Any) -> None:
    for hook in hooks:
        method = getattr(hook, name, None)
        if method is not None:
            method(*args)


def run_episode(
    env: ManipulationEnv,
    agent: Agent,
    seed: int,
    video_size: int | None = None,
    camera: str = "front",
    keep_infos: bool = False,
    hooks: tuple[EpisodeHook, ...] | list[EpisodeHook] = (),
) -> Rollout:
    """Reset ``env`` with ``seed``, let ``agent`` act until the episode ends, showing every step
    to ``hooks``. With ``video_size``, frames of ``camera`` with overlays land in ``frames``."""
    hooks = list(hooks)
    video = VideoHook(agent, video_size, camera) if video_size is not None else None
    if video is not None:
        hooks.append(video)
    obs, info = env.reset(seed=seed)
    agent.reset(info["instruction"])
    _call(hooks, "on_reset", env, obs, info)
    infos: list[dict[str, Any]] = []
    total, steps, done = 0.0, 0, False
    while not done:
        action = agent.act(obs)
        _call(hooks, "before_step", env, obs, action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        steps += 1
        done = terminated or truncated
        if keep_infos:
            infos.append(info)
        _call(hooks, "after_step", env, obs, reward, terminated, truncated, info)
    return Rollout(
        seed=seed,
        instruction=info["instruction"],
        success=bool(info["success"]),
        length=steps,
        links_completed=int(info["links_completed"]),
        num_links=int(info["num_links"]),
        total_reward=float(total),
        unstable=bool(info["unstable"]),
        frames=video.frames if video is not None else [],
        infos=infos,
    )
