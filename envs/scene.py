"""Scene composition: the base MJCF (table, lights, cameras, arm) plus a task's objects, via MjSpec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

ASSETS = Path(__file__).parent / "assets"
SCENE_XML = ASSETS / "scene.xml"

CUBE_HALF = 0.02
"""Half edge of a cube (m)."""
PAD_HALF = 0.045
"""Half edge of a square target pad (m)."""
TARGET_RADIUS = 0.02
"""Radius of a reach target marker (m)."""
DISTRACTOR_SHAPES: tuple[tuple[mujoco.mjtGeom, tuple[float, float, float], float], ...] = (
    (mujoco.mjtGeom.mjGEOM_CYLINDER, (0.022, 0.03, 0.0), 0.03),
    (mujoco.mjtGeom.mjGEOM_SPHERE, (0.024, 0.0, 0.0), 0.024),
    (mujoco.mjtGeom.mjGEOM_BOX, (0.04, 0.012, 0.012), 0.012),
)
"""Shape, size and resting height of the distractor objects every scene holds, hidden under the
table (transparent, touching nothing) unless the ``distractors`` factor puts them on it."""


@dataclass(frozen=True)
class ObjectSpec:
    """A task object: a free ``cube``, a flat ``pad`` on the table, or a floating ``target`` marker."""

    name: str
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in ("cube", "pad", "target"):
            raise ValueError(f"unknown object kind {self.kind!r}; known: cube, pad, target")


def build_model(objects: tuple[ObjectSpec, ...]) -> mujoco.MjModel:
    """Compile the base scene with ``objects`` added. Bodies and geoms are named after the objects."""
    spec = mujoco.MjSpec.from_file(str(SCENE_XML))
    world = spec.worldbody
    for obj in objects:
        body = world.add_body(name=obj.name, pos=[0.0, 0.0, 0.0])
        if obj.kind == "cube":
            body.add_freejoint(name=obj.name)
            body.add_geom(
                name=obj.name,
                type=mujoco.mjtGeom.mjGEOM_BOX,
                size=[CUBE_HALF] * 3,
                mass=0.05,
                friction=[1.2, 0.01, 0.001],
                condim=4,
                rgba=[0.8, 0.2, 0.2, 1.0],
            )
        elif obj.kind == "pad":
            body.add_geom(
                name=obj.name,
                type=mujoco.mjtGeom.mjGEOM_BOX,
                size=[PAD_HALF, PAD_HALF, 0.001],
                pos=[0.0, 0.0, 0.001],
                contype=0,
                conaffinity=0,
                rgba=[0.2, 0.8, 0.2, 1.0],
            )
        else:
            body.mocap = True
            body.add_geom(
                name=obj.name,
                type=mujoco.mjtGeom.mjGEOM_SPHERE,
                size=[TARGET_RADIUS, 0.0, 0.0],
                contype=0,
                conaffinity=0,
                rgba=[0.8, 0.2, 0.2, 0.6],
            )
    for i, (shape, size, _) in enumerate(DISTRACTOR_SHAPES):
        body = world.add_body(name=f"distractor{i}", pos=[0.0, 0.0, -0.3])
        body.mocap = True
        # alpha 0: MuJoCo draws nothing, so a scene without distractors renders bit-identically
        body.add_geom(
            name=f"distractor{i}",
            type=shape,
            size=list(size),
            contype=0,
            conaffinity=0,
            rgba=[0.5, 0.5, 0.5, 0.0],
        )
    return spec.compile()


def step_warnings(model: mujoco.MjModel, data: mujoco.MjData, seconds: float = 1.0) -> list[str]:
    """Step ``seconds`` of simulation from ``data`` holding the controls; return MuJoCo's warnings."""
    mujoco.mj_step(model, data, nstep=int(round(seconds / model.opt.timestep)))
    found = [
        f"{mujoco.mjtWarning(i).name} x{w.number}" for i, w in enumerate(data.warning) if w.number
    ]
    if not np.isfinite(data.qpos).all():
        found.append("non-finite qpos")
    return found
