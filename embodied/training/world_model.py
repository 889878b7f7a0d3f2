"""Train a world model on a dataset directory, resumably, then evaluate it on held-out episodes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embodied.data.dataset import DatasetError, EpisodeDataset, SequenceLoader
from sandbox_common.atomic import write_json_atomic
from world_models import (
    ObsSpec,
    WorldModelTrainer,
    build_world_model,
    evaluate_world_model,
    plot_errors,
    preset,
)
from world_models.trainer import resolve_device

IMAGE_PREFIX = "image_"
OBJECT_STATE = "object_state"
OBJECTS_BY_COLOUR = "objects_by_colour"
VALIDATION_EVERY = 10
"""Every 10th episode (0, 10, 20, ...) is held out for validation."""
EVAL_TRAIN_EPISODES = 60
"""Training episodes used to fit the linear baseline in evaluation."""


def spec_from_dataset(ds: EpisodeDataset, use_images: bool) -> ObsSpec:
    """The observation layout of a dataset: image keys (``image_*``) and flat vector keys."""
    first = ds[0]
    image_keys = tuple(k for k in ds.obs_keys if k.startswith(IMAGE_PREFIX)) if use_images else ()
    vector_keys = tuple(k for k in ds.obs_keys if not k.startswith(IMAGE_PREFIX))
    bad = [k for k in vector_keys if first.obs[k].ndim != 2]
    if bad:
        raise DatasetError(
            f"{ds.root}: observation keys {bad} are neither images (image_*) nor flat vectors"
        )
    return ObsSpec(
        image_keys=image_keys,
        image_size=int(first.obs[image_keys[0]].shape[1]) if image_keys else 0,
        vector_keys=vector_keys,
        vector_dims=tuple(int(first.obs[k].shape[1]) for k in vector_keys),
        action_dim=int(first.steps["action"].shape[1]),
    )


def add_objects_by_colour(ds: EpisodeDataset) -> None:
    """Give a dataset of our tasks the ``objects_by_colour`` key (see ``ManipulationEnv.objects_by_colour``)."""
    import envs

    task = ds.meta.get("task")
    if task not in envs.TASKS or OBJECT_STATE not in ds.obs_keys:
        return
    env = envs.make(task, obs_mode="state")
    try:
        if env.object_state_dim != ds[0].obs[OBJECT_STATE].shape[-1]:
            return  # another env version's layout: leave it alone
        ds.add_derived_obs(OBJECTS_BY_COLOUR, lambda obs: env.objects_by_colour(obs[OBJECT_STATE]))
    finally:
        env.close()


def split_episodes(n: int) -> tuple[list[int], list[int]]:
    """Train and validation episode indices: every 10th episode is held out (at least one)."""
    if n < 2:
        raise DatasetError(
            f"need at least 2 episodes to hold one out for validation, the dataset has {n}"
        )
    val = list(range(0, n, VALIDATION_EVERY))
    train = [i for i in range(n) if i not in set(val)]
    return train, val


def episode_arrays(ds: EpisodeDataset, index: int, keys: list[str]) -> dict[str, Any]:
    ep = ds[index]
    return {
        "obs": {k: ep.obs[k] for k in keys},
        "action": ep.steps["action"],
        "success": ep.steps["success"],
        "reward": ep.steps["reward"],
    }


def _meta_digest(ds: EpisodeDataset) -> str:
    return hashlib.sha1(json.dumps(ds.meta, sort_keys=True).encode()).hexdigest()[:12]


def train_world_model(
    data: str | Path,
    out: str | Path,
    preset_name: str = "default",
    seed: int = 0,
    steps: int | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    threads: int = 1,
    device: str = "cpu",
    **overrides: Any,
) -> dict[str, Any]:
    """Train (or resume) into ``out``; write ``out/eval.json`` and ``out/eval.png``; return the eval."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    config = preset(preset_name, **overrides)
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    ds = EpisodeDataset(data)
    add_objects_by_colour(ds)
    spec = spec_from_dataset(ds, use_images=config.use_images)
    keys = list(spec.image_keys + spec.vector_keys)
    train_idx, val_idx = split_episodes(len(ds))
    loader, val_loader = (
        SequenceLoader(
            ds, config.horizon, config.batch_size, seed=seed, obs_keys=keys, episodes=episodes
        )
        for episodes in (train_idx, val_idx)
    )
    validation = [val_loader.sample(np.random.default_rng([seed, 10**6 + i])) for i in range(4)]

    model = build_world_model(config, spec, seed)
    vectors = (
        [np.concatenate([ds[i].obs[k] for k in spec.vector_keys], 1) for i in train_idx]
        if spec.vector_keys
        else []
    )
    model.set_normalizer(
        np.concatenate(vectors) if vectors else np.zeros((1, 0)),
        np.concatenate([ds[i].steps["action"] for i in train_idx]),
    )
    out = Path(out)
    data_info = {
        "root": str(Path(data).resolve()),
        "task": ds.meta.get("task"),
        "env_version": ds.meta.get("env_version"),
        "meta_sha1": _meta_digest(ds),
        "env_config": ds.meta.get("env_config"),
        "episodes_train": train_idx,
        "episodes_val": val_idx,
    }
    trainer = WorldModelTrainer(
        model,
        out,
        loader.sample,
        seed=seed,
        data_info=data_info,
        validation=validation,
        device=resolve_device(device),
    )
    resumed = trainer.resume()
    trainer.fit(progress=progress, stop_after=stop_after)
    model.cpu()  # evaluation and imagination run on the CPU
    if trainer.step < config.steps:  # stopped early on purpose (tests): no evaluation yet
        return {"step": trainer.step, "resumed": resumed}

    result = evaluate_world_model(
        model,
        [episode_arrays(ds, i, keys) for i in val_idx],
        [episode_arrays(ds, i, keys) for i in train_idx[:EVAL_TRAIN_EPISODES]],
    )
    space = "latent" if model.image_keys or not model.input_vector_keys else "state"
    summary = {
        "task": ds.meta.get("task"),
        "preset": preset_name,
        "seed": seed,
        "steps": trainer.step,
        "train_seconds_this_call": round(trainer.seconds, 1),
        "episodes_train": len(train_idx),
        "episodes_val": len(val_idx),
        "error_space": space,
        "per_horizon": {
            h: {
                "model": row.get(f"{space}/model"),
                "nothing_moves": row.get(f"{space}/nothing_moves"),
                "linear": row.get(f"{space}/linear"),
            }
            for h, row in result["horizons"].items()
        },
        **result,
    }
    write_json_atomic(out / "eval.json", summary)
    plot_errors(
        result, out / "eval.png", title=f"{ds.meta.get('task')} - {preset_name} world model"
    )
    return summary


__all__ = ["spec_from_dataset", "split_episodes", "train_world_model"]
