"""How a training run splits and records its data: the train/validation episode split, the
summary of the data a run saw (kept in its checkpoints and ``train.json``), and the one
observation layout every dataset of a run must share."""

from __future__ import annotations

from typing import Any

import numpy as np

from embodied.data.dataset import DatasetError, EpisodeDataset

AGENT_FILE = "agent.pt"
"""A run directory's saved agent."""
VALIDATION_EVERY = 10
"""Every this-many-th episode is held out for validation."""


def split_episodes(
    datasets: list[EpisodeDataset],
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(train, validation) (dataset, episode) pairs: every ``VALIDATION_EVERY``-th episode is
    held out (the first one only, for tiny datasets)."""
    pairs = [(d, e) for d, ds in enumerate(datasets) for e in range(len(ds))]
    val_pairs = pairs[::VALIDATION_EVERY] if len(pairs) >= 2 * VALIDATION_EVERY else pairs[:1]
    held = set(val_pairs)
    return [p for p in pairs if p not in held] or pairs, val_pairs


def data_summary(
    datasets: list[EpisodeDataset], train_pairs: list, val_pairs: list, lengths: np.ndarray
) -> dict[str, Any]:
    """What a run was trained on, recorded in its checkpoints and ``train.json``."""
    return {
        "root": [str(ds.root) for ds in datasets],
        "tasks": sorted({ds.meta["task"] for ds in datasets}),
        "episodes_train": len(train_pairs),
        "episodes_val": len(val_pairs),
        "steps_train": int(lengths.sum()),
    }


def one_layout(layouts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The observation layout every dataset shares (dataset root -> layout); a clear error when
    they differ."""
    first = next(iter(layouts.values()))
    if any(layout != first for layout in layouts.values()):
        raise DatasetError(
            f"datasets have different observation layouts: {layouts}; collect them with the same "
            "--cameras and --image-size"
        )
    return first
