"""Load any trained agent from the one checkpoint format (``kind = "agent"``), whatever it is:
an imitation agent (:class:`~policies.bc.BCBundle`: ``end-to-end`` and ``hierarchical``, the
VLA kinds of :mod:`policies.grounded_vla`, and the reference kinds ``bc-state``, ``bc-pixels``,
``bc-keypoints``, ``hierarchical-keypoints``) or an ``rl`` / ``residual`` / ``dream``
:class:`~policies.rl.RLBundle`. Importing this module registers every agent kind."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from policies import bc_keypoints, hierarchical_keypoints  # noqa: F401  (register their kinds)
from policies.agent_registry import AGENTS
from policies.bc import BC_KINDS, BCBundle
from policies.grounded_vla import end_to_end as grounded_vla_agent  # noqa: F401
from policies.grounded_vla import hierarchical as hierarchical_vla_agent  # noqa: F401
from policies.rl import RL_KINDS, RLBundle
from policies.two_systems import KIND

RETIRED = (
    "is from the retired pixel-fusion family (raw pixels and word tokens to action chunks, "
    "0-28% on pick-place); this code's end-to-end and hierarchical kinds are the grounded VLA "
    "(policies/grounded_vla): retrain it with `train agent --kind {kind}`"
)
"""What loading a checkpoint of the retired family says."""
RETIRED_SYSTEM2 = (
    "has the retired System 2 that decoded words from the whole instruction at every word "
    "(it mixed links: chain 44%); this code's System 2 reads the instruction's links once, "
    "tracks the next one and says it: retrain it with `train agent --kind hierarchical`"
)
from world_models.checkpoint import CheckpointError, load_checkpoint
from world_models.training import load_world_model

__all__ = ["AGENTS", "BC_KINDS", "env_overrides", "load_agent"]


def env_overrides(bundle: BCBundle | RLBundle) -> dict[str, Any]:
    """The env settings an agent was trained with (its observation layout), as ``envs.make``
    takes them: camera names as a tuple (the checkpoint's JSON gave a list)."""
    overrides = dict(bundle.env)
    if "cameras" in overrides:
        overrides["cameras"] = tuple(overrides["cameras"])
    return overrides


def _load_bytes(blob: bytes, loader=None):
    """A checkpoint held as bytes (a residual agent's base, a dream agent's world model)."""
    with tempfile.TemporaryDirectory(prefix="wm-sandbox-part-") as tmp:
        file = Path(tmp) / "part.pt"
        file.write_bytes(blob)
        return (loader or load_agent)(file)


def load_agent(path: str | Path) -> BCBundle | RLBundle:
    """The agent bundle in ``path``; a clear :class:`CheckpointError` when it is not readable."""
    record = load_checkpoint(path, KIND)
    kind = record.get("agent")
    if kind not in AGENTS:
        raise CheckpointError(f"{path}: unknown agent kind {kind!r}; known: {AGENTS.names()}")
    if "system1" in record and "tokenizer" in record:
        raise CheckpointError(f"{path}: this {kind!r} agent " + RETIRED.format(kind=kind))
    if "decision.speaker.query" in record.get("state", {}):
        raise CheckpointError(f"{path}: this {kind!r} agent " + RETIRED_SYSTEM2)
    try:
        if kind in RL_KINDS:
            base = _load_bytes(record["base"]) if record["base"] else None
            world_model = None
            if record.get("world_model"):
                world_model = _load_bytes(record["world_model"], load_world_model)[0]
            return RLBundle.from_record(record, base, world_model)
        return BCBundle.from_record(record)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: agent checkpoint is not readable by this code "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:300]})"
        ) from None
