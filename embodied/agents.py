"""Trained agents for the evaluation harness: load a run's ``agent.pt`` and check it fits the task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import envs
from embodied.evaluation.harness import AgentFactory
from embodied.training.layered import AGENT_FILE
from policies.agents import AgentBundle, check_planner
from policies.bc import BCBundle
from policies.bundles import load_agent
from world_models.checkpoint import CheckpointError
from world_models.trainer import resolve_device


def agent_file(path: str | Path) -> Path:
    """The agent checkpoint of a run directory (``RUN/agent.pt``), or ``path`` itself."""
    path = Path(path)
    return path / AGENT_FILE if path.is_dir() else path


def load_bundle(path: str | Path) -> AgentBundle | BCBundle:
    """An agent from a run directory (``RUN/agent.pt``) or a checkpoint file."""
    path = Path(path)
    file = agent_file(path)
    if path.is_dir() and not file.exists():
        raise CheckpointError(
            f"{path}: no {AGENT_FILE} (is the training finished? `train agent` resumes it)"
        )
    return load_agent(file)


def agent_factory_from_run(
    path: str | Path,
    task: str,
    world_model_check: bool = True,
    device: str = "cpu",
    planner: str = "learned",
) -> tuple[AgentFactory, dict[str, Any]]:
    """The factory the harness calls per episode, and the env settings the agent needs.

    ``planner="oracle"`` evaluates a hierarchical agent's System 1 under the env's own subtask
    sequence. Raises :class:`CheckpointError` when the agent was trained on other tasks or
    observations, ``ValueError`` for a planner the agent cannot use.
    """
    bundle = load_bundle(path)
    check_planner(planner, bundle.kind)
    bundle = bundle.to(resolve_device(device))
    overrides = dict(bundle.env)
    if "cameras" in overrides:
        overrides["cameras"] = tuple(overrides["cameras"])
    env = envs.make(task, **overrides)
    try:
        bundle.check_env(task, env.observation_space)
    finally:
        env.close()

    def make(env, seed: int):
        return bundle.make(
            seed=seed, world_model_check=world_model_check, task=task, planner=planner
        )

    return make, overrides
