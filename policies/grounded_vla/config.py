"""``end-to-end``: the config and its presets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.config import POLICIES, POLICY_BUILDERS, TrainConfig, _Serializable
from sandbox_common.validation import check_positive, raise_problems


@POLICIES.register("end-to-end")
@dataclass(frozen=True)
class GroundedVLAConfig(_Serializable):
    """Object perception (heatmaps trained on privileged labels), a language path that reads
    the instruction's word pieces and points at the perceived objects (attention over word and
    object tokens), and an action head on the objects it pointed at."""

    width: int = 16
    """Channels of each camera's heatmap network."""
    d_model: int = 64
    """Width of the word, object and link tokens."""
    heads: int = 4
    """Attention heads of every transformer layer."""
    text_layers: int = 1
    """Transformer layers over the word tokens alone."""
    fusion_layers: int = 2
    """Transformer layers over word and object tokens together."""
    link_layers: int = 1
    """Decoder layers of the link queries over the fused tokens."""
    max_words: int = 96
    """The context: words and punctuation marks an instruction may hold (longer: an error)."""
    buckets: int = 4096
    """Hash buckets of the word-piece embedding."""
    typo_rate: float = 0.05
    """Training noise: the share of words of 4+ letters misspelt in a drawn instruction."""
    language_batch: int = 32
    """Instructions per update of the language path."""
    language: str = "varied"
    """The generator's split training instructions are drawn from, fresh every update
    (``envs.instructions``): the demos' own instruction is one draw among many."""
    state_hidden: tuple[int, ...] = (256, 256, 256)
    """Widths of the action head's hidden layers."""
    state_batch: int = 256
    """Action-head samples per update (``train.batch_size`` is the perception's frames)."""
    state_steps: int = 2000
    """Updates of the action head and the language path after perception is trained, on what
    perception reports over the training frames; 0: none."""
    history: int = 0
    """The action head also reads the last ``history`` steps (``policies.history``)."""
    previous_action_dropout: float = 0.0
    """In training, the share of samples whose history is zeroed."""
    train: TrainConfig = TrainConfig(
        learning_rate=2e-3, batch_size=32, steps=8000, warmup=200, eval_every=500,
        checkpoint_every=250, shift=0,
    )  # fmt: skip

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):
            object.__setattr__(self, "train", TrainConfig.from_dict(self.train))
        problems: list[str] = []
        self.train.validate(problems)
        check_positive(
            self,
            ("width", "d_model", "heads", "text_layers", "fusion_layers", "link_layers",
             "max_words", "language_batch", "state_batch"),
            problems,
        )  # fmt: skip
        if self.d_model % max(self.heads, 1):
            problems.append(f"d_model ({self.d_model}) must divide into heads ({self.heads})")
        if self.buckets < 16:
            problems.append(f"buckets must be >= 16, got {self.buckets}")
        if not 0.0 <= self.typo_rate < 0.5:
            problems.append(f"typo_rate must be in [0, 0.5), got {self.typo_rate}")
        if self.state_steps < 0 or self.history < 0:
            problems.append(
                f"state_steps and history must be >= 0, got {self.state_steps}, {self.history}"
            )
        if not 0.0 <= self.previous_action_dropout < 1.0:
            problems.append(
                f"previous_action_dropout must be in [0, 1), got {self.previous_action_dropout}"
            )
        elif self.previous_action_dropout and not self.history:
            problems.append("previous_action_dropout needs history")
        if not self.state_hidden or any(h < 1 for h in self.state_hidden):
            problems.append(f"state_hidden must be positive widths, got {self.state_hidden}")
        if self.train.shift:
            problems.append("shift must be 0: perception is calibrated to the cameras' pixels")
        from envs.instructions import GENERATED_SPLITS

        training = [s for s in GENERATED_SPLITS if not s.startswith("heldout-")]
        if self.language not in training:
            problems.append(
                f"language must be one of {training} (the held-out splits are for evaluation), "
                f"got {self.language!r}"
            )
        raise_problems(self, problems)

    def build(self, image_keys: tuple[str, ...], image_size: int, action_dim: int = 5):
        return POLICY_BUILDERS.build(self, image_keys, image_size, action_dim)


@POLICIES.register("hierarchical")
@dataclass(frozen=True)
class HierarchicalVLAConfig(GroundedVLAConfig):
    """The grounded VLA as System 1, reading one subtask in words, under a System 2 that reads
    the instruction and the scene and says the next subtask word by word."""

    decide_every: int = 5
    """Steps between System 2's deliberations (it also speaks when the subtask is done)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        problems: list[str] = []
        check_positive(self, ("decide_every",), problems)
        raise_problems(self, problems)


PRESETS: dict[str, Any] = {
    "debug": GroundedVLAConfig(
        width=4,
        d_model=16,
        heads=2,
        text_layers=1,
        fusion_layers=1,
        link_layers=1,
        buckets=256,
        language_batch=8,
        state_hidden=(16,),
        state_batch=16,
        state_steps=4,
        train=TrainConfig(
            learning_rate=2e-3,
            batch_size=4,
            steps=6,
            warmup=0,
            eval_every=3,
            checkpoint_every=3,
            shift=0,
        ),
    ),  # fmt: skip
    "default": GroundedVLAConfig(),
    "history3-dropout": GroundedVLAConfig(history=3, previous_action_dropout=0.5),
}
"""Named configs: ``debug`` for tests, ``default`` for the demo and the benchmarks, and the lag
recipe that met the robustness target on the keypoint agent (three past steps, dropout)."""
HIERARCHICAL_PRESETS: dict[str, Any] = {
    name: HierarchicalVLAConfig(**{f: getattr(c, f) for f in c.__dataclass_fields__})
    for name, c in PRESETS.items()
}
