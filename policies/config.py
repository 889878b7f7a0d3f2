"""Policy configs (frozen, validated) and named presets: System 1 (the VLA policy) and System 2
(the subtask planner).

Sizes that come from the data (cameras, image size, proprioception, action size) live in a
:class:`world_models.ObsSpec` passed to ``build()``; they are never written back into a config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from sandbox_common.registry import Builders, Registry
from sandbox_common.validation import check_positive, raise_problems

POLICIES: Registry = Registry("policy")
"""Name -> frozen config class whose ``build(spec, vocab_size)`` makes the network."""
POLICY_BUILDERS = Builders("policy")
"""Config type -> network class; each network registers itself beside its definition."""

ACTION_HEADS = ("discrete", "flow")


class _Serializable:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class FusionConfig(_Serializable):
    """The vision-language backbone shared by System 1 and System 2."""

    d_model: int = 64
    """Width of every token."""
    layers: int = 2
    """Transformer encoder layers fusing image, language and proprioception tokens."""
    heads: int = 2
    """Attention heads (must divide d_model); 2 heads of 32 ran faster on a CPU than 4 of 16."""
    ff_dim: int = 128
    """Hidden width of each transformer feed-forward block."""
    conv_channels: tuple[int, ...] = (16, 32, 32)
    """Image tokenizer: an 8x8 stride-4 conv, a 4x4 stride-2 conv, then 3x3 convs; each cell of the
    last map is one token (4x4 = 16 tokens per 64 px camera), plus one spatial-softmax keypoint token."""
    max_text_len: int = 40
    """Language tokens kept (instructions of up to four clauses fit)."""
    dropout: float = 0.0
    vector_dims_used: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 9, 10, 11, 12, 13)
    """Entries of the vector observation (proprioception) the network reads; () reads all. The
    default keeps the sandbox's positions (end effector, yaw, gripper, joints) and drops its
    velocities: with them, imitation learned to continue the current motion ("copycat") and
    could not start a motion from rest."""

    def validate(self, problems: list[str]) -> None:
        check_positive(self, ("d_model", "layers", "heads", "ff_dim", "max_text_len"), problems)
        if self.heads >= 1 and self.d_model % self.heads:
            problems.append(f"heads ({self.heads}) must divide d_model ({self.d_model})")
        if not self.conv_channels or any(c < 1 for c in self.conv_channels):
            problems.append(f"conv_channels must be positive, got {self.conv_channels}")
        if any(i < 0 for i in self.vector_dims_used):
            problems.append(f"vector_dims_used must be >= 0, got {self.vector_dims_used}")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class TrainConfig(_Serializable):
    """How a network is optimised (used by the one trainer)."""

    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    batch_size: int = 32
    steps: int = 3000
    """Training updates."""
    warmup: int = 200
    """Updates of linear learning-rate warm-up (then cosine decay to 10%)."""
    eval_every: int = 500
    """Updates between validation losses."""
    checkpoint_every: int = 250
    """Updates between atomic checkpoints."""
    shift: int = 4
    """Random-shift augmentation of images, in pixels (0: none)."""

    def validate(self, problems: list[str]) -> None:
        check_positive(self, ("batch_size", "steps", "eval_every", "checkpoint_every"), problems)
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.warmup < 0 or self.shift < 0:
            problems.append(f"warmup and shift must be >= 0, got {self.warmup}, {self.shift}")


def _nested_problems(config: Any) -> list[str]:
    """Turn ``fusion`` / ``train`` dicts (from a checkpoint) into configs; list their problems."""
    problems: list[str] = []
    if isinstance(config.fusion, dict):
        object.__setattr__(config, "fusion", FusionConfig.from_dict(config.fusion))
    if isinstance(config.train, dict):
        object.__setattr__(config, "train", TrainConfig.from_dict(config.train))
    config.fusion.validate(problems)
    config.train.validate(problems)
    return problems


@POLICIES.register("vla")
@dataclass(frozen=True)
class VLAConfig(_Serializable):
    """System 1: camera images + proprioception + language tokens -> a chunk of future actions."""

    fusion: FusionConfig = FusionConfig()
    train: TrainConfig = TrainConfig()
    head: str = "flow"
    """Action head: ``discrete`` (per-dimension bins, predicted in parallel) or ``flow`` (flow matching)."""
    chunk: int = 8
    """Actions predicted per inference (the chunk k)."""
    execute: int = 4
    """Actions of each chunk executed before predicting the next one."""
    temporal_ensemble: float = 0.0
    """> 0: predict every step and average overlapping chunks with weights exp(-m * age) (ACT)."""
    bins: int = 41
    """Discrete head: bins per action dimension over [-1, 1] (odd, so 0 is a bin centre)."""
    flow_steps: int = 10
    """Flow head: Euler integration steps from noise to a chunk."""
    flow_hidden: int = 256
    """Flow head: width of the velocity network."""

    def __post_init__(self) -> None:
        problems = _nested_problems(self)
        if self.head not in ACTION_HEADS:
            problems.append(f"head must be one of {ACTION_HEADS}, got {self.head!r}")
        check_positive(self, ("chunk", "execute", "flow_steps", "flow_hidden"), problems)
        if self.execute > self.chunk:
            problems.append(f"execute ({self.execute}) must be <= chunk ({self.chunk})")
        if self.bins < 3 or self.bins % 2 == 0:
            problems.append(f"bins must be odd and >= 3, got {self.bins}")
        if self.temporal_ensemble < 0:
            problems.append(f"temporal_ensemble must be >= 0, got {self.temporal_ensemble}")
        raise_problems(self, problems)

    def build(self, spec, vocab_size: int):
        return POLICY_BUILDERS.build(self, spec, vocab_size)


@POLICIES.register("subtask-planner")
@dataclass(frozen=True)
class PlannerConfig(_Serializable):
    """System 2: instruction + observation + plan position -> the subtask there, and is it done."""

    fusion: FusionConfig = FusionConfig()
    train: TrainConfig = TrainConfig(steps=1000)
    max_subtasks: int = 8
    """Longest plan the planner can track (sort has 6 subtasks, chains up to 6)."""
    decide_every: int = 4
    """Control steps between System 2 calls (a call also happens when the agent starts)."""
    patience: int = 60
    """Control steps without finishing a subtask before it counts as failed and System 2 replans."""
    candidates: int = 3
    """Subtasks proposed per decision and checked in imagination."""
    imagine_chunks: int = 2
    """System 1 chunks rolled out in the world model per candidate (>= 2 decodes imagined frames)."""
    wm_weight: float = 2.0
    """Weight of the world model's imagined progress against the planner's log-probability."""
    done_threshold: float = 0.7
    """A subtask counts as done when the planner's done-probability exceeds this."""
    undone_threshold: float = 0.3
    """The previous subtask counts as undone (e.g. a dropped cube) below this: step back."""
    step_back_after: int = 1
    """System 2 calls in a row on which the previous subtask must look undone before stepping
    back (1: at once). More keeps a System 2 whose belief flickers from undoing an advance."""

    def __post_init__(self) -> None:
        problems = _nested_problems(self)
        check_positive(
            self,
            (
                "max_subtasks",
                "decide_every",
                "patience",
                "candidates",
                "imagine_chunks",
                "step_back_after",
            ),  # fmt: skip
            problems,
        )
        if self.wm_weight < 0:
            problems.append(f"wm_weight must be >= 0, got {self.wm_weight}")
        if not 0 < self.undone_threshold < self.done_threshold < 1:
            problems.append(
                "thresholds must satisfy 0 < undone_threshold < done_threshold < 1, got "
                f"{self.undone_threshold}, {self.done_threshold}"
            )
        raise_problems(self, problems)

    def build(self, spec, vocab_size: int, num_subtasks: int):
        return POLICY_BUILDERS.build(self, spec, vocab_size, num_subtasks)


_DEBUG_FUSION = FusionConfig(d_model=16, layers=1, heads=2, ff_dim=32, conv_channels=(4, 8))
_DEBUG_TRAIN = TrainConfig(batch_size=4, steps=6, warmup=2, eval_every=3, checkpoint_every=2)

VLA_PRESETS: dict[str, VLAConfig] = {
    "debug": VLAConfig(
        fusion=_DEBUG_FUSION,
        train=_DEBUG_TRAIN,
        chunk=4,
        execute=2,
        bins=9,
        flow_steps=3,
        flow_hidden=32,
    ),
    "default": VLAConfig(),
    "large": VLAConfig(
        fusion=FusionConfig(d_model=128, layers=3, ff_dim=256, conv_channels=(32, 64, 64)),
        train=TrainConfig(steps=12000),
    ),
}
PLANNER_PRESETS: dict[str, PlannerConfig] = {
    "debug": PlannerConfig(fusion=_DEBUG_FUSION, train=_DEBUG_TRAIN, imagine_chunks=1, patience=10),
    "default": PlannerConfig(),
    "large": PlannerConfig(
        fusion=FusionConfig(d_model=128, layers=3, ff_dim=256, conv_channels=(32, 64, 64)),
        train=TrainConfig(steps=4000),
    ),
}
"""``debug`` for tests, ``default`` for the demo and benchmarks, ``large`` for real runs."""


def policy_preset(name: str, head: str | None = None, **overrides: Any) -> VLAConfig:
    """A System 1 preset, optionally with another action head."""
    if name not in VLA_PRESETS:
        raise KeyError(f"unknown policy preset {name!r}; known presets: {', '.join(VLA_PRESETS)}")
    if head is not None:
        overrides["head"] = head
    return replace(VLA_PRESETS[name], **overrides) if overrides else VLA_PRESETS[name]


def planner_preset(name: str, **overrides: Any) -> PlannerConfig:
    if name not in PLANNER_PRESETS:
        raise KeyError(
            f"unknown planner preset {name!r}; known presets: {', '.join(PLANNER_PRESETS)}"
        )
    return replace(PLANNER_PRESETS[name], **overrides) if overrides else PLANNER_PRESETS[name]
