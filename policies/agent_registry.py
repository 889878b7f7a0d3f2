"""``AGENTS``: the one registry of agent kinds (name -> the agent class a saved agent builds).
Each kind registers itself beside its agent class; :mod:`policies.bundles` imports every kind."""

from __future__ import annotations

from sandbox_common.registry import Registry

AGENTS: Registry = Registry("agent")
