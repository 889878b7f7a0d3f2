"""How good is the model itself: open-loop prediction error against naive baselines.

For held-out episodes (dicts with ``obs`` of ``(T + 1, ...)`` arrays, ``action (T, A)`` and
optionally ``success (T,)``) the model encodes the observation at ``t0`` and imagines ``h`` steps
with the real actions. Errors at horizons 1, 5, 10, 20:

- **state**: mean squared error of the vector observations the model sees (for a pixel model,
  proprioception; for a state model, everything) read off the imagined latent, in units of each
  dimension's standard deviation;
- **objects**: the same for the auxiliary keys (where the cube / pad of each colour is), which a
  pixel model never sees as input;
- **latent**: mean squared error against the target encoder's latent of the real observation,
  divided by the latents' variance (the free part of the latent: object slots, when the model
  has them, are judged in object space).

Each against "nothing moves" (copy the observation / latent at ``t0``) and a linear model
``x' = x + W [x, a, 1]`` fitted by least squares on the training episodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from world_models.latent import LatentWorldModel

HORIZONS = (1, 5, 10, 20)
START_STRIDE = 3
"""Start an open-loop rollout every this many steps of each episode."""


def _vector_spaces(model: LatentWorldModel) -> list[tuple[str, tuple[str, ...], np.ndarray, Any]]:
    """(name, keys, index into the normaliser, predictor) of each vector space the model reads off z."""
    spaces = []
    if model.input_vector_keys:
        spaces.append(("state", model.input_vector_keys, model.input_index.numpy(), model.state))
    if model.aux_keys:
        spaces.append(("objects", model.aux_keys, model.aux_index.numpy(), model.aux))
    return spaces


@torch.no_grad()
def _latents(model: LatentWorldModel, obs: dict[str, np.ndarray], chunk: int = 256) -> np.ndarray:
    """Target-encoder latents of every step of an episode: ``(T + 1, latent)``."""
    n = len(next(iter(obs.values())))
    out = [
        model.target_encoder.encode(
            {k: v[i : i + chunk] for k, v in obs.items()}, objects=False
        ).numpy()
        for i in range(0, n, chunk)
    ]
    return np.concatenate(out)


def fit_linear(xs: list[np.ndarray], actions: list[np.ndarray]) -> np.ndarray:
    """Least-squares ``W`` of ``x[t+1] - x[t] = [x[t], a[t], 1] @ W`` over episodes."""
    inputs = np.concatenate(
        [np.concatenate([x[:-1], a, np.ones((len(a), 1))], 1) for x, a in zip(xs, actions)]
    )
    deltas = np.concatenate([x[1:] - x[:-1] for x in xs])
    weights, *_ = np.linalg.lstsq(inputs, deltas, rcond=1e-6)
    return weights


def _linear_rollout(weights: np.ndarray, x0: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """``x0 (N, D)``, ``actions (N, H, A)`` -> ``(N, H, D)``."""
    out, x = [], x0
    for t in range(actions.shape[1]):
        x = x + np.concatenate([x, actions[:, t], np.ones((len(x), 1))], 1) @ weights
        out.append(x)
    return np.stack(out, 1)


@torch.no_grad()
def evaluate_world_model(
    model: LatentWorldModel,
    val_episodes: list[dict[str, Any]],
    train_episodes: list[dict[str, Any]],
    horizons: tuple[int, ...] = HORIZONS,
) -> dict[str, Any]:
    """Open-loop errors per horizon for the model and both baselines, and success-head accuracy."""
    model.eval()
    train_lat = [_latents(model, ep["obs"]) for ep in train_episodes]
    val_lat = [_latents(model, ep["obs"]) for ep in val_episodes]
    lat_var = float(np.concatenate(train_lat).var(0).mean()) + 1e-8
    lin_lat = fit_linear(train_lat, [ep["action"] for ep in train_episodes])
    mean_all, std_all = model.vector_mean.numpy(), model.vector_std.numpy()
    spaces = []
    for name, keys, idx, predict in _vector_spaces(model):
        mean, std = mean_all[idx], std_all[idx]

        def norm(x, mean=mean, std=std):
            return (x - mean) / std

        def vectors(obs, keys=keys):
            return np.concatenate([obs[k].astype(np.float32) for k in keys], axis=-1)

        lin = fit_linear(
            [norm(vectors(ep["obs"])) for ep in train_episodes],
            [ep["action"] for ep in train_episodes],
        )
        spaces.append((name, norm, vectors, predict, lin))

    sums: dict[str, dict[int, list[float]]] = {}

    def add(name: str, h: int, values: np.ndarray) -> None:
        sums.setdefault(name, {}).setdefault(h, []).extend(values.tolist())

    def add_three(space: str, h: int, model_pred, copy, linear, truth) -> None:
        add(f"{space}/model", h, ((model_pred - truth) ** 2).mean(-1))
        add(f"{space}/nothing_moves", h, ((copy - truth) ** 2).mean(-1))
        add(f"{space}/linear", h, ((linear - truth) ** 2).mean(-1))

    correct, positives, true_pos, count = 0, 0, 0, 0
    for ep, lat in zip(val_episodes, val_lat):
        T = len(ep["action"])
        starts = np.arange(0, T, START_STRIDE)
        H = min(max(horizons), T)
        obs0 = {k: v[starts] for k, v in ep["obs"].items()}
        acts = np.stack(
            [np.pad(ep["action"][s : s + H], ((0, max(0, s + H - T)), (0, 0))) for s in starts]
        )
        z_pred = model.imagine(model.encode(obs0), torch.as_tensor(acts, dtype=torch.float32))
        lin_pred_lat = _linear_rollout(lin_lat, lat[starts], acts)
        free = lat.shape[-1]
        rolled = []
        for name, norm, vectors, predict, lin in spaces:
            vec = norm(vectors(ep["obs"]))
            rolled.append(
                (name, vec, norm(predict(z_pred).numpy()), _linear_rollout(lin, vec[starts], acts))
            )
        z_pred = z_pred.numpy()
        for h in horizons:
            ok = starts + h <= T
            if not ok.any():
                continue
            s = starts[ok]
            scale = 1.0 / np.sqrt(lat_var)  # latent errors in units of the latents' spread
            add_three(
                "latent",
                h,
                z_pred[ok, h - 1, :free] * scale,
                lat[s] * scale,
                lin_pred_lat[ok, h - 1] * scale,
                lat[s + h] * scale,
            )
            for name, vec, pred, lin_pred in rolled:
                add_three(name, h, pred[ok, h - 1], vec[s], lin_pred[ok, h - 1], vec[s + h])
        if "success" in ep:
            probs = model.success(model.encode({k: v[1:] for k, v in ep["obs"].items()})).numpy()
            labels = ep["success"].astype(bool)
            correct += int(((probs > 0.5) == labels).sum())
            positives += int(labels.sum())
            true_pos += int(((probs > 0.5) & labels).sum())
            count += len(labels)

    result: dict[str, Any] = {"horizons": {}}
    for h in horizons:
        row = {name: float(np.mean(v[h])) for name, v in sums.items() if h in v}
        if row:
            row["windows"] = len(next(v[h] for v in sums.values() if h in v))
            for space in ("state", "objects", "latent"):
                if f"{space}/model" in row:
                    row[f"{space}/nothing_moves_over_model"] = row[f"{space}/nothing_moves"] / max(
                        row[f"{space}/model"], 1e-12
                    )
            result["horizons"][str(h)] = row
    if count:
        result["success_accuracy"] = correct / count
        result["success_recall"] = true_pos / positives if positives else None
        result["success_positive_fraction"] = positives / count
    return result


def plot_errors(result: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Error vs horizon, model against baselines, one panel per space."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizons = sorted(int(h) for h in result["horizons"])
    spaces = [
        s
        for s in ("latent", "state", "objects")
        if any(f"{s}/model" in result["horizons"][str(h)] for h in horizons)
    ]
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.5 * len(spaces), 3.4), squeeze=False)
    for ax, space in zip(axes[0], spaces):
        for name, style in (("model", "o-"), ("nothing_moves", "s--"), ("linear", "^:")):
            ys = [result["horizons"][str(h)].get(f"{space}/{name}") for h in horizons]
            ax.plot(horizons, ys, style, label=name.replace("_", " "))
        ax.set_yscale("log")
        ax.set_xlabel("horizon (steps)")
        ax.set_ylabel("normalised MSE")
        ax.set_title(f"{space} space")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
