"""``RLConfig``: what ``train rl`` runs, validated on construction, the settings added after
runs were written (so that an older run's ``train.json`` resumes under what it did) and the
settings retired since (a run that used one is refused)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.rl import ALGOS, GRIPPER_SCALE_MAX
from sandbox_common.validation import check_positive, raise_problems
from sandbox_common.validation import without_retired as drop_retired

ADDED_SETTINGS = {
    "ent_coef": "auto",
    "use_sde": False,
    "her": False,
    "her_goals": 4,
    "privileged_critic": False,
    "demo_episodes": 0,
    "residual_gripper_scale": None,
    "residual_log_std": None,
    "residual_previous_action": False,
}
"""``RLConfig`` fields added after runs were written, with what those runs did: a run's
``train.json`` without them resumes under a config that sets them so."""

RETIRED_SETTINGS = {
    "actor_delay": (0, "retired 2026-12-08: it delayed a strong base's drift, did not stop it"),
}
"""``RLConfig`` fields that were removed: name -> (what every run now does, why it went). A
run's ``train.json`` that holds that value resumes as before; one that used the option is
refused (:func:`without_retired`)."""


def without_retired(written: dict) -> dict:
    """A run's written config without the retired settings it left at their value; raises
    naming the option when it used one."""
    return drop_retired(
        written, RETIRED_SETTINGS,
        "this run was trained with the option {name!r} (train rl --{flag})",
        "this code cannot resume it (use a new --out)",
    )  # fmt: skip


@dataclass(frozen=True)
class RLConfig:
    """What ``train rl`` runs; validated on construction."""

    algo: str = "sac"
    steps: int = 50_000
    """Environment steps."""
    learning_rate: float = 3e-4
    batch_size: int = 256
    buffer_size: int = 100_000
    learning_starts: int = 1_000
    gamma: float = 0.97
    net_arch: tuple[int, ...] = (256, 256)
    residual_scale: float = 0.3
    """Residual agents: the bound of the correction (actions are in [-1, 1])."""
    residual_gripper_scale: float | None = None
    """Residual agents: the gripper command's bound, up to 2 (then the correction can open a
    closed gripper and close an open one); None: ``residual_scale``."""
    residual_init: float = 0.01
    """Residual agents: the actor's output layer starts scaled by this (a correction near 0)."""
    residual_log_std: float | None = None
    """Residual agents (sac, ppo): the actor's log standard deviation at the start, before tanh
    (None: SB3's, about 0: exploration noise about as wide as the bound, which opens and shuts a
    gripper bounded at 2); -2 starts at a std of 0.14."""
    residual_previous_action: bool = False
    """Residual agents: the actor also reads the action executed one step earlier. Under an
    observation or action lag the observation shows a state the last action has not acted on
    yet; with that action beside it the residual can learn the lag's correction."""
    ent_coef: str = "auto_0.01"
    """SAC's entropy coefficient: ``auto`` (learned, from 1), ``auto_X`` (learned, from X) or a
    fixed number."""
    use_sde: bool = False
    """SAC: state-dependent exploration noise (gSDE), correlated over steps."""
    her: bool = False
    """SAC / TD3 from scratch with hindsight experience replay on the goal-conditioned view of
    a one-goal task (:class:`~embodied.training.rl_envs.GoalTaskEnv`)."""
    her_goals: int = 4
    """HER: relabelled goals per real transition (the ``future`` strategy)."""
    privileged_critic: bool = False
    """SAC residuals: an asymmetric critic that also reads task-relative privileged state (the
    simulator's), which the actor never sees (:mod:`policies.asymmetric`)."""
    demo_episodes: int = 0
    """SAC / TD3 residuals: episodes steered toward the scripted expert, stored in the replay
    buffer before learning (:mod:`embodied.training.rl_demos`)."""
    dream_horizon: int = 50
    """RL in a world model: steps per imagined episode (and per real evaluation episode)."""
    dream_starts: int = 64
    """RL in a world model: real observations (one per seeded reset) imagination starts from."""
    eval_every: int = 5_000
    eval_episodes: int = 10
    checkpoint_every: int = 5_000

    def __post_init__(self) -> None:
        problems = []
        if self.algo not in ALGOS:
            problems.append(f"algo must be one of {ALGOS}, got {self.algo!r}")
        positive = ("steps", "batch_size", "buffer_size", "eval_every", "eval_episodes",
                    "checkpoint_every")  # fmt: skip
        check_positive(self, positive, problems)
        if self.demo_episodes < 0 or (self.demo_episodes and self.algo == "ppo"):
            problems.append(
                f"demo_episodes must be >= 0 and is for sac / td3, got {self.demo_episodes} "
                f"with {self.algo}"
            )
        if self.privileged_critic and self.algo != "sac":
            problems.append(f"privileged_critic is for sac, got {self.algo}")
        if self.her and (self.algo == "ppo" or self.her_goals < 1):
            problems.append(
                f"her is for sac / td3 with her_goals >= 1, got {self.algo} with "
                f"{self.her_goals} goals"
            )
        if self.learning_rate <= 0 or not 0 < self.gamma < 1:
            problems.append(
                f"need learning_rate > 0 and 0 < gamma < 1, got {self.learning_rate}, {self.gamma}"
            )
        if not 0 < self.residual_scale <= 1:
            problems.append(f"residual_scale must be in (0, 1], got {self.residual_scale}")
        gripper = self.residual_gripper_scale
        if gripper is not None and not 0 < gripper <= GRIPPER_SCALE_MAX:
            problems.append(
                f"residual_gripper_scale must be in (0, {GRIPPER_SCALE_MAX:g}] or None, got {gripper}"
            )
        log_std = self.residual_log_std
        if log_std is not None and not (-5 <= log_std <= 1 and self.algo != "td3"):
            problems.append(
                f"residual_log_std must be in [-5, 1] or None, and is for sac / ppo; got "
                f"{log_std} with {self.algo}"
            )
        if not _valid_ent_coef(self.ent_coef):
            problems.append(
                f"ent_coef must be 'auto', 'auto_X' or a number X, with X > 0 (learned) or "
                f">= 0 (fixed); got {self.ent_coef!r}"
            )
        raise_problems(self, problems)


def _valid_ent_coef(value: str) -> bool:
    learned = value.startswith("auto")
    number = value.removeprefix("auto").removeprefix("_") if learned else value
    if learned and not number:
        return value == "auto"
    try:
        x = float(number)
    except ValueError:
        return False
    return np.isfinite(x) and (x > 0 if learned else x >= 0)
