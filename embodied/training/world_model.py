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
from policies.perceived_scene import (
    OBJECTS_BY_COLOUR,
    PERCEIVED_OBJECTS,
    PresenceVote,
    remember,
    voted_objects,
)
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


def load_object_perception(agent: str | Path):
    """The object perception of a trained ``bc-keypoints`` / ``hierarchical-keypoints`` agent (its
    run directory or ``agent.pt``): cameras -> a table of where each colour x kind is."""
    from policies.bundles import load_agent
    from world_models import CheckpointError

    path = Path(agent)
    file = path / "agent.pt" if path.is_dir() else path
    if not file.is_file():
        raise CheckpointError(
            f"perception: {file} does not exist; give a bc-keypoints or hierarchical-keypoints run"
        )
    bundle = load_agent(file)
    perception = getattr(getattr(bundle, "policy", None), "perception", None)
    if perception is None:
        raise CheckpointError(
            f"{file}: this agent has no object perception; give a bc-keypoints or "
            "hierarchical-keypoints run"
        )
    return perception.eval()


def perceived_objects(perception, obs: dict[str, np.ndarray]) -> np.ndarray:
    """``(T, K * 4)``: an episode's frames as ``objects_by_colour`` as the perception reports them,
    causally, frame by frame. Where: where it was last seen (an agent's memory). Whether it is
    there: :class:`~policies.bc_keypoints.PresenceVote` (the sum of its clipped presence logits
    over the frames so far is positive, or has stayed so for 12 frames in a row).

    Which objects a scene holds does not change within an episode, while a single frame's
    presence does err: a wrist camera close to a cube can see an absent identity of a similar
    colour, and with the agents' memory (present once seen) such a phantom stays to the end. On
    held-out pick-place frames (the shipped agent's perception, 1,000 demos) presence was right
    for 84% of identities with that memory and for 99.3% with the vote; the normalised error of
    the table went 0.43 -> 0.017 (docs/DECISIONS.md)."""
    images = {
        c: torch.from_numpy(np.ascontiguousarray(obs[f"{IMAGE_PREFIX}{c}"]))
        for c in perception.cameras
    }
    with torch.no_grad():
        seen = perception(images, np.asarray(obs["proprio"], np.float32))
    memory, where, present, vote = None, [], [], PresenceVote()
    for table in seen:
        memory = remember(table, memory)
        where.append(memory)
        present.append(vote.update(table[:, 0]))
    return voted_objects(np.stack(present), np.stack(where))


def add_perceived_objects(ds: EpisodeDataset, agent: str | Path) -> None:
    """Give a dataset the ``perceived_objects`` key: :func:`perceived_objects` of every episode,
    by the perception of ``agent`` (computed once per episode as it is loaded)."""
    perception = load_object_perception(agent)
    needed = [f"{IMAGE_PREFIX}{c}" for c in perception.cameras] + ["proprio"]
    missing = [k for k in needed if k not in ds.obs_keys]
    if missing:
        raise DatasetError(
            f"{ds.root}: the perception of {agent} reads {needed}; the dataset lacks {missing}"
        )
    ds.add_derived_obs(PERCEIVED_OBJECTS, lambda obs: perceived_objects(perception, obs))


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
    perception: str | Path | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train (or resume) into ``out``; write ``out/eval.json`` and ``out/eval.png``; return the eval.

    ``perception``: a trained ``bc-keypoints`` / ``hierarchical-keypoints`` agent whose object
    perception gives the slots their start (``object_input_key = perceived_objects``)."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    if perception is not None:  # slots of objects_by_colour's [present, x, y, z]
        overrides.setdefault("object_input_key", PERCEIVED_OBJECTS)
        if not preset(preset_name).object_slot_size:
            overrides.setdefault("object_slot_size", 4)
    config = preset(preset_name, **overrides)
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    if config.object_input_key == PERCEIVED_OBJECTS and perception is None:
        raise ValueError(
            f"object_input_key {PERCEIVED_OBJECTS!r} needs the agent whose perception makes it: "
            "perception=RUN (`train world-model --perception RUN`)"
        )
    ds = EpisodeDataset(data)
    add_objects_by_colour(ds)
    if perception is not None:
        add_perceived_objects(ds, perception)
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
        "perception": None if perception is None else str(Path(perception).resolve()),
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


__all__ = [
    "add_perceived_objects",
    "load_object_perception",
    "perceived_objects",
    "spec_from_dataset",
    "split_episodes",
    "train_world_model",
]
