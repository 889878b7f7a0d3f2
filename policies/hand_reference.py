"""The hand as a reference mark: camera errors cancelled near the grasp.

Perception turns a heatmap peak into a ray through the cameras' *nominal* geometry
(:mod:`policies.perception`). A camera that moved, turned or zoomed (the ``camera_pose`` and
``camera_fov`` factors) then puts every object off by its error field: 1-2 cm at the middle
magnitude, while grasping needs about 1 cm. The arm's own hand is in view and its position is
known from proprioception, so each frame measures that field at the hand: the pixel offset
between where the hand is seen and where the nominal geometry projects it. An object near the
hand is off by nearly the same pixels (a camera turn shifts everything at one depth alike; a
zoom or a move shifts neighbours alike), so subtracting the hand's offset from the object's
pixel cancels the error where it matters, in the last centimetres before a grasp. This is the
old visual-servoing observation that a calibration error common to the hand and its target
drops out of their difference.

Measured with exact pixels (a throwaway probe, 12 expert episodes, every camera factor at 0.5):
an object within 5 cm of the hand goes from 0.6-1.9 cm of error to 0.02-0.11 cm; 5-15 cm away
the correction is about neutral; further away it hurts (the field differs), hence the weight
that fades from 1 at :data:`NEAR` to 0 at :data:`FAR` (docs/DECISIONS.md).

The heatmap networks learn the hand as one more map, on labels projected from proprioception
through each training episode's *actual* camera (so a map says where things are in this image,
and the geometry's error is left to this module).

On the domain-randomised end-to-end pick-place agent it does not pay (docs/BENCHMARKS.md): the
hand's own peak error moves nearby cubes nominally (0.45 -> 0.64 cm by the hand), nominal success
falls 93% -> 83% and the all-factors cell does not rise. An option, off by default.
"""

from __future__ import annotations

import numpy as np

from policies.perception_geometry import camera_poses, in_view, project

NEAR = 0.05
"""Objects at most this far from the hand (metres) take the hand's whole pixel offset."""
FAR = 0.15
"""Objects this far or further take none of it."""
SMOOTHING = 0.2
"""Weight of a new frame's offset in :class:`HandReference`'s running average."""


def hand_table(proprio: np.ndarray) -> np.ndarray:
    """``(N, 1, 4)``: the hand as a present one-identity table (its labels' source)."""
    proprio = np.asarray(proprio, dtype=np.float32)
    out = np.ones((len(proprio), 1, 4), dtype=np.float32)
    out[:, 0, 1:4] = proprio[:, :3]
    return out


def hand_offsets(
    conf: np.ndarray, u: np.ndarray, v: np.ndarray, rig: np.ndarray, proprio: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(C, B, 2)``: per camera and frame, the pixel offset of the hand seen (peak ``u, v``
    with logit ``conf``, each ``(C, B)``) from where the nominal ``rig`` projects the hand of
    ``proprio``, and ``(C, B)`` where that holds; zeros where the camera does not see the hand
    or it projects out of view."""
    proprio = np.asarray(proprio, dtype=np.float64)
    out = np.zeros((len(rig), len(proprio), 2))
    valid = np.zeros((len(rig), len(proprio)), dtype=bool)
    for i, row in enumerate(rig):
        pos, rot = camera_poses(row, proprio)
        un, vn, depth = project(proprio[:, None, :3], pos, rot, row[13], size)
        un, vn, depth = un[:, 0], vn[:, 0], depth[:, 0]
        ok = (conf[i] > 0) & in_view(un, vn, depth, size)
        out[i, ok, 0], out[i, ok, 1] = (u[i] - un)[ok], (v[i] - vn)[ok]
        valid[i] = ok
    return out, valid


def reference_weight(positions: np.ndarray, proprio: np.ndarray) -> np.ndarray:
    """``(B, K)`` in [0, 1]: how much of the hand's offset an object at ``positions (B, K, 3)``
    takes: 1 within :data:`NEAR` of the hand, fading linearly to 0 at :data:`FAR`."""
    hand = np.asarray(proprio, dtype=np.float64)[:, None, :3]
    distance = np.linalg.norm(positions - hand, axis=-1)
    return np.clip((FAR - distance) / (FAR - NEAR), 0.0, 1.0)


class HandReference:
    """One episode's estimate of each camera's hand offset, frame by frame in order: the mean of
    the offsets seen so far, then an exponential average with weight :data:`SMOOTHING` per frame.

    One frame's offset carries the heatmaps' noise twice (the hand's peak and the object's) and,
    on a dropped frame, the hand's motion since the image was taken (the image is old,
    proprioception is not); a camera's error moves slowly with the hand, so an average over the
    last few frames keeps the error and loses most of the noise."""

    def __init__(self) -> None:
        self.offsets: np.ndarray | None = None
        self.seen: np.ndarray | None = None

    def update(self, offsets: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``offsets (C, B, 2)`` of ``B`` consecutive frames, ``valid (C, B)`` where a camera saw
        the hand; returns the smoothed offsets ``(C, B, 2)`` each frame is corrected with."""
        out = np.zeros_like(offsets)
        if self.offsets is None:
            self.offsets = np.zeros((offsets.shape[0], 2))
            self.seen = np.zeros(offsets.shape[0], dtype=np.int64)
        for t in range(offsets.shape[1]):
            ok = valid[:, t]
            self.seen[ok] += 1
            weight = np.maximum(1.0 / np.maximum(self.seen, 1), SMOOTHING)[:, None]
            self.offsets = np.where(ok[:, None], self.offsets + weight * (offsets[:, t] - self.offsets), self.offsets)  # fmt: skip
            out[:, t] = self.offsets
        return out
