"""Configs and presets of the reference imitation baselines (``bc-state``, ``bc-pixels``); the
networks and agents live in :mod:`policies.bc`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envs.link_features import SLOT_ORDERS
from policies.config import POLICIES, POLICY_BUILDERS, TrainConfig, _Serializable
from policies.grounded_vla.config import HIERARCHICAL_PRESETS as HIERARCHICAL_VLA_PRESETS
from policies.grounded_vla.config import PRESETS as GROUNDED_VLA_PRESETS
from sandbox_common.validation import raise_problems


def _check_history(config: Any, problems: list[str]) -> None:
    """``previous_action``, ``history`` and ``previous_action_dropout`` together."""
    if config.history < 0:
        problems.append(f"history must be >= 0 steps, got {config.history}")
    elif config.history and config.previous_action:
        problems.append("history already includes the previous action: leave previous_action off")
    if not 0.0 <= config.previous_action_dropout < 1.0:
        problems.append(
            f"previous_action_dropout must be in [0, 1), got {config.previous_action_dropout}"
        )
    elif config.previous_action_dropout and not (config.previous_action or config.history):
        problems.append("previous_action_dropout needs previous_action or history")


def _train_from(config: Any) -> None:
    if isinstance(config.train, dict):
        object.__setattr__(config, "train", TrainConfig.from_dict(config.train))


@POLICIES.register("bc-state")
@dataclass(frozen=True)
class BCStateConfig(_Serializable):
    """A per-step MLP: task-relative privileged state -> action."""

    hidden: tuple[int, ...] = (256, 256, 256)
    """Widths of the hidden layers."""
    previous_action: bool = False
    """Also read the action the agent chose one step earlier (zeros at an episode's start): under
    observation and action lags a per-step policy otherwise cannot tell where its last command
    is taking the arm (docs/BENCHMARKS.md, issue 13). The agent remembers only what its own
    ``act`` returned: in DAgger's mixed rollouts a step the teacher takes is not recorded."""
    history: int = 0
    """Also read the last ``history`` steps: each one's features as a difference from now, and
    the action taken then (``policies.history``; zeros before an episode's start). It includes
    the previous action, so it replaces ``previous_action``. Under lags, noise and a changed
    plant at once, 2 steps take this policy's relative drop with every factor of domain-randomised
    pick-place at 0.5 from 33% to 14% (3 seeds; docs/BENCHMARKS.md, issue 13)."""
    previous_action_dropout: float = 0.0
    """In training, the share of samples whose previous action (or whole history) is zeroed, as
    at an episode's start, so the policy cannot lean on it alone (imitation's copycat problem)."""
    train: TrainConfig = TrainConfig(  # noqa: RUF009 (frozen: a shared default is safe)
        learning_rate=1e-3, batch_size=256, steps=4000, warmup=100, eval_every=500,
        checkpoint_every=500, shift=0,
    )  # fmt: skip

    def __post_init__(self) -> None:
        _train_from(self)
        problems: list[str] = []
        self.train.validate(problems)
        if not self.hidden or any(h < 1 for h in self.hidden):
            problems.append(f"hidden must be positive widths, got {self.hidden}")
        _check_history(self, problems)
        raise_problems(self, problems)

    def build(self, action_dim: int = 5):
        return POLICY_BUILDERS.build(self, action_dim)


@POLICIES.register("bc-pixels")
@dataclass(frozen=True)
class BCPixelsConfig(_Serializable):
    """A plain conv policy with the instruction in every conv layer (FiLM)."""

    channels: tuple[int, ...] = (16, 32, 32)
    """Conv widths per camera stem: 8x8 stride 4, 3x3 stride 2, then 3x3 stride 1 (64 px -> 8x8)."""
    hidden: int = 128
    """Width of each camera's projection and of the MLP head."""
    chunk: int = 8
    """Actions predicted per inference."""
    execute: int = 4
    """Actions of each chunk executed before the next inference."""
    train: TrainConfig = TrainConfig(  # noqa: RUF009 (frozen: a shared default is safe)
        learning_rate=1e-3, batch_size=64, steps=20000, warmup=500, eval_every=1000,
        checkpoint_every=500, shift=4,
    )  # fmt: skip

    def __post_init__(self) -> None:
        _train_from(self)
        problems: list[str] = []
        self.train.validate(problems)
        if len(self.channels) < 2 or any(c < 1 for c in self.channels):
            problems.append(f"channels must hold >= 2 positive widths, got {self.channels}")
        if self.hidden < 1 or self.chunk < 1 or not 1 <= self.execute <= self.chunk:
            problems.append(
                f"need hidden >= 1 and 1 <= execute <= chunk, got {self.hidden}, "
                f"{self.execute}, {self.chunk}"
            )
        raise_problems(self, problems)

    def build(self, image_keys: tuple[str, ...], image_size: int, action_dim: int = 5):
        return POLICY_BUILDERS.build(self, image_keys, image_size, action_dim)


@POLICIES.register("bc-keypoints")
@dataclass(frozen=True)
class BCKeypointsConfig(_Serializable):
    """Object perception from the cameras (per-identity heatmaps trained on privileged labels,
    triangulated; :mod:`policies.perception`) under a ``bc-state`` policy."""

    width: int = 16
    """Channels of each camera's heatmap network."""
    state_hidden: tuple[int, ...] = (256, 256, 256)
    """Widths of the state policy's hidden layers."""
    state_batch: int = 256
    """State-policy samples per update (``train.batch_size`` is the perception's frames)."""
    state_steps: int = 2000
    """Updates of the state policy, after perception is trained, on the features perception
    gives on the training frames (the noise it will see when acting); 0: none."""
    previous_action: bool = False
    """The state policy also reads the action the agent chose one step earlier (``bc-state``'s
    option of the same name; System 1 in the hierarchical agent). Alone it is harmful here: on perceived
    features the policy copies its last action (nominal 95% -> 50-80%); with
    ``previous_action_dropout`` 0.5 nominal success holds (docs/BENCHMARKS.md)."""
    history: int = 0
    """``bc-state``'s option of the same name: the state policy (System 1 in the hierarchical
    agent) also reads the last ``history`` steps' perceived features (as differences from now)
    and actions."""
    previous_action_dropout: float = 0.0
    """``bc-state``'s option of the same name, for the state policy's training."""
    train: TrainConfig = TrainConfig(  # noqa: RUF009 (frozen: a shared default is safe)
        learning_rate=2e-3, batch_size=32, steps=8000, warmup=200, eval_every=500,
        checkpoint_every=250, shift=0,
    )  # fmt: skip

    def state_policy(self) -> BCStateConfig:
        """The config of the state policy that acts on the perceived features (System 1 in the
        hierarchical agent)."""
        return BCStateConfig(
            hidden=self.state_hidden,
            previous_action=self.previous_action,
            history=self.history,
            previous_action_dropout=self.previous_action_dropout,
        )

    def __post_init__(self) -> None:
        _train_from(self)
        problems: list[str] = []
        self.train.validate(problems)
        if self.state_steps < 0:
            problems.append(f"state_steps must be >= 0, got {self.state_steps}")
        if self.width < 1 or self.state_batch < 1:
            problems.append(
                f"width and state_batch must be >= 1, got {self.width}, {self.state_batch}"
            )
        if not self.state_hidden or any(h < 1 for h in self.state_hidden):
            problems.append(f"state_hidden must be positive widths, got {self.state_hidden}")
        if self.train.shift:
            problems.append("shift must be 0: perception is calibrated to the cameras' pixels")
        _check_history(self, problems)
        raise_problems(self, problems)

    def build(self, image_keys: tuple[str, ...], image_size: int, action_dim: int = 5):
        return POLICY_BUILDERS.build(self, image_keys, image_size, action_dim)


@POLICIES.register("hierarchical-keypoints")
@dataclass(frozen=True)
class HierarchicalKeypointsConfig(BCKeypointsConfig):
    """The perception of ``bc-keypoints`` under a System 2 (an object planner) and a System 1
    conditioned on the subtask (``policies.hierarchical_keypoints``); ``state_hidden`` and
    ``state_batch`` size System 1, ``state_steps`` counts the second stage of both."""

    planner_hidden: tuple[int, ...] = (256, 256)
    """Widths of System 2's trunk."""
    max_subtasks: int = 8
    """Longest plan System 2 tracks."""
    planner_slots: str = "instruction"
    """How System 2's features lay out the instruction's links (``envs.task_features.SLOT_ORDERS``):
    in the instruction's order, so plan position ``i`` always reads the same slot, or ``active``
    first, as System 1 reads them (checkpoints written before this field: ``active``). In order,
    sort went 23/47 -> 73% (docs/DECISIONS.md)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        problems: list[str] = []
        if self.planner_slots not in SLOT_ORDERS:
            problems.append(
                f"planner_slots must be one of {SLOT_ORDERS}, got {self.planner_slots!r}"
            )
        if not self.planner_hidden or any(h < 1 for h in self.planner_hidden):
            problems.append(f"planner_hidden must be positive widths, got {self.planner_hidden}")
        if self.max_subtasks < 1:
            problems.append(f"max_subtasks must be >= 1, got {self.max_subtasks}")
        raise_problems(self, problems)


_DEBUG_TRAIN = TrainConfig(
    batch_size=8, steps=6, warmup=2, eval_every=3, checkpoint_every=2, shift=2
)
_KEYPOINTS_DEBUG_TRAIN = TrainConfig(
    batch_size=8, steps=6, warmup=2, eval_every=3, checkpoint_every=2, shift=0
)
_KEYPOINTS_LARGE_TRAIN = TrainConfig(
    learning_rate=2e-3, batch_size=32, steps=10000, warmup=200, eval_every=1000,
    checkpoint_every=500, shift=0,
)  # fmt: skip
"""Both agents on perceived objects train with the same schedules (equal compute)."""
BC_PRESETS: dict[str, dict[str, Any]] = {
    "bc-state": {
        "debug": BCStateConfig(hidden=(32, 32), train=_DEBUG_TRAIN),
        "default": BCStateConfig(),
        "previous-action": BCStateConfig(previous_action=True),
        "history": BCStateConfig(history=2),
        "large": BCStateConfig(
            hidden=(512, 512, 512),
            train=TrainConfig(
                learning_rate=1e-3, batch_size=256, steps=10000, warmup=200,
                eval_every=1000, checkpoint_every=1000, shift=0,
            ),
        ),
    },
    "bc-keypoints": {
        "debug": BCKeypointsConfig(
            width=4, state_hidden=(32, 32), state_batch=16, state_steps=4,
            train=_KEYPOINTS_DEBUG_TRAIN,
        ),
        "default": BCKeypointsConfig(),
        "previous-action": BCKeypointsConfig(previous_action=True),
        "previous-action-dropout": BCKeypointsConfig(
            previous_action=True, previous_action_dropout=0.5
        ),
        "history": BCKeypointsConfig(history=2),
        "history-dropout": BCKeypointsConfig(history=2, previous_action_dropout=0.5),
        "history3-dropout": BCKeypointsConfig(history=3, previous_action_dropout=0.5),
        "large": BCKeypointsConfig(width=32, train=_KEYPOINTS_LARGE_TRAIN),
    },
    "hierarchical-keypoints": {
        "debug": HierarchicalKeypointsConfig(
            width=4, state_hidden=(32, 32), planner_hidden=(32,), state_batch=16, state_steps=4,
            train=_KEYPOINTS_DEBUG_TRAIN,
        ),
        "default": HierarchicalKeypointsConfig(),
        "large": HierarchicalKeypointsConfig(width=32, train=_KEYPOINTS_LARGE_TRAIN),
    },
    "bc-pixels": {
        "debug": BCPixelsConfig(channels=(4, 8), hidden=16, chunk=4, execute=2, train=_DEBUG_TRAIN),
        "default": BCPixelsConfig(),
        "large": BCPixelsConfig(
            channels=(32, 64, 64, 64),
            hidden=256,
            train=TrainConfig(
                learning_rate=1e-3, batch_size=128, steps=40000, warmup=500,
                eval_every=2000, checkpoint_every=1000, shift=4,
            ),
        ),
    },
    "end-to-end": GROUNDED_VLA_PRESETS,
    "hierarchical": HIERARCHICAL_VLA_PRESETS,
}  # fmt: skip
"""``debug`` for tests, ``default`` for the benchmarks and the demo, ``large`` for real runs."""


def bc_preset(kind: str, name: str) -> BCStateConfig | BCPixelsConfig:
    if kind not in BC_PRESETS:
        raise KeyError(f"unknown baseline {kind!r}; known: {', '.join(BC_PRESETS)}")
    if name not in BC_PRESETS[kind]:
        raise KeyError(
            f"unknown {kind} preset {name!r}; known presets: {', '.join(BC_PRESETS[kind])}"
        )
    return BC_PRESETS[kind][name]
