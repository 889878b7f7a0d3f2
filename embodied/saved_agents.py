"""Trained agents for the evaluation harness: load a run's ``agent.pt`` and check it fits the task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import envs
from embodied.evaluation.harness import AgentFactory
from embodied.training.data_split import AGENT_FILE
from policies.bc import BCBundle
from policies.bundles import env_overrides, load_agent
from policies.two_systems import IMAGINING_KINDS, check_planner
from world_models.checkpoint import CheckpointError
from world_models.trainer import resolve_device
from world_models.training import load_world_model


def agent_file(path: str | Path) -> Path:
    """The agent checkpoint of a run directory (``RUN/agent.pt``), or ``path`` itself."""
    path = Path(path)
    return path / AGENT_FILE if path.is_dir() else path


def load_bundle(path: str | Path) -> BCBundle:
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
    world_model: str | Path | None = None,
) -> tuple[AgentFactory, dict[str, Any]]:
    """The factory the harness calls per episode, and the env settings the agent needs.

    ``planner="oracle"`` evaluates a hierarchical agent's System 1 under the env's own subtask
    sequence; ``world_model``, a world-model run of the perceived objects, is what a
    ``hierarchical-keypoints`` System 2 thinks with (``planner="imagined"``: with it alone).
    Raises :class:`CheckpointError` when the agent was trained on other tasks or
    observations, ``ValueError`` for a planner the agent cannot use.
    """
    bundle = load_bundle(path)
    check_planner(planner, bundle.kind)
    bundle = bundle.to(resolve_device(device))
    overrides = env_overrides(bundle)
    env = envs.make(task, **overrides)
    try:
        bundle.check_env(task, env.observation_space)
    finally:
        env.close()

    model = None
    if world_model is not None:
        if not isinstance(bundle, BCBundle) or bundle.kind not in IMAGINING_KINDS:
            raise ValueError(
                f"--world-model is for {', '.join(IMAGINING_KINDS)} agents; {path} is a "
                f"{bundle.kind!r} agent (a hierarchical agent carries its own world model)"
            )
        model, _ = load_world_model(world_model)
    elif planner == "imagined":
        raise ValueError(
            "planner 'imagined' needs a world model of the perceived objects (--world-model)"
        )

    def make(env, seed: int):
        return bundle.make(
            seed=seed,
            world_model_check=world_model_check,
            task=task,
            planner=planner,
            **({"world_model": model} if model is not None else {}),
        )

    return make, overrides
