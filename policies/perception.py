"""Object perception from pixels: where is every object, in metres, from the cameras.

Each camera has a small fully convolutional network that outputs one heatmap per object
*identity* (a colour and a kind: ``red cube``, ``blue pad``, ...) at half the image resolution,
plus one map of the height of whatever object sits at each cell. It is trained on the demos'
frames with dense labels projected from the privileged ``object_state`` through the cameras'
known geometry (the pinhole model of MuJoCo's cameras): a softmax over the cells per identity
against the true sub-cell position, a presence logit (the heatmap's maximum), and the height at
the true cell. At run time the heatmap's peak, refined by a 3x3 soft-argmax, is a ray from the
camera (two identities of one kind peaking at one place in a camera are one object: the less
confident is not seen there); rays from two cameras that both see the object are triangulated,
and an object that one camera sees lies where its ray meets the predicted height, unless it
floats and the other camera's ray agrees (:func:`fuse`).

Why this and not a regression head: a conv stem + spatial softmax + MLP regressing positions
stayed at 2.5 cm mean error after 4,000 updates (docs/DECISIONS.md), while these heatmaps
place a cube within 0.3 cm (median) at the same cost: supervision at every cell, and geometry
that is known rather than learned. Grasping needs about 1 cm.

A wrist camera moves with the hand; its pose is the hand's (position and yaw, read from
proprioception) composed with the camera's fixed offset, so it is calibrated once per model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from envs.language import COLOR_NAMES
from envs.link_features import KINDS, object_slices, object_state_dim
from policies.perception_geometry import camera_poses, rays

NUM_IDENTITIES = len(COLOR_NAMES) * len(KINDS)
"""One heatmap per colour x kind."""
RIG_WIDTH = 14
"""Per camera: mounted on the hand (0/1), position (3), rotation (9, row-major), vertical fov."""
HEIGHT_SCALE = 0.05
"""Heights are predicted in units of 5 cm."""
TRIANGULATION_GAP = 0.03
"""Rays of two cameras further apart than this (metres) are not the same object."""
AGREEMENT_GAP = 0.008
"""A doubtful camera's ray must pass this close (metres, about a pixel) to the seeing one's:
right ones came within 5 mm on reach's held-out first frames, misplaced ones 16-22 mm."""
SAME_PLACE_PX = 2.0
"""Two identities of one kind peaking this close (pixels) in one camera are one object."""
FLOATING_KINDS: tuple[str, ...] = ("target",)
"""Kinds that float in the air: no table under them to fix a single ray's depth."""
CELL_LABELS = ("cells", "seen")
"""Perception's label keys in a training batch (``<key>/<camera>``)."""


def identity(color: str, kind: str) -> int:
    return COLOR_NAMES.index(color) * len(KINDS) + KINDS.index(kind)


FLOATING = np.array([KINDS[i % len(KINDS)] in FLOATING_KINDS for i in range(NUM_IDENTITIES)])
"""``(NUM_IDENTITIES,)``: which identities are of a floating kind."""
SAME_KIND = np.array(
    [[i != j and i % len(KINDS) == j % len(KINDS) for j in range(NUM_IDENTITIES)]
     for i in range(NUM_IDENTITIES)]
)  # fmt: skip
"""``(K, K)``: pairs of distinct identities of one kind."""


# ---------------------------------------------------------------------- labels


def identity_table(object_state: np.ndarray, kinds: tuple[str, ...]) -> np.ndarray:
    """``(T, NUM_IDENTITIES, 4)``: present (0/1) and position of each identity in each frame."""
    state = np.atleast_2d(np.asarray(object_state, dtype=np.float32))
    out = np.zeros((len(state), NUM_IDENTITIES, 4), dtype=np.float32)
    rows = np.arange(len(state))
    for kind, start, c in object_slices(tuple(kinds)):
        colour = state[:, c : c + len(COLOR_NAMES)].argmax(1)
        ident = colour * len(KINDS) + KINDS.index(kind)
        out[rows, ident, 0] = 1.0
        out[rows, ident, 1:4] = state[:, start : start + 3]
    return out


def object_state_from_table(
    table: np.ndarray, kinds: tuple[str, ...], identities: np.ndarray, hand_yaw: float
) -> np.ndarray:
    """An ``object_state`` in the env's layout for ``kinds`` from a table of identities: slot
    ``j`` holds identity ``identities[j]`` (e.g. :func:`policies.bc_keypoints.slot_identities`, drawn from its
    first table). Cube orientations are set to the hand's yaw (perception does not estimate
    yaw; the grasp does not need it) and velocities to zero."""
    out = np.zeros(object_state_dim(tuple(kinds)), np.float32)
    quat = (math.cos(hand_yaw / 2), 0.0, 0.0, math.sin(hand_yaw / 2))
    for (kind, start, c), ident in zip(object_slices(tuple(kinds)), identities):
        out[start : start + 3] = table[ident, 1:4]
        if kind == "cube":
            out[start + 3 : start + 7] = quat
        out[c + ident // len(KINDS)] = 1.0
    return out


# ---------------------------------------------------------------------- network

_optimizer_steps = 0
"""Optimizer steps taken in this process, by any optimizer: a fused one (the trainer's AdamW)
updates parameters in place without bumping their version counters, so the grouped weights of
:meth:`ObjectPerception.heatmaps` are rebuilt after any step as well."""


def _count_optimizer_step(optimizer, args, kwargs) -> None:
    global _optimizer_steps
    _optimizer_steps += 1


register_optimizer_step_post_hook(_count_optimizer_step)


class HeatmapNet(nn.Module):
    """``(B, H, W, 3) uint8 -> heatmaps (B, NUM_IDENTITIES, H/2, W/2), heights (B, 1, H/2,
    W/2)``: a stride-2 conv then dilated 3x3 convs (receptive field ~40 px) at half
    resolution."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 1, 2, dilation=2), nn.ReLU(),
            nn.Conv2d(2 * width, width, 3, 1, 4, dilation=4), nn.ReLU(),
        )  # fmt: skip
        self.heat = nn.Conv2d(width, NUM_IDENTITIES, 1)
        self.height = nn.Conv2d(width, 1, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(images.permute(0, 3, 1, 2).float() * (1.0 / 255.0))
        return self.heat(h), self.height(h)


def _bilinear(cells: torch.Tensor, grid: int) -> torch.Tensor:
    """``(B, K, 2)`` cell coordinates -> ``(B, K, grid * grid)`` bilinear weights."""
    xy0 = cells.floor().clamp(0, grid - 2)
    frac = (cells - xy0).clamp(0, 1)
    x0, y0 = xy0[..., 0].long(), xy0[..., 1].long()
    fx, fy = frac[..., 0], frac[..., 1]
    weights = torch.zeros(*cells.shape[:2], grid * grid, device=cells.device)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                      (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):  # fmt: skip
        weights.scatter_add_(2, ((y0 + dy) * grid + x0 + dx)[..., None], w[..., None])
    return weights


def heatmap_loss(heat, height, cells, seen, heights) -> tuple[torch.Tensor, dict[str, float]]:
    """Softmax cross-entropy of each seen identity's cells against its bilinear position, a
    presence logit (the map's maximum) for every identity, and the height at the true cell."""
    b, k, grid, _ = heat.shape
    logits = heat.reshape(b, k, grid * grid)
    target = _bilinear(cells, grid)
    mask = seen.float()
    n = mask.sum().clamp(min=1)
    ce = (-(target * F.log_softmax(logits, -1)).sum(-1) * mask).sum() / n
    presence = F.binary_cross_entropy_with_logits(logits.max(-1).values, mask)
    info = {"heatmap_ce": float(ce.detach()), "presence": float(presence.detach())}
    at = torch.einsum("bkg,bg->bk", target, height.view(b, grid * grid))
    z = (((at - heights / HEIGHT_SCALE) ** 2) * mask).sum() / n
    return ce + presence + 5.0 * z, info | {"height": float(z.detach())}


def one_per_place(conf: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``conf (B, K)`` with every identity whose peak lies within ``SAME_PLACE_PX`` of a more
    confident, seen identity of the same kind marked unseen in this camera (logit at most just
    below zero): one object, one place. In numpy: about half the cost of torch at batch 1.

    Why: perception confuses cubes of near colours (purple / blue / red, yellow / orange). A
    blue cube's heatmap peaking on the purple cube puts the blue cube where it is not, and the
    hierarchical agent's System 2, reading the blue link undone, steps back. Marked unseen, the
    blue cube keeps where it was last seen (``remember``) or comes from the other camera.
    Different kinds may share a place (a cube on its pad) and are left alone (docs/DECISIONS.md)."""
    close = np.hypot(u[:, :, None] - u[:, None, :], v[:, :, None] - v[:, None, :]) < SAME_PLACE_PX
    other = conf[:, None, :]  # (B, 1, K): identity j, against identity i on axis 1
    beaten = close & SAME_KIND & (other > 0) & (other > conf[:, :, None])
    return np.where(beaten.any(-1), np.minimum(conf, -0.01), conf)


def decode(heat: np.ndarray, height: np.ndarray):
    """Peaks -> presence logit ``(B, K)``, sub-pixel ``u, v (B, K)`` and height ``(B, K)``, from
    ``heat (B, K, G, G)`` and ``height (B, 1, G, G)`` (numpy: a few small arrays, where torch's
    per-call cost was most of the time at batch 1). The peak's 3x3 window is read from a copy of
    the maps bordered by a very low logit, so a peak on the border weighs no cell beyond it."""
    b, k, grid, _ = heat.shape
    n = b * k
    maps = heat.reshape(n, grid * grid)
    idx = maps.argmax(-1)
    cell = np.arange(n)
    conf = maps[cell, idx]
    iy, ix = np.divmod(idx, grid)
    bordered = np.full((n, grid + 2, grid + 2), -1e4, dtype=heat.dtype)
    bordered[:, 1:-1, 1:-1] = heat.reshape(n, grid, grid)
    window = bordered[
        cell[:, None, None], iy[:, None, None] + _WINDOW[:, None], ix[:, None, None] + _WINDOW
    ]
    p = np.exp(window - conf[:, None, None])  # the peak is the window's maximum
    p /= p.sum((-2, -1), keepdims=True)
    gx = ix + (p.sum(-2) * _OFFSETS).sum(-1)
    gy = iy + (p.sum(-1) * _OFFSETS).sum(-1)
    z = height.reshape(b, grid * grid)[np.arange(b)[:, None], idx.reshape(b, k)] * HEIGHT_SCALE
    shape = (b, k)
    return conf.reshape(shape), 2 * (gx + 0.5).reshape(shape), 2 * (gy + 0.5).reshape(shape), z


_WINDOW = np.arange(3)
"""Rows (or columns) of a peak's 3x3 window in the bordered maps."""
_OFFSETS = np.arange(-1, 2)
"""Their offsets from the peak, in cells."""


class ObjectPerception(nn.Module):
    """Cameras -> a table of identities: presence logit and world position ``(B, K, 4)``."""

    def __init__(self, cameras: tuple[str, ...], image_size: int, width: int) -> None:
        super().__init__()
        self.cameras = tuple(cameras)
        self.image_size = image_size
        self.nets = nn.ModuleDict({c: HeatmapNet(width) for c in self.cameras})
        self.register_buffer("rig", torch.zeros(len(self.cameras), RIG_WIDTH, dtype=torch.float64))

    def loss(self, images: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]):
        total, info = 0.0, {}
        for cam in self.cameras:
            heat, height = self.nets[cam](images[cam])
            part, parts = heatmap_loss(
                heat, height, labels[f"cells/{cam}"], labels[f"seen/{cam}"], labels["heights"]
            )
            total = total + part
            info.update({f"{cam}_{k}": v for k, v in parts.items()})
        return total, info

    def batch_loss(self, batch: dict[str, Any], device: torch.device):
        """:meth:`loss` on a training batch: per camera ``obs/image_<cam>``, its ``cells/<cam>``
        and ``seen/<cam>`` labels, ``table`` (heights; in validation, the error in cm) and
        ``proprio``. Returns ``(loss, info)``."""
        tensor = lambda x: torch.as_tensor(x, device=device)
        images = {c: tensor(batch[f"obs/image_{c}"]) for c in self.cameras}
        labels = {k: tensor(v) for k, v in batch.items() if k.split("/")[0] in CELL_LABELS}
        labels["heights"] = tensor(batch["table"])[..., 3]
        loss, info = self.loss(images, labels)
        if not self.training:  # validation: where the perceived objects are, in centimetres
            table = np.asarray(batch["table"])
            present = table[..., 0] > 0
            seen = self(images, np.asarray(batch["proprio"]))
            err = np.linalg.norm(seen[..., 1:4] - table[..., 1:4], axis=-1)[present]
            info["position_error_cm"] = float(err.mean() * 100)
            info["presence_accuracy"] = float(((seen[..., 0] > 0) == present).mean())
        return loss, info

    @torch.no_grad()
    def forward(self, images: dict[str, torch.Tensor], proprio: np.ndarray) -> np.ndarray:
        """``(B, NUM_IDENTITIES, 4)``: presence logit and position (numpy, float32)."""
        return fuse(*self.camera_rays(images, proprio))

    @torch.no_grad()
    def heatmaps(self, images: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        """Every camera's heatmaps ``(C, B, K, G, G)`` and height maps ``(C, B, 1, G, G)``
        (numpy, float32), the networks run at once: each layer is one convolution grouped by
        camera (the same numbers as one network after another, in about 0.7x the time at batch 1
        on one thread: half the calls; docs/DECISIONS.md)."""
        x = torch.cat([images[c].permute(0, 3, 1, 2) for c in self.cameras], 1)
        x = x.float().mul_(1.0 / 255.0)
        groups = len(self.cameras)
        *body, (head_weight, head_bias, _) = self._grouped_layers()
        for weight, bias, conv in body:
            x = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, groups).relu_()
        x = F.conv2d(x, head_weight, head_bias, groups=groups)
        maps = x.view(x.shape[0], groups, -1, *x.shape[2:]).transpose(0, 1).cpu().numpy()
        return maps[:, :, :NUM_IDENTITIES], maps[:, :, NUM_IDENTITIES:]

    def _grouped_layers(self) -> list[tuple[torch.Tensor, torch.Tensor, nn.Conv2d | None]]:
        """The cameras' networks as grouped convolutions ``(weight, bias, conv)``, the heads (heat
        and height) last as one; rebuilt whenever a parameter changes in place or moves
        (``load_state_dict``, ``.to``, an in-place edit: its version or storage) and after any
        optimizer step (:data:`_optimizer_steps`: a fused optimizer leaves the versions alone). A
        parameter replaced by a new object is not seen: replace the networks instead."""
        if getattr(self, "_camera_layers", None) is None:  # per camera: its convs, then its heads
            self._camera_layers = [
                [m for m in self.nets[c].body if isinstance(m, nn.Conv2d)]
                + [self.nets[c].heat, self.nets[c].height]
                for c in self.cameras
            ]
            self._layer_params = [
                p for layers in self._camera_layers for m in layers for p in (m.weight, m.bias)
            ]
        key = (_optimizer_steps, *((p.data_ptr(), p._version) for p in self._layer_params))
        if getattr(self, "_grouped_key", None) != key:
            *convs, heats, heights = zip(*self._camera_layers)  # per layer, every camera's
            grouped = [(torch.cat([m.weight for m in ms]), torch.cat([m.bias for m in ms]), ms[0])
                       for ms in convs]  # fmt: skip
            heads = [m for pair in zip(heats, heights) for m in pair]  # camera by camera
            grouped.append((torch.cat([m.weight for m in heads]), torch.cat([m.bias for m in heads]), None))  # fmt: skip
            self._grouped = [(w.detach(), b.detach(), m) for w, b, m in grouped]
            self._grouped_key = key
        return self._grouped

    @torch.no_grad()
    def camera_rays(self, images: dict[str, torch.Tensor], proprio: np.ndarray):
        """Per camera ``(C, B, K, ...)``: each identity's ray (origin, unit direction), presence
        logit and predicted height, what :func:`fuse` turns into a table."""
        heat, height = self.heatmaps(images)
        c, b = heat.shape[:2]
        conf, u, v, z = (
            a.reshape(c, b, -1).astype(np.float64)
            for a in decode(heat.reshape(c * b, *heat.shape[2:]), height.reshape(c * b, *height.shape[2:]))
        )  # fmt: skip
        conf = one_per_place(conf.reshape(c * b, -1), u.reshape(c * b, -1), v.reshape(c * b, -1))
        conf = conf.reshape(c, b, -1)
        rig = self.rig.cpu().numpy()
        origins, directions = self._rays(rig, u, v, proprio)
        return origins, directions, conf, z

    def _rays(self, rig: np.ndarray, u: np.ndarray, v: np.ndarray, proprio: np.ndarray):
        """Each camera's ray origins and directions ``(C, B, K, 3)`` through pixels ``u, v``."""
        origins, directions = [], []
        for i in range(len(rig)):
            pos, rot = camera_poses(rig[i], proprio)
            origins.append(np.broadcast_to(pos[:, None], u.shape[1:] + (3,)))
            directions.append(rays(u[i], v[i], pos, rot, rig[i, 13], self.image_size))
        return np.stack(origins), np.stack(directions)


def fuse(origins, directions, confs, heights) -> np.ndarray:
    """Per identity: triangulate the rays of the cameras that see it (presence logit > 0). A
    floating object (:data:`FLOATING_KINDS`) that fewer than two cameras see is triangulated from
    every camera's ray, the doubtful ones included, when one camera sees it and the rays agree
    (meet within ``AGREEMENT_GAP``). Otherwise the most confident camera's ray meets its
    predicted height; with no camera seeing it, that is the guess, its presence logit kept
    (negative).

    Why floating objects differ: the predicted height a single ray is cut with is right to a few
    millimetres for what rests on the table, and off by 1-5 cm for a target floating 4-22 cm up,
    which a grazing front ray turns into 5-10 cm of error, while the wrist camera places that
    target to half a pixel yet doubts it is there (logits -5 to 0). A doubtful ray on another
    object can still cross the seeing one, hence the tighter gap. What rests on the table gains
    nothing from it, and triangulating its doubtful rays (at the 3 cm gap) made sort worse
    (docs/DECISIONS.md)."""
    position = on_predicted_height(origins, directions, confs, heights)
    seen = confs > 0
    ok = np.zeros(seen.shape[1:], dtype=bool)
    if (seen.sum(0) >= 2).any():  # (each pass is skipped where it could change nothing)
        point, ok = triangulate(origins, directions, seen)
        position[ok] = point[ok]
    floating = seen.any(0) & FLOATING
    if len(confs) >= 2 and (floating & ~ok).any():
        cams = np.broadcast_to(floating, seen.shape)
        point, agree = triangulate(origins, directions, cams, AGREEMENT_GAP)
        agree &= ~ok
        position[agree] = point[agree]
    out = np.concatenate([confs.max(0)[..., None], position], -1)
    return out.astype(np.float32)


def on_predicted_height(origins, directions, confs, heights) -> np.ndarray:
    """``(B, K, 3)``: where the most confident camera's ray meets the height it predicts."""
    best = confs.argmax(0)[None]  # (1, B, K)
    o = np.take_along_axis(origins, best[..., None], 0)[0]
    d = np.take_along_axis(directions, best[..., None], 0)[0]
    z = np.take_along_axis(heights, best, 0)[0]
    t = (z - o[..., 2]) / np.where(np.abs(d[..., 2]) < 1e-6, -1e-6, d[..., 2])
    return o + t[..., None] * d


def triangulate(
    origins, directions, cams, gap_limit: float = TRIANGULATION_GAP, weights=None
) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares point nearest the rays of the cameras ``cams (C, B, K)`` marks (each
    ray weighted by ``weights (C, B, K)`` when given), and where it holds: two or more rays,
    each passing within ``gap_limit`` metres of it, with the point in front of every camera."""
    # sum w (I - d d^T) p = sum w (I - d d^T) o over the rays used
    eye = np.eye(3)
    perpendicular = eye - directions[..., :, None] * directions[..., None, :]
    proj = perpendicular * cams[..., None, None]
    weighted = proj if weights is None else perpendicular * weights[..., None, None]
    a = weighted.sum(0)
    rhs = np.einsum("cbkij,cbkj->bki", weighted, origins).copy()
    usable = cams.sum(0) >= 2
    a[~usable] = eye
    rhs[~usable] = 0.0
    point = np.linalg.solve(a, rhs[..., None])[..., 0]
    offset = point[None] - origins
    gap = np.linalg.norm(np.einsum("cbkij,cbkj->cbki", proj, offset), axis=-1).max(0)
    ahead = ((np.einsum("cbki,cbki->cbk", offset, directions) > 0) | ~cams).all(0)
    return point, usable & (gap < gap_limit) & ahead
