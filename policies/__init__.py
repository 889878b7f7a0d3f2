"""Policies and agents (torch). Importing the package registers every policy config
(``POLICIES``: vla, subtask-planner, bc-state, bc-pixels) and agent kind (``AGENTS``:
end-to-end, hierarchical, bc-state, bc-pixels, rl, residual)."""

from policies import agents, bc, config, rl  # noqa: F401  (registers)
