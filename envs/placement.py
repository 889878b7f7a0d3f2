"""Seeded placement of objects on the table by rejection sampling."""

from __future__ import annotations

import numpy as np

OBJECT_LOW = np.array([-0.15, -0.18])
OBJECT_HIGH = np.array([0.12, 0.18])
"""The region of the table where objects are placed (xy, m): comfortably inside the arm's reach."""
MIN_GAP = {
    ("cube", "cube"): 0.075,
    ("cube", "pad"): 0.085,
    ("pad", "pad"): 0.11,
    ("target", "target"): 0.08,
}


def min_gap(kind_a: str, kind_b: str) -> float:
    return MIN_GAP.get((kind_a, kind_b)) or MIN_GAP.get((kind_b, kind_a)) or 0.06


def sample_layout(
    rng: np.random.Generator,
    kinds: list[str],
    low: np.ndarray = OBJECT_LOW,
    high: np.ndarray = OBJECT_HIGH,
    attempts: int = 2000,
) -> list[np.ndarray]:
    """xy positions for objects of the given kinds, pairwise at least ``min_gap`` apart."""
    for _ in range(attempts):
        points: list[np.ndarray] = []
        for kind in kinds:
            for _ in range(50):
                p = rng.uniform(low, high)
                if all(np.linalg.norm(p - q) >= min_gap(kind, k) for q, k in zip(points, kinds)):
                    points.append(p)
                    break
            else:
                break
        if len(points) == len(kinds):
            return points
    raise RuntimeError(
        f"could not place objects {kinds} in {attempts} attempts; the region is too small"
    )


def free_spot(
    rng: np.random.Generator,
    keep_away: list[tuple[np.ndarray, float]],
    low: np.ndarray = OBJECT_LOW,
    high: np.ndarray = OBJECT_HIGH,
    attempts: int = 500,
) -> np.ndarray:
    """A uniform xy in ``[low, high]`` farther than ``gap`` from each ``(point, gap)`` of
    ``keep_away`` (the last candidate drawn if none is, after ``attempts``)."""
    for _ in range(attempts):
        xy = rng.uniform(low, high)
        if all(np.linalg.norm(xy - q) > gap for q, gap in keep_away):
            break
    return xy


def random_colors(rng: np.random.Generator, palette: tuple[str, ...], n: int) -> list[str]:
    """``n`` distinct colours from ``palette``."""
    if n > len(palette):
        raise ValueError(f"need {n} distinct colours, the palette has {len(palette)}")
    return [palette[i] for i in rng.permutation(len(palette))[:n]]


def random_yaw(rng: np.random.Generator) -> float:
    return float(rng.uniform(-np.pi / 4, np.pi / 4))
