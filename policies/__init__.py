"""Policies and agents (torch). Importing the package registers every policy config
(``POLICIES``: vla, subtask-planner, bc-state, bc-pixels, bc-keypoints, hierarchical-keypoints)
and agent kind (``AGENTS``: end-to-end, hierarchical, bc-state, bc-pixels, bc-keypoints,
hierarchical-keypoints, rl, residual)."""

from policies import agents, bc, bc_keypoints, config, hierarchical_keypoints, rl  # noqa: F401
