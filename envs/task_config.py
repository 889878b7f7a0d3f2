"""What every task is configured by (:class:`TaskConfig`) and what it draws at reset
(:class:`Episode`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from envs.events import check_events
from envs.factors import check_factors, check_randomize
from envs.language import LANGUAGE_SPLITS, Subtask
from envs.observation import CAMERAS

OBS_MODES: tuple[str, ...] = ("pixels", "state")
REWARD_TYPES: tuple[str, ...] = ("dense", "sparse")


@dataclass(frozen=True)
class TaskConfig:
    """Settings common to every task. Subclasses add task fields and register themselves in ``TASKS``."""

    max_steps: int = 100
    """Control steps before the episode is truncated."""
    frame_skip: int = 10
    """Physics steps (5 ms each) per control step: 10 gives a 20 Hz controller."""
    obs_mode: str = "pixels"
    """``pixels`` (camera images + proprioception + object state) or ``state`` (no images)."""
    cameras: tuple[str, ...] = ("front", "wrist")
    """Cameras rendered into the observation (keys ``image_<camera>``)."""
    image_size: int = 64
    """Height and width of observation images (px)."""
    render_size: int = 256
    """Height and width of ``render()`` frames, for videos (px)."""
    reward_type: str = "dense"
    """``dense`` (shaped progress in [0, 1]) or ``sparse`` (1 on success); both are always in ``info``."""
    terminate_on_success: bool = True
    """End the episode (terminated) at the first step that is a success."""
    language: str = "all"
    """Which instructions are drawn: ``all``, ``train`` (no held-out colour/destination
    combination), ``unseen-paraphrase`` (held-out templates) or ``unseen-composition``
    (held-out combinations); see ``envs.language.LANGUAGE_SPLITS``."""
    factors: tuple[tuple[str, float], ...] = ()
    """Factors of variation applied to every episode, as ``(name, magnitude)`` pairs (a dict is
    accepted); see ``envs.factors.FACTORS``. ``reset(options={"factors": ...})`` overrides them."""
    randomize: tuple[str, ...] = ()
    """Domain randomisation: factor families (``visual``, ``physical``, ``sensing``,
    ``actuation``, ``language``) whose every factor gets a fresh magnitude each episode, drawn
    from ``envs.factors.TRAIN_BANDS`` (never an evaluation magnitude) up to ``randomize_magnitude``."""
    randomize_magnitude: float = 1.0
    """The largest magnitude domain randomisation draws, in (0, 1]."""
    randomize_joint: float = 0.0
    """The share of domain-randomised episodes in which every factor gets one shared magnitude
    (the combined corner: all factors strong at once), in [0, 1]; the others draw each factor's
    magnitude on its own, which almost never puts them all high together. 0 keeps the draws of
    earlier versions."""
    events: tuple[str, ...] = ()
    """World events of every episode (``envs.events.EVENTS``)."""

    def __post_init__(self) -> None:
        problems = []
        try:  # normal forms: sorted (name, magnitude) pairs, tuples of names
            factors = self.factors
            if not isinstance(factors, dict):
                factors = dict(tuple(pair) for pair in factors)
            object.__setattr__(self, "factors", tuple(sorted(check_factors(factors).items())))
        except (TypeError, ValueError) as exc:
            problems.append(f"factors: {exc}")
        randomize = self.randomize
        if isinstance(randomize, str):
            randomize = tuple(f.strip() for f in randomize.split(",") if f.strip())
        object.__setattr__(self, "randomize", tuple(randomize))
        try:
            check_randomize(self.randomize, self.randomize_magnitude, self.randomize_joint)
        except (TypeError, ValueError) as exc:
            problems.append(f"randomize: {exc}")
        try:
            object.__setattr__(self, "events", check_events(self.events))
        except (TypeError, ValueError) as exc:
            problems.append(f"events: {exc}")
        if self.max_steps < 1:
            problems.append(f"max_steps must be >= 1, got {self.max_steps}")
        if not 1 <= self.frame_skip <= 100:
            problems.append(f"frame_skip must be in [1, 100], got {self.frame_skip}")
        if self.obs_mode not in OBS_MODES:
            problems.append(f"obs_mode must be one of {OBS_MODES}, got {self.obs_mode!r}")
        if self.language not in LANGUAGE_SPLITS:
            problems.append(f"language must be one of {LANGUAGE_SPLITS}, got {self.language!r}")
        if self.reward_type not in REWARD_TYPES:
            problems.append(f"reward_type must be one of {REWARD_TYPES}, got {self.reward_type!r}")
        if not isinstance(self.cameras, tuple) or not self.cameras:
            problems.append(
                f"cameras must be a non-empty tuple drawn from {CAMERAS}, got {self.cameras!r}"
            )
        else:
            bad = [c for c in self.cameras if c not in CAMERAS]
            if bad:
                problems.append(f"unknown camera(s) {bad}; known cameras: {CAMERAS}")
        for name in ("image_size", "render_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 16 <= value <= 640:
                problems.append(f"{name} must be an int in [16, 640] (px), got {value!r}")
        if problems:
            raise ValueError(f"invalid {type(self).__name__}: " + "; ".join(problems))

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass
class Episode:
    """What a task draws at reset: who is which colour, where things are, the plan and the words."""

    colors: dict[str, str]
    """Body name (``cube0``) -> colour name."""
    placements: dict[str, tuple[float, float, float]]
    """Body name -> (x, y, yaw) on the table (z for targets is the third entry of ``target_heights``)."""
    plan: list[Subtask]
    instruction: str
    link_ends: list[int] = field(default_factory=list)
    """Index one past the last subtask of each instruction link; default: one link, the whole plan."""
    push_goals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Subtask label -> goal xy for pushes in a direction."""
    target_heights: dict[str, float] = field(default_factory=dict)
