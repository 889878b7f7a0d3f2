"""World-model configs (frozen, validated) and named presets, plus the observation spec.

The config says how big the model is and how it learns; the :class:`ObsSpec` says what the data
looks like (image keys and shapes, vector keys and sizes, action size). The spec is derived from
the data and passed to ``build()``; it is never written back into the config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from sandbox_common.validation import check_positive, raise_problems
from world_models.registry import WORLD_MODEL_BUILDERS, WORLD_MODELS


@dataclass(frozen=True)
class ObsSpec:
    """Shapes of one observation and one action, as found in the data."""

    image_keys: tuple[str, ...]
    """Observation keys holding ``(H, W, 3) uint8`` images, in a fixed order."""
    image_size: int
    """Height = width of every image (px); 0 when there are no images."""
    vector_keys: tuple[str, ...]
    """Observation keys holding flat float vectors, in a fixed order."""
    vector_dims: tuple[int, ...]
    """Length of each vector key."""
    action_dim: int

    def __post_init__(self) -> None:
        if len(self.vector_keys) != len(self.vector_dims):
            raise ValueError(
                f"vector_keys {self.vector_keys} and vector_dims {self.vector_dims} differ in length"
            )
        if self.action_dim < 1:
            raise ValueError(f"action_dim must be >= 1, got {self.action_dim}")
        if self.image_keys and self.image_size < 8:
            raise ValueError(
                f"image_size must be >= 8 when there are images, got {self.image_size}"
            )

    @property
    def vector_dim(self) -> int:
        return sum(self.vector_dims)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ObsSpec":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def differences(self, other: "ObsSpec") -> list[str]:
        """Human-readable differences between two specs (empty when equal)."""
        return [
            f"{f.name}: {getattr(self, f.name)!r} vs {getattr(other, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]


@dataclass(frozen=True)
class LatentWorldModelConfig:
    """A latent world model in the spirit of TD-MPC2 / JEPA: predict latents, not pixels."""

    latent_dim: int = 64
    """Size of the latent state z."""
    hidden_dim: int = 256
    """Width of the MLPs (dynamics, heads, vector encoder)."""
    conv_channels: tuple[int, ...] = (16, 32, 32)
    """Channels of the image encoder: a stride-4 8x8 conv, then stride-2 4x4, then stride-1 3x3 convs."""
    object_slot_size: int = 0
    """> 0: the latent carries the auxiliary objects explicitly, read as slots of this many values
    (our tasks' ``objects_by_colour``: ``[present, x, y, z]`` per colour x kind, so 4). Each slot is
    found by its own keypoint map in every camera, and moves by a predicted increment, so what
    nobody touches stays put. 0: objects are only read off the latent by the auxiliary head."""
    slot_dynamics: str = "joint"
    """How the object slots move: ``joint``, one network from the whole latent to every slot's
    increment; ``shared``, one network applied to each slot (its values and a learned code, with
    the whole latent and the action as context), so what it learns of one cube holds for all."""
    object_input_key: str = ""
    """A vector key that already says where the objects are, in the auxiliary keys' layout (e.g.
    ``perceived_objects``: what a trained object perception reports from the cameras, see
    ``embodied.training.world_model.add_perceived_objects``). The slots start from it (plus a
    learned correction) instead of the model's own keypoint maps; it is not a free-latent input.
    Needs ``object_slot_size > 0``. Empty: the keypoint maps."""
    motion_coef: float = 30.0
    """Weight of the slots' motion loss: the imagined displacement of each object since the first
    step against the true one (most objects stand still in most frames, so the plain object loss
    hardly notices a carried cube left behind)."""
    use_images: bool = True
    """Encode the image keys (pixel variant); False gives the state-only variant."""
    hidden_keys: tuple[str, ...] = ("object_state",)
    """Vector keys a pixel model never sees (privileged simulator state)."""
    aux_keys: tuple[str, ...] = ("objects_by_colour",)
    """Vector keys never given as input but predicted from z during training (privileged, identifiable
    supervision: where the cube and pad of each colour are); ignored when absent from the data."""
    aux_coef: float = 1.0
    """Weight of the auxiliary prediction of ``aux_keys``."""
    decoder: bool = True
    """Train an image decoder on stop-gradient latents, only to watch imagined rollouts."""
    decoder_channels: tuple[int, ...] = (64, 32, 16)
    """Channels of the decoder's transposed convs (upsampling 8 -> 64 px)."""
    decoder_frames: int = 8
    """Frames per batch the decoder is trained on (a random subset keeps it cheap)."""
    horizon: int = 5
    """Steps of latent rollout in the training loss (the sequence length of a batch)."""
    rho: float = 0.9
    """Discount of the loss at later rollout steps."""
    consistency_coef: float = 1.0
    """Weight of the latent prediction loss against the EMA target encoder."""
    state_coef: float = 1.0
    """Weight of predicting the (normalised) vector observation from z: grounds the latent."""
    reward_coef: float = 0.5
    success_coef: float = 0.5
    subtask_coef: float = 0.5
    variance_coef: float = 1.0
    """Weight of the hinge keeping each latent dimension's std over the batch above 1 (anti-collapse)."""
    decoder_coef: float = 1.0
    target_ema: float = 0.02
    """Step size of the target encoder's exponential moving average."""
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    grad_clip: float = 10.0
    batch_size: int = 32
    steps: int = 3000
    """Training updates."""
    eval_every: int = 500
    """Updates between validation losses (and TensorBoard scalars of them)."""
    checkpoint_every: int = 250
    """Updates between atomic checkpoints."""

    def __post_init__(self) -> None:
        problems = []
        positive = ("latent_dim", "hidden_dim", "horizon", "batch_size", "steps", "eval_every",
                    "checkpoint_every", "decoder_frames")  # fmt: skip
        check_positive(self, positive, problems)
        if self.object_slot_size < 0:
            problems.append(f"object_slot_size must be >= 0, got {self.object_slot_size}")
        if self.slot_dynamics not in ("joint", "shared"):
            problems.append(
                f"slot_dynamics must be 'joint' or 'shared', got {self.slot_dynamics!r}"
            )
        if self.object_input_key and self.object_slot_size < 1:
            problems.append(
                f"object_input_key {self.object_input_key!r} needs object slots "
                f"(object_slot_size > 0), got object_slot_size {self.object_slot_size}"
            )
        if not 0 < self.rho <= 1:
            problems.append(f"rho must be in (0, 1], got {self.rho}")
        if not 0 < self.target_ema <= 1:
            problems.append(f"target_ema must be in (0, 1], got {self.target_ema}")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if len(self.conv_channels) < 1 or any(c < 1 for c in self.conv_channels):
            problems.append(f"conv_channels must be positive, got {self.conv_channels}")
        if len(self.decoder_channels) != 3 or any(c < 1 for c in self.decoder_channels):
            problems.append(
                f"decoder_channels must be three positive ints, got {self.decoder_channels}"
            )
        for name in (
            "consistency_coef",
            "state_coef",
            "reward_coef",
            "success_coef",
            "subtask_coef",
            "variance_coef",
            "decoder_coef",
            "motion_coef",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        raise_problems(self, problems)

    def build(self, spec: ObsSpec):
        return WORLD_MODEL_BUILDERS.build(self, spec)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LatentWorldModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown LatentWorldModelConfig fields {unknown}; known: {sorted(known)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


WORLD_MODELS.register("latent")(LatentWorldModelConfig)

PRESETS: dict[str, LatentWorldModelConfig] = {
    "debug": LatentWorldModelConfig(
        latent_dim=16,
        hidden_dim=32,
        conv_channels=(4, 8),
        decoder_channels=(8, 8, 4),
        decoder_frames=2,
        horizon=3,
        batch_size=4,
        steps=6,
        eval_every=3,
        checkpoint_every=2,
    ),
    "state": LatentWorldModelConfig(
        use_images=False, decoder=False, steps=4000, batch_size=64, eval_every=500
    ),
    "default": LatentWorldModelConfig(object_slot_size=4, slot_dynamics="shared"),
    "large": LatentWorldModelConfig(
        latent_dim=128,
        hidden_dim=512,
        conv_channels=(32, 64, 64),
        steps=10000,
        object_slot_size=4,
        slot_dynamics="shared",
    ),
}
"""``debug`` for tests; ``state`` the state-only variant; ``default`` the pixel model (with object
slots: a field's dataclass default is what checkpoints written before it had, so they load as
they were); ``large`` for real runs."""


def preset(name: str, **overrides: Any) -> LatentWorldModelConfig:
    try:
        base = PRESETS[name]
    except KeyError:
        raise KeyError(
            f"unknown world-model preset {name!r}; known presets: {', '.join(PRESETS)}"
        ) from None
    return replace(base, **overrides) if overrides else base


__all__ = ["LatentWorldModelConfig", "ObsSpec", "PRESETS", "preset"]
