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

from embodied.agent import Agent, observe
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
    events_fired: str = ""
    """World events that fired (comma-separated, ``envs.events``)."""
    counterfactual: bool = False
    """The instruction was swapped (the ``counterfactual`` factor or a ``change-instruction`` event)."""
    original_goal_reached: bool = False
    """With a swapped instruction: whether the agent did what the original one asked."""
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


class EpisodeRun:
    """One episode in progress, whoever steps its env: the agent, the hooks and the tally.

    ``run_episode`` feeds it from one env in this process; the vectorized harness feeds one per
    slot of a vector env (there ``env`` is ``None``: the env lives in a worker process, so only
    hooks that do not read it can run there). Either way the same calls happen in the same
    order and the same :class:`Rollout` comes out.
    """

    def __init__(
        self,
        agent: Agent,
        seed: int,
        hooks: tuple[EpisodeHook, ...] | list[EpisodeHook] = (),
        keep_infos: bool = False,
    ) -> None:
        self.agent = agent
        self.seed = seed
        self.hooks = list(hooks)
        self.keep_infos = keep_infos
        self.infos: list[dict[str, Any]] = []
        self.steps = 0
        self.total = 0.0
        self.info: dict[str, Any] = {}

    def start(self, env: ManipulationEnv | None, obs: dict[str, Any], info: dict[str, Any]) -> None:
        """After the env's reset: reset the agent, show the hooks."""
        self.info = info
        self.agent.reset(info["instruction"])
        observe(self.agent, info)
        _call(self.hooks, "on_reset", env, obs, info)

    def act(self, env: ManipulationEnv | None, obs: dict[str, Any]) -> np.ndarray:
        """The agent's action for ``obs``, shown to the hooks before the env executes it."""
        action = self.agent.act(obs)
        _call(self.hooks, "before_step", env, obs, action)
        return action

    def record(
        self,
        env: ManipulationEnv | None,
        obs: dict[str, Any],
        reward: float,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> bool:
        """After the env's step; returns whether the episode is over."""
        self.total += float(reward)
        self.steps += 1
        if info["instruction"] != self.info["instruction"]:  # the world changed the instruction
            self.agent.reset(info["instruction"])
        self.info = info
        if self.keep_infos:
            self.infos.append(info)
        observe(self.agent, info)
        _call(self.hooks, "after_step", env, obs, reward, terminated, truncated, info)
        return bool(terminated or truncated)

    def rollout(self, frames: list[np.ndarray] | None = None) -> Rollout:
        info = self.info
        return Rollout(
            seed=self.seed,
            instruction=str(info["instruction"]),
            success=bool(info["success"]),
            length=self.steps,
            links_completed=int(info["links_completed"]),
            num_links=int(info["num_links"]),
            total_reward=float(self.total),
            unstable=bool(info["unstable"]),
            frames=frames or [],
            events_fired=str(info.get("events_fired", "")),
            counterfactual=bool(info.get("counterfactual", False)),
            original_goal_reached=bool(info.get("original_goal_reached", False)),
            infos=self.infos,
        )


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
    run = EpisodeRun(agent, seed, hooks, keep_infos)
    obs, info = env.reset(seed=seed)
    run.start(env, obs, info)
    done = False
    while not done:
        action = run.act(env, obs)
        obs, reward, terminated, truncated, info = env.step(action)
        done = run.record(env, obs, reward, terminated, truncated, info)
    return run.rollout(video.frames if video is not None else None)
