"""Camera geometry of perception: the cameras' poses (the rig, read once from a model), the
pinhole projection of world points to pixels and back to rays, and the heatmap cells a table of
objects falls on (perception's labels). MuJoCo's cameras look down their -z axis."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from envs.robot import yaw_rotation


def camera_rig(env: Any, cameras: tuple[str, ...]) -> np.ndarray:
    """``(C, RIG_WIDTH)``: each camera's pose in the world, or relative to the hand when it is
    mounted on the arm (read from a reset env's MuJoCo model)."""
    import mujoco

    m, d = env.model, env.data
    site = env._ee_site
    site_pos, site_rot = d.site_xpos[site].copy(), d.site_xmat[site].reshape(3, 3).copy()
    rows = []
    for name in cameras:
        cid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, name)
        if cid < 0:
            raise ValueError(f"no camera {name!r} in the model")
        pos, rot = d.cam_xpos[cid].copy(), d.cam_xmat[cid].reshape(3, 3).copy()
        on_hand = int(m.cam_bodyid[cid]) != 0
        if on_hand:
            pos, rot = site_rot.T @ (pos - site_pos), site_rot.T @ rot
        rows.append([float(on_hand), *pos, *rot.ravel(), float(m.cam_fovy[cid])])
    return np.asarray(rows, dtype=np.float64)


def camera_poses(rig_row: np.ndarray, proprio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World position ``(N, 3)`` and rotation ``(N, 3, 3)`` of one camera at each frame."""
    proprio = np.asarray(proprio, dtype=np.float64)
    n = len(proprio)
    pos, rot = rig_row[1:4], rig_row[4:13].reshape(3, 3)
    if rig_row[0] < 0.5:
        return np.repeat(pos[None], n, 0), np.repeat(rot[None], n, 0)
    hand = np.stack([yaw_rotation(y) for y in np.arctan2(proprio[:, 3], proprio[:, 4])])
    return proprio[:, :3] + hand @ pos, hand @ rot


def _focal(fovy: float, size: int) -> float:
    return (size / 2) / math.tan(math.radians(fovy) / 2)


def project(points: np.ndarray, pos: np.ndarray, rot: np.ndarray, fovy: float, size: int):
    """World ``points (N, K, 3)`` -> pixel ``u, v (N, K)`` and depth along the view axis."""
    f = _focal(fovy, size)
    cam = np.einsum("nji,nkj->nki", rot, points - pos[:, None])
    depth = -cam[..., 2]
    safe = np.maximum(depth, 1e-3)
    return size / 2 + f * cam[..., 0] / safe, size / 2 - f * cam[..., 1] / safe, depth


def rays(u: np.ndarray, v: np.ndarray, pos: np.ndarray, rot: np.ndarray, fovy: float, size: int):
    """Pixels ``(N, K)`` -> unit ray directions ``(N, K, 3)`` in the world."""
    f = _focal(fovy, size)
    cam = np.stack([(u - size / 2) / f, -(v - size / 2) / f, -np.ones_like(u)], -1)
    world = np.einsum("nij,nkj->nki", rot, cam)
    return world / np.linalg.norm(world, axis=-1, keepdims=True)


def in_view(u: np.ndarray, v: np.ndarray, depth: np.ndarray, size: int) -> np.ndarray:
    """Where projected pixels ``u, v`` with their ``depth`` fall inside a ``size`` image, in
    front of the camera."""
    return (u > 0) & (u < size) & (v > 0) & (v < size) & (depth > 0.02)


def cell_labels(table: np.ndarray, rig: np.ndarray, proprio: np.ndarray, size: int):
    """Per camera: the true cell coordinates ``(N, K, 2)`` of each identity and whether it is
    present and inside the image ``(N, K)``."""
    out = []
    for row in rig:
        pos, rot = camera_poses(row, proprio)
        u, v, depth = project(table[..., 1:4].astype(np.float64), pos, rot, row[13], size)
        seen = (table[..., 0] > 0) & in_view(u, v, depth, size)
        out.append((np.stack([u / 2 - 0.5, v / 2 - 0.5], -1).astype(np.float32), seen))
    return out
