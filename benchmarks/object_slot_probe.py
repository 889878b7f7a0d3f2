"""Perception-only probe of the world model's object slots (issue 14): can images alone say where
each object is, trained on the frames of a few dozen episodes and judged on held-out ones?

It trains only the part of the pixel world model that finds objects (a keypoint map per slot per
camera, read out by one network shared across slots) on ``objects_by_colour`` at every frame, and
reports the held-out normalised MSE (the world model's ``objects`` error at horizon 0) and the
position error of present objects in cm. Variants: the keypoint maps on the world model's first
conv map (``--stem shared``, 15x15 at 64 px, what the model uses) or on two 3x3 stride-2 convs of
their own (``--stem own``, 16x16); slots read as ``[p, p * xyz]`` (``--structured``, absent
objects at zero); and a cross-entropy on each map against the object's projected pixel
(``--pixel-labels W``: supervision in image space, which needs the camera geometry, so the
env-agnostic world model does not use it).

    python -m embodied collect --task pick-place --episodes 60 --noise 0.3 --out runs/probe/pp60 \\
        --workers 2 --set max_steps=60 --set terminate_on_success=false
    python benchmarks/object_slot_probe.py --data runs/probe/pp60 --stem shared
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn

from embodied.data.dataset import EpisodeDataset
from embodied.training.world_model import OBJECTS_BY_COLOUR, add_objects_by_colour, split_episodes
from world_models.networks import mlp

CAMERAS = ("front", "wrist")
SLOT = 4  # [present, x, y, z]


class SlotMaps(nn.Module):
    """One camera's images -> per slot (x, y, peak) and the maps' logits."""

    def __init__(self, slots: int, stem: str) -> None:
        super().__init__()
        if stem == "shared":  # the world model's first conv
            self.body, channels = nn.Sequential(nn.Conv2d(3, 16, 8, 4), nn.ReLU()), 16
        elif stem == "full":  # full resolution: a 3x3 conv on the pixels themselves
            self.body, channels = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.ReLU()), 16
        elif stem == "half":
            self.body, channels = nn.Sequential(nn.Conv2d(3, 16, 4, 2, 1), nn.ReLU()), 16
        else:
            self.body = nn.Sequential(
                nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU()
            )
            channels = 32
        self.head = nn.Conv2d(channels, slots, 1)
        self.log_temperature = nn.Parameter(torch.full((slots, 1), math.log(10.0)))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heat = self.head(self.body(images.permute(0, 3, 1, 2).float() / 255 - 0.5))
        side = heat.shape[-1]
        heat = heat.flatten(2)
        logits = heat * self.log_temperature.exp()
        weights = torch.softmax(logits, -1)
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij"
        )
        grid = torch.stack([xs.flatten(), ys.flatten()], 1)
        return torch.cat([weights @ grid, (weights * heat).sum(-1, keepdim=True)], -1), logits


def bilinear(cells: torch.Tensor, side: int) -> torch.Tensor:
    """``(N, K, 2)`` map coordinates -> ``(N, K, side * side)`` bilinear weights."""
    xy0 = cells.floor().clamp(0, side - 2)
    frac = (cells - xy0).clamp(0, 1)
    x0, y0 = xy0[..., 0].long(), xy0[..., 1].long()
    fx, fy = frac[..., 0], frac[..., 1]
    out = torch.zeros(*cells.shape[:2], side * side)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                      (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):  # fmt: skip
        out.scatter_add_(2, ((y0 + dy) * side + x0 + dx)[..., None], w[..., None])
    return out


def pixel_labels(ds: EpisodeDataset, episodes: list[int], objects: np.ndarray, stem: str):
    """Per camera: where each object projects on the slot maps' grid, and whether it is seen."""
    import envs
    from policies.perception_geometry import camera_rig, cell_labels

    env = envs.make(ds.meta["task"], obs_mode="pixels", cameras=CAMERAS, image_size=64)
    env.reset(seed=0)
    rig = camera_rig(env, CAMERAS)
    env.close()
    proprio = np.concatenate([ds[i].obs["proprio"] for i in episodes])
    out = []
    for cells, seen in cell_labels(objects.reshape(len(objects), -1, SLOT), rig, proprio, 64):
        pixel = 2 * (cells + 0.5)  # half-resolution cell -> pixel
        grid = (pixel - 0.5) / 4 if stem == "own" else (pixel - 4.0) / 4
        out.append((torch.as_tensor(grid, dtype=torch.float32), torch.as_tensor(seen)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a pick-place dataset directory (pixels)")
    parser.add_argument("--stem", choices=("shared", "own", "full", "half"), default="shared")
    parser.add_argument("--structured", action="store_true", help="slots as [p, p * xyz]")
    parser.add_argument("--pixel-labels", type=float, default=0.0, help="weight of the map CE")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ds = EpisodeDataset(args.data)
    add_objects_by_colour(ds)
    train, val = split_episodes(len(ds))

    def frames(episodes):
        images = [np.concatenate([ds[i].obs[f"image_{c}"] for i in episodes]) for c in CAMERAS]
        objects = np.concatenate([ds[i].obs[OBJECTS_BY_COLOUR] for i in episodes])
        return images, objects.astype(np.float32)

    (train_images, train_objects), (val_images, val_objects) = frames(train), frames(val)
    mean = train_objects.mean(0)
    std = train_objects.std(0)
    std = np.where(std < 1e-4, 1.0, std + 1e-3)  # as the world model normalises
    slots = train_objects.shape[1] // SLOT
    maps = nn.ModuleList(SlotMaps(slots, args.stem) for _ in CAMERAS)
    code = nn.Parameter(torch.randn(slots, 8) * 0.5)
    readout = mlp(3 * len(CAMERAS) + 8, 64, SLOT, layers=1)
    labels = pixel_labels(ds, train, train_objects, args.stem) if args.pixel_labels else None
    optimizer = torch.optim.Adam([*maps.parameters(), code, *readout.parameters()], lr=1e-3)
    mean_t, std_t = torch.as_tensor(mean), torch.as_tensor(std)

    def predict(images):
        found = [m(torch.as_tensor(x)) for m, x in zip(maps, images)]
        out = readout(torch.cat([f for f, _ in found] + [code.expand(len(images[0]), -1, -1)], -1))
        if args.structured:
            p = torch.sigmoid(out[..., :1])
            out = (torch.cat([p, p * out[..., 1:] * 0.1], -1).flatten(1) - mean_t) / std_t
        return out.flatten(1), [logits for _, logits in found]

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(args.steps):
        i = rng.integers(0, len(train_objects), 128)
        pred, logits = predict([x[i] for x in train_images])
        loss = ((pred - (torch.as_tensor(train_objects[i]) - mean_t) / std_t) ** 2).mean()
        for (cells, seen), lg in zip(labels or [], logits):
            side = math.isqrt(lg.shape[-1])
            c = cells[i]
            inside = (seen[i] & ((c >= 0) & (c <= side - 1)).all(-1)).float()
            ce = -(bilinear(c, side) * torch.log_softmax(lg, -1)).sum(-1)
            loss = loss + args.pixel_labels * (ce * inside).sum() / inside.sum().clamp(min=1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        pred = np.concatenate(
            [predict([x[j : j + 256] for x in val_images])[0].numpy()
             for j in range(0, len(val_objects), 256)]
        )  # fmt: skip
    error = (pred - (val_objects - mean) / std) ** 2
    raw = (pred * std + mean).reshape(len(pred), -1, SLOT)
    true = val_objects.reshape(len(pred), -1, SLOT)
    present = true[..., 0] > 0.5
    cm = 100 * np.linalg.norm(true[..., 1:] - raw[..., 1:], axis=-1)[present]
    print(json.dumps({
        "stem": args.stem, "structured": args.structured, "pixel_labels": args.pixel_labels,
        "steps": args.steps, "val_objects_mse": round(float(error.mean()), 4),
        "present_cm_mean": round(float(cm.mean()), 2), "present_cm_median": round(float(np.median(cm)), 2),
        "presence_accuracy": round(float(((raw[..., 0] > 0.5) == present).mean()), 3),
        "seconds": round(time.perf_counter() - start),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
