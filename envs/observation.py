"""What a manipulation env observes and renders: proprioception, the object state (and its
colour-indexed view), camera images, video frames, and renderers that close cleanly.

A mixin of :class:`envs.base.ManipulationEnv`, which owns the MuJoCo model and data.
"""

from __future__ import annotations

import atexit
import functools
import math
from typing import Any

import mujoco
import numpy as np

from envs.language import COLOR_NAMES
from envs.rendering import renderer_error

CAMERAS: tuple[str, ...] = ("front", "wrist", "side")
IMAGE_PREFIX = "image_"
PROPRIO = "proprio"
OBJECT_STATE = "object_state"
INSTRUCTION = "instruction"
OBJECT_KINDS: tuple[str, ...] = ("cube", "pad", "target")
PROPRIO_DIM = 19
OBS_BOUND = 100.0
"""State observations are clipped to [-OBS_BOUND, OBS_BOUND] (velocities are the only entries that can get near)."""


class ObservationsAndRendering:
    """Observation assembly and rendering over the env's ``model`` / ``data``."""

    def _proprio(self) -> np.ndarray:
        d = self.data
        ee = d.site_xpos[self._ee_site]
        rot = d.site_xmat[self._ee_site]
        yaw = math.atan2(rot[3], rot[0])
        out = self._proprio_buffer
        out[0:3] = ee
        out[3] = math.sin(yaw)
        out[4] = math.cos(yaw)
        out[5] = self.gripper_opening
        out[6:9] = (ee - self._prev_ee) * (1.0 / self.control_dt)
        out[9:14] = d.qpos[self._arm_qadr]
        out[14:19] = d.qvel[self._arm_dadr]
        return np.minimum(np.maximum(out, -OBS_BOUND), OBS_BOUND)

    def _layout_object_state(self) -> None:
        """Precompute, per episode, where each object's numbers go in ``object_state``.

        Per cube: position (3), quaternion (4), linear velocity (3), colour one-hot; per pad or
        target: position (3), colour one-hot. Static parts are written once into a template.
        """
        d = self.data
        template = np.zeros(self.object_state_dim, dtype=np.float32)
        qpos_slots, qpos_src, qvel_slots, qvel_src = [], [], [], []
        i = 0
        for obj in self.objects:
            if obj.kind == "cube":
                a, v = self._qadr[obj.name], self._dadr[obj.name]
                qpos_slots += range(i, i + 7)
                qpos_src += range(a, a + 7)
                qvel_slots += range(i + 7, i + 10)
                qvel_src += range(v, v + 3)
                i += 10
            else:
                template[i : i + 3] = d.xpos[self._body[obj.name]]
                i += 3
            template[i + self._color_index[obj.name]] = 1.0
            i += len(COLOR_NAMES)
        self._state_template = template
        self._state_index = tuple(
            np.array(x, dtype=np.intp) for x in (qpos_slots, qpos_src, qvel_slots, qvel_src)
        )

    @property
    def objects_by_colour_dim(self) -> int:
        return len(COLOR_NAMES) * len(OBJECT_KINDS) * 4

    def objects_by_colour(self, object_state: np.ndarray) -> np.ndarray:
        """Re-index ``object_state (..., D)`` by colour: ``(..., 6 colours x 3 kinds x [present, x, y, z])``.

        ``object_state`` lists objects in scene order (which cube is the instructed one), which
        no camera can tell; indexed by colour and kind, the same facts become visible ones.
        """
        state = np.asarray(object_state, dtype=np.float32)
        out = np.zeros(
            (*state.shape[:-1], len(COLOR_NAMES), len(OBJECT_KINDS), 4), dtype=np.float32
        )
        i = 0
        n_colors = len(COLOR_NAMES)
        for obj in self.objects:
            pos = state[..., i : i + 3]
            i += 10 if obj.kind == "cube" else 3
            onehot = state[..., i : i + n_colors]
            i += n_colors
            kind = OBJECT_KINDS.index(obj.kind)
            present = onehot[..., :, None]  # (..., colours, 1)
            out[..., :, kind, 0] += onehot
            out[..., :, kind, 1:] += present * pos[..., None, :]
        return out.reshape(*state.shape[:-1], -1)

    def _object_state(self) -> np.ndarray:
        out = self._state_template.copy()
        qpos_slots, qpos_src, qvel_slots, qvel_src = self._state_index
        out[qpos_slots] = self.data.qpos[qpos_src]
        out[qvel_slots] = self.data.qvel[qvel_src]
        return np.minimum(np.maximum(out, -OBS_BOUND, out=out), OBS_BOUND, out=out)

    def _observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = {}
        if self.config.obs_mode == "pixels":
            for cam in self.config.cameras:
                obs[IMAGE_PREFIX + cam] = self.render_camera(cam)
        obs[PROPRIO] = self._proprio()
        obs[OBJECT_STATE] = self._object_state()
        obs[INSTRUCTION] = self.instruction
        return obs

    # ------------------------------------------------------------------ rendering

    def _make_renderer(self, size: int, fast: bool) -> mujoco.Renderer:
        quality = self.model.vis.quality
        saved = quality.offsamples
        quality.offsamples = 0 if fast else 4
        try:
            renderer = mujoco.Renderer(self.model, size, size)
        except Exception as exc:  # the GL backend failed: say what to install
            raise renderer_error(exc) from exc
        finally:
            quality.offsamples = saved
        flags = renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = not fast
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = not fast
        if self._exit_hook is None:
            # an env nobody closed frees its GL contexts at exit *before* mujoco's own exit hook
            # (registered with the first context, so it runs after this one) terminates EGL;
            # otherwise every such context prints an EGL traceback at interpreter exit
            self._exit_hook = functools.partial(_close_renderers, self._renderers)
            atexit.register(self._exit_hook)
        return renderer

    def _sync_renderers(self) -> None:
        """Renderer contexts copy material texture settings at creation; give them the model's
        current ones (the ``table_texture`` factor changes them per episode)."""
        repeat = self.model.mat_texrepeat.ravel()
        for renderer in self._renderers.values():
            context = renderer._mjr_context
            if context is not None:
                context.mat_texrepeat[: repeat.size] = repeat

    def render_camera(self, camera: str, size: int | None = None, fast: bool = True) -> np.ndarray:
        """An RGB frame ``(H, W, 3) uint8`` from ``camera``: fast (observations) or pretty (videos)."""
        if fast and (size is None or size == self.config.image_size):
            if "obs" not in self._renderers:
                self._renderers["obs"] = self._make_renderer(self.config.image_size, fast=True)
            renderer = self._renderers["obs"]
        else:
            size = size or self.config.render_size
            video = self._renderers.get("video")
            if video is None or video.height != size:
                if video is not None:
                    video.close()
                self._renderers["video"] = self._make_renderer(size, fast=False)
            renderer = self._renderers["video"]
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self.render_camera("front", self.config.render_size, fast=False)

    def close(self) -> None:
        _close_renderers(self._renderers)
        if self._exit_hook is not None:
            atexit.unregister(self._exit_hook)
            self._exit_hook = None
        super().close()


def _close_renderers(renderers: dict[str, mujoco.Renderer]) -> None:
    """Close and forget every renderer in ``renderers`` (an env's, shared with its finalizer)."""
    for renderer in renderers.values():
        renderer.close()
    renderers.clear()
