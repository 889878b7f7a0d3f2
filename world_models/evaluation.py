"""How good is the model itself: open-loop prediction error against naive baselines.

For held-out episodes (dicts with ``obs`` of ``(T + 1, ...)`` arrays, ``action (T, A)`` and
optionally ``success (T,)``) the model encodes the observation at ``t0`` and imagines ``h`` steps
with the real actions. Errors at horizons 1, 5, 10, 20:

- **state**: mean squared error of the vector observations the model sees (for a pixel model,
  proprioception; for a state model, everything) read off the imagined latent, in units of each
  dimension's standard deviation;
- **latent**: mean squared error against the target encoder's latent of the real observation,
  divided by the latents' variance.

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


def _vectors(model: LatentWorldModel, obs: dict[str, np.ndarray]) -> np.ndarray:
    """The vector keys the model sees (and predicts), concatenated: ``(T + 1, input_vector_dim)``."""
    return np.concatenate([obs[k].astype(np.float32) for k in model.input_vector_keys], axis=-1)


@torch.no_grad()
def _latents(model: LatentWorldModel, obs: dict[str, np.ndarray], chunk: int = 256) -> np.ndarray:
    """Target-encoder latents of every step of an episode: ``(T + 1, latent)``."""
    n = len(next(iter(obs.values())))
    out = [
        model.target_encoder.encode({k: v[i : i + chunk] for k, v in obs.items()}).numpy()
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
    has_state = bool(model.input_vector_keys)
    train_lat = [_latents(model, ep["obs"]) for ep in train_episodes]
    val_lat = [_latents(model, ep["obs"]) for ep in val_episodes]
    lat_var = float(np.concatenate(train_lat).var(0).mean()) + 1e-8
    lin_lat = fit_linear(train_lat, [ep["action"] for ep in train_episodes])
    if has_state:
        idx = model.input_index.numpy()
        mean, std = model.vector_mean.numpy()[idx], model.vector_std.numpy()[idx]
        norm = lambda x: (x - mean) / std  # noqa: E731
        train_vec = [norm(_vectors(model, ep["obs"])) for ep in train_episodes]
        lin_vec = fit_linear(train_vec, [ep["action"] for ep in train_episodes])

    sums: dict[str, dict[int, list[float]]] = {}

    def add(name: str, h: int, values: np.ndarray) -> None:
        sums.setdefault(name, {}).setdefault(h, []).extend(values.tolist())

    correct, positives, true_pos, count = 0, 0, 0, 0
    for ep, lat in zip(val_episodes, val_lat):
        T = len(ep["action"])
        starts = np.arange(0, T, START_STRIDE)
        H = min(max(horizons), T)
        obs0 = {k: v[starts] for k, v in ep["obs"].items()}
        acts = np.stack(
            [np.pad(ep["action"][s : s + H], ((0, max(0, s + H - T)), (0, 0))) for s in starts]
        )
        z_pred = model.imagine(
            model.encode(obs0), torch.as_tensor(acts, dtype=torch.float32)
        ).numpy()
        lin_pred_lat = _linear_rollout(lin_lat, lat[starts], acts)
        if has_state:
            vec = norm(_vectors(model, ep["obs"]))
            state_pred = norm(model.state(torch.as_tensor(z_pred)).numpy())
            lin_pred_vec = _linear_rollout(lin_vec, vec[starts], acts)
        for h in horizons:
            ok = starts + h <= T
            if not ok.any():
                continue
            s = starts[ok]
            true_lat = lat[s + h]
            add("latent/model", h, ((z_pred[ok, h - 1] - true_lat) ** 2).mean(-1) / lat_var)
            add("latent/nothing_moves", h, ((lat[s] - true_lat) ** 2).mean(-1) / lat_var)
            add("latent/linear", h, ((lin_pred_lat[ok, h - 1] - true_lat) ** 2).mean(-1) / lat_var)
            if has_state:
                true_vec = vec[s + h]
                add("state/model", h, ((state_pred[ok, h - 1] - true_vec) ** 2).mean(-1))
                add("state/nothing_moves", h, ((vec[s] - true_vec) ** 2).mean(-1))
                add("state/linear", h, ((lin_pred_vec[ok, h - 1] - true_vec) ** 2).mean(-1))
        if "success" in ep:
            probs = model.success(torch.as_tensor(lat[1:])).numpy()
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
            for space in ("state", "latent"):
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
        for s in ("state", "latent")
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
