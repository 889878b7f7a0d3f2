"""Orchestration: datasets, collection, rollouts, video, benchmarks and the CLI."""

import envs as _envs  # noqa: F401  (chooses the headless GL backend before mujoco is imported)
