"""Demonstrations in a residual's replay buffer: episodes in which the residual steers its base
toward the scripted expert, stored as ordinary transitions before RL starts.

The residual's action in such an episode is ``clip((a_expert - a_base) / scale, -1, 1)``: the
correction that would turn the base's action into the expert's clean one, as far as the bound
allows. The episodes run in the training env itself (the real simulator, the run's own reward),
so every stored transition is one the learner could have made, with its true reward and next
state; where the bound clips, the episode is the base nudged toward the expert, not the
expert's. The critic so sees corrections that finish the task from the first update (the idea
of RLPD and IBRL, which put demonstrations in an off-policy learner's buffer).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embodied.training.rl_envs import ResidualEnv
from envs.experts import ScriptedExpert

DEMO_SEED = 500_000
"""First seed of the expert-guided episodes (evaluations start at 20000, training at 200000)."""


def expert_residual(env: ResidualEnv) -> np.ndarray:
    """The bounded correction from the base's action toward the expert's, in [-1, 1]^5."""
    if env.agent is None:
        raise RuntimeError("call reset() before expert_residual()")
    clean, _ = ScriptedExpert(env.unwrapped).label()
    return np.clip((clean - env.agent.base_action) / env.scale, -1.0, 1.0).astype(np.float32)


def seed_replay_buffer(model, env: ResidualEnv, episodes: int, seed: int = 0) -> dict[str, Any]:
    """Run ``episodes`` expert-guided episodes in ``env`` and add every transition to
    ``model.replay_buffer`` (SB3's off-policy buffer, one env); returns what was stored."""
    buffer = model.replay_buffer
    transitions = wins = 0
    for i in range(episodes):
        obs, _ = env.reset(seed=DEMO_SEED + seed * 10_000 + i)
        done = False
        while not done:
            action = expert_residual(env)
            next_obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            buffer.add(obs[None], next_obs[None], action[None], np.array([reward]),
                       np.array([done]), [{"TimeLimit.truncated": truncated and not terminated}])  # fmt: skip
            obs = next_obs
            transitions += 1
        wins += bool(info.get("success", False))
    return {"episodes": episodes, "transitions": transitions,
            "success_rate": wins / episodes if episodes else 0.0}  # fmt: skip
