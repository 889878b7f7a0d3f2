"""A diagnostic of System 1's eyes: can its backbone (FiLM'd conv stem + fusion transformer), given
the images, proprioception and the instruction, say where the instructed cube is?

Trained by regression on the first steps of pick-place demos (the instructed cube is first in
``object_state``; it has not moved yet), scored on held-out episodes in metres against always
guessing the mean position. Imitation needs about 1 cm to grasp a 4 cm cube.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embodied.data.dataset import EpisodeDataset
from envs.language import SUBTASK_VOCAB
from policies.config import policy_preset
from policies.fusion import random_shift
from policies.tokenizer import WordTokenizer
from sandbox_common.paths import portable_path
from world_models import ObsSpec

FIRST_STEPS = 12
"""Steps per episode used: the cube is still at its start (the gripper has not reached it)."""


def run_vision_probe(
    data: str | Path, steps: int = 1500, seed: int = 0, preset: str = "default", batch: int = 32
) -> dict[str, Any]:
    ds = EpisodeDataset(data)
    tokenizer = WordTokenizer.fit([*(ds[i].instruction for i in range(len(ds))), *SUBTASK_VOCAB])
    image_keys = tuple(sorted(k for k in ds.obs_keys if k.startswith("image_")))
    images: dict[str, list[np.ndarray]] = {k: [] for k in image_keys}
    proprio, target, tokens, episode = [], [], [], []
    for i in range(len(ds)):
        ep = ds[i]
        rows = np.arange(min(len(ep), FIRST_STEPS))
        for k in image_keys:
            images[k].append(ep.obs[k][rows])
        proprio.append(ep.obs["proprio"][rows])
        target.append(np.repeat(ep.obs["object_state"][:1, :2], len(rows), 0))
        tokens.append(np.repeat(tokenizer.encode(ep.instruction, 40)[None], len(rows), 0))
        episode.append(np.full(len(rows), i))
    imgs = {k: np.concatenate(v) for k, v in images.items()}
    prop, y, tok, ep_of = map(np.concatenate, (proprio, target, tokens, episode))
    val = ep_of % 10 == 0
    train_rows, val_rows = np.where(~val)[0], np.where(val)[0]
    spec = ObsSpec(image_keys, imgs[image_keys[0]].shape[1], ("proprio",), (prop.shape[1],), 5)
    torch.manual_seed(seed)
    config = policy_preset(preset)
    backbone = config.build(spec, len(tokenizer)).backbone
    backbone.set_normalizer(prop[train_rows])
    head = torch.nn.Linear(config.fusion.d_model, 2)
    params = [*backbone.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.train.learning_rate, fused=True)
    mean, std = y[train_rows].mean(0), y[train_rows].std(0)
    rng = np.random.default_rng(seed)

    def predict(rows: np.ndarray, augment: bool) -> torch.Tensor:
        obs = {k: torch.from_numpy(v[rows]) for k, v in imgs.items()}
        if augment:
            obs = {k: random_shift(v, config.train.shift, None) for k, v in obs.items()}
        obs["proprio"] = torch.from_numpy(prop[rows])
        return head(backbone(obs, torch.from_numpy(tok[rows])))

    start = time.perf_counter()
    for _ in range(steps):
        rows = rng.choice(train_rows, batch)
        loss = ((predict(rows, True) - torch.from_numpy((y[rows] - mean) / std)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    backbone.eval()
    with torch.no_grad():
        pred = predict(val_rows, False).numpy() * std + mean
        train_pred = predict(train_rows[:512], False).numpy() * std + mean
    return {
        "data": portable_path(data),
        "episodes": len(ds),
        "steps": steps,
        "seconds": round(time.perf_counter() - start, 1),
        "held_out_error_m": np.abs(pred - y[val_rows]).mean(0).round(4).tolist(),
        "train_error_m": np.abs(train_pred - y[train_rows[:512]]).mean(0).round(4).tolist(),
        "guess_the_mean_error_m": np.abs(mean - y[val_rows]).mean(0).round(4).tolist(),
    }
