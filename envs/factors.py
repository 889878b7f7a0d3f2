"""Factors of variation: the catalogue, graded magnitudes and domain-randomisation draws.

A factor perturbs one thing an agent would meet off the training distribution (the light, the
camera, the cube's friction, a delayed observation, a held-out phrasing...). Its strength is a
magnitude in [0, 1]: 0 is nominal (bit-identical to an env without the factor), 1 is the
strongest perturbation the factor defines (``Factor.at_one``). Evaluations use three graded
magnitudes (:data:`MAGNITUDES`); domain randomisation for training draws magnitudes from
:data:`TRAIN_BANDS`, which never contain an evaluation magnitude, so a robustness table always
measures magnitudes no training episode saw.

Set factors with ``TaskConfig.factors`` (every episode) or ``reset(options={"factors": {...}})``
(that episode only); ``info["factors"]`` and every dataset episode record what was applied.
Resetting with the same seed and factors restores the same perturbation exactly: the random
parts (which way the camera moves, which tint the table takes) come from a generator derived
from the episode's seed, never from the one that draws the episode, so a perturbed episode has
the same layout and instruction as its nominal twin. How each factor is applied:
``envs/perturbation.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

FAMILIES: tuple[str, ...] = ("visual", "physical", "sensing", "actuation", "language")

MAGNITUDES: dict[str, float] = {"low": 0.25, "middle": 0.5, "high": 1.0}
"""The graded evaluation magnitudes."""
TRAIN_BANDS: tuple[tuple[float, float], ...] = ((0.0, 0.2), (0.3, 0.45), (0.55, 0.95))
"""Where domain randomisation draws magnitudes: disjoint from every evaluation magnitude."""


@dataclass(frozen=True)
class Factor:
    """One factor of variation: its family, what it changes and what magnitude 1 means."""

    name: str
    family: str
    changes: str
    at_one: str
    tasks: tuple[str, ...] = ()
    """Tasks it applies to; empty: every task."""
    randomizable: bool = True
    """Whether domain randomisation may train on it (held-out paraphrases may not: training on
    them would empty the test)."""

    def applies_to(self, task: str) -> bool:
        return not self.tasks or task in self.tasks


COUNTERFACTUAL_TASKS: tuple[str, ...] = ("reach", "pick-place", "stack")
"""Tasks whose scene holds another object of the kind the instruction names, so a swapped
instruction asks for something else in the same scene."""

_CATALOGUE: tuple[Factor, ...] = (
    Factor("object_shade", "visual", "cube and pad colours (brightness per channel)", "±50%"),
    Factor("table_color", "visual", "the table's tint", "a random tint in full"),
    Factor("table_texture", "visual", "the table's checker scale", "3x finer or coarser"),
    Factor("light_intensity", "visual", "every light's brightness", "x2.5 or /2.5"),
    Factor("light_direction", "visual", "the key light's position around the table", "±90°"),
    Factor(
        "camera_pose", "visual", "every camera's position (the front one keeps its aim)", "8 cm"
    ),
    Factor("camera_fov", "visual", "every camera's field of view", "±25%"),
    Factor(
        "distractors", "visual", "untouchable objects of other shapes on the table", "3 objects"
    ),
    Factor("object_mass", "physical", "cube mass and inertia", "x4 or /4"),
    Factor("object_friction", "physical", "cube sliding friction", "x3 or /3"),
    Factor("object_size", "physical", "cube edge (every cube alike)", "±20%"),
    Factor("table_friction", "physical", "table sliding friction", "x3 or /3"),
    Factor("joint_damping", "physical", "arm joint damping", "x4 or /4"),
    Factor("actuator_gain", "physical", "arm servo stiffness (kp and its bias)", "x2.5 or /2.5"),
    Factor("image_noise", "sensing", "Gaussian pixel noise on camera images", "σ = 25 levels"),
    Factor("proprio_noise", "sensing", "Gaussian noise on proprioception", "σ = 1 cm, 0.1 /s"),
    Factor("object_state_noise", "sensing", "Gaussian noise on object positions", "σ = 1 cm"),
    Factor("observation_delay", "sensing", "the observation lags the world", "2 steps (100 ms)"),
    Factor("dropped_frames", "sensing", "images and object state repeat the last frame", "p = 0.5"),
    Factor("action_noise", "actuation", "Gaussian noise on every action dimension", "σ = 0.4"),
    Factor("action_delay", "actuation", "actions execute late", "1 step (50 ms)"),
    Factor(
        "paraphrase",
        "language",
        "instructions from held-out templates",
        "every episode",
        randomizable=False,
    ),
    Factor(
        "counterfactual",
        "language",
        "the instruction names other objects of the same scene (success follows the new words)",
        "every episode",
        COUNTERFACTUAL_TASKS,
    ),
)
FACTORS: dict[str, Factor] = {f.name: f for f in _CATALOGUE}


def factors_of(families: Iterable[str]) -> list[str]:
    """Every factor name in ``families`` (checked)."""
    wanted = list(families)
    bad = [f for f in wanted if f not in FAMILIES]
    if bad:
        raise ValueError(f"unknown factor famil(ies) {bad}; known: {', '.join(FAMILIES)}")
    return [f.name for f in _CATALOGUE if f.family in wanted]


def check_factors(
    factors: Mapping[str, float] | Iterable, task: str | None = None
) -> dict[str, float]:
    """``{name: magnitude}`` validated: known names, magnitudes finite in [0, 1], and (given a
    task) factors that apply to it. Zero magnitudes are dropped (they are nominal)."""
    try:
        items = dict(factors).items()
    except (TypeError, ValueError):
        raise ValueError(
            f"factors must be a mapping of factor name to magnitude, got {factors!r}"
        ) from None
    out: dict[str, float] = {}
    for name, value in items:
        if name not in FACTORS:
            raise ValueError(f"unknown factor {name!r}; known factors: {', '.join(FACTORS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise ValueError(
                f"factor {name!r}: magnitude must be a number in [0, 1], got {value!r}"
            )
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(
                f"factor {name!r}: magnitude must be in [0, 1] (0 nominal, 1 = {FACTORS[name].at_one}), "
                f"got {value!r}"
            )
        if task is not None and not FACTORS[name].applies_to(task):
            raise ValueError(
                f"factor {name!r} does not apply to {task!r}; it applies to "
                f"{', '.join(FACTORS[name].tasks)}"
            )
        if float(value) > 0.0:
            out[name] = float(value)
    return out


def check_randomize(families: Iterable[str], magnitude: float, joint: float = 0.0) -> None:
    factors_of(families)
    if not 0.0 < float(magnitude) <= 1.0:
        raise ValueError(f"randomize_magnitude must be in (0, 1], got {magnitude!r}")
    if not 0.0 <= float(joint) <= 1.0:
        raise ValueError(
            f"randomize_joint (the share of episodes with one magnitude for every factor) must "
            f"be in [0, 1], got {joint!r}"
        )


def draw_training_magnitude(rng: np.random.Generator, limit: float) -> float:
    """A domain-randomisation magnitude: uniform over :data:`TRAIN_BANDS` cut at ``limit``."""
    bands = [(lo, min(hi, limit)) for lo, hi in TRAIN_BANDS if lo < limit]
    widths = np.array([hi - lo for lo, hi in bands])
    u = rng.uniform(0.0, widths.sum())
    for (lo, _), width in zip(bands, widths):
        if u <= width:
            return float(lo + u)
        u -= width
    return float(bands[-1][1])


def randomized_factors(
    rng: np.random.Generator, families: Iterable[str], limit: float, task: str, joint: float = 0.0
) -> dict[str, float]:
    """One episode's domain randomisation: every randomizable factor of ``families`` that
    applies to ``task`` at a magnitude drawn from the training bands; with probability ``joint``
    one magnitude shared by all of them (``joint=0`` draws nothing extra: the same episodes as
    before the option existed)."""
    names = [
        name
        for name in factors_of(families)
        if FACTORS[name].applies_to(task) and FACTORS[name].randomizable
    ]
    if joint > 0.0 and rng.uniform() < joint:
        shared = draw_training_magnitude(rng, limit)
        return {name: shared for name in names}
    return {name: draw_training_magnitude(rng, limit) for name in names}
