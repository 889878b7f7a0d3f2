"""The registries of policy configs and their builders, the serialisable base of every config,
and :class:`TrainConfig` (how the one trainer optimises a network).

Sizes that come from the data (cameras, image size, proprioception, action size) are passed to
``build()``; they are never written back into a config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from sandbox_common.registry import Builders, Registry
from sandbox_common.validation import check_positive, without_retired

POLICIES: Registry = Registry("policy")
"""Name (the agent kind) -> frozen config class whose ``build(...)`` makes the network."""
POLICY_BUILDERS = Builders("policy")
"""Config type -> network class; each network registers itself beside its definition."""


RETIRED_OPTIONS: dict[str, tuple[Any, str]] = {
    "weighted_rays": (False, "removed 2026-12-07: measured neutral over three seeds"),
    "hand_reference": (
        False,
        (
            "retired 2026-12-08: it cost nominal success (93% -> 83%) and did not lift the "
            "all-factors cell"
        ),
    ),
}
"""Config fields that were removed: name -> (the value every config now has, why it went). A
checkpoint that holds that value loads as before; one that used the option is refused."""


class _Serializable:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        data = without_retired(
            data, RETIRED_OPTIONS,
            f"{cls.__name__}: this checkpoint was trained with the option {{name!r}}",
            "this code cannot rebuild it (retrain without it)",
        )  # fmt: skip
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


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
