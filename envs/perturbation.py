"""How each factor of variation (``envs/factors.py``) is applied to one env: its MuJoCo model at
reset, its observations and its actions at every step, and the nominal model restored before
the next episode.

Every factor draws from its own random stream (seeded from the episode and the factor's name),
so a factor changes the same things whether it runs alone or with others, and all factors at
once are exactly the union of each.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np

from envs.factors import FACTORS, factors_of
from envs.language import COLOR_NAMES, Subtask
from envs.observation import IMAGE_PREFIX, OBJECT_STATE, PROPRIO
from envs.placement import OBJECT_HIGH, OBJECT_LOW, free_spot
from envs.robot import ARM_JOINTS
from envs.scene import CUBE_HALF, DISTRACTOR_SHAPES
from envs.task_config import Episode

if TYPE_CHECKING:
    from envs.base import ManipulationEnv

MODEL_ARRAYS: tuple[str, ...] = (
    "mat_rgba",
    "mat_texrepeat",
    "light_pos",
    "light_dir",
    "light_diffuse",
    "cam_pos",
    "cam_quat",
    "cam_fovy",
    "body_mass",
    "body_inertia",
    "geom_friction",
    "geom_size",
    "geom_rbound",
    "geom_aabb",
    "geom_rgba",
    "dof_damping",
    "actuator_gainprm",
    "actuator_biasprm",
)
"""Every model array a factor may change; saved at construction and restored at each reset."""
OBSERVATION_FACTORS = frozenset(factors_of(["sensing"]))
"""The factors ``observe`` applies (each step); the others leave it a no-op."""
ACTION_FACTORS = frozenset(factors_of(["actuation"]))
"""The factors ``act`` applies (each step)."""
HOLD_ACTION = np.array([0.0, 0.0, 0.0, 0.0, -1.0])
"""What a delayed actuator executes before the first real action arrives: stay, gripper open."""
DISTRACTOR_COLORS = np.array(
    [[0.92, 0.92, 0.9], [0.12, 0.12, 0.13], [0.45, 0.3, 0.18], [0.55, 0.58, 0.6], [0.1, 0.45, 0.45]]
)


OBSERVATION_DELAY = 2.0
"""Observation delay at magnitude 1, in control steps (0.5, 1 and 2 steps in the suites)."""
ACTION_DELAY = 1.0
"""Action delay at magnitude 1, in control steps: the middle magnitude (half a step, 25 ms) is
one the privileged expert still handles; a full step already costs it half its successes."""


def _lagged(history: deque, delay: float):
    """Where a signal was ``delay`` (fractional) steps ago: ``history[-1]`` is now; numbers are
    interpolated between the two neighbouring steps, anything else (images) takes the older."""
    k = int(math.floor(delay))
    f = delay - k
    newer = history[max(len(history) - 1 - k, 0)]
    older = history[max(len(history) - 2 - k, 0)]
    if f == 0.0:
        return newer
    if isinstance(newer, np.ndarray) and newer.dtype.kind == "f":
        return ((1.0 - f) * newer + f * older).astype(newer.dtype)
    return older


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


def _scale(base: float, mag: float, rng: np.random.Generator) -> float:
    """A multiplier ``base ** (±mag)``: as far from 1 as the magnitude says, either way."""
    return base ** (mag * _sign(rng))


class Perturbation:
    """The factors of the current episode, for one env."""

    def __init__(self, env: ManipulationEnv) -> None:
        m = env.model
        self._model = m
        self._nominal = {name: getattr(m, name).copy() for name in MODEL_ARRAYS}
        head = m.vis.headlight
        self._headlight = (head.ambient.copy(), head.diffuse.copy())
        self._cubes = [o.name for o in env.objects if o.kind == "cube"]
        self._cube_geoms = np.array([m.geom(n).id for n in self._cubes], dtype=np.intp)
        self._cube_bodies = np.array([m.body(n).id for n in self._cubes], dtype=np.intp)
        self._object_geoms = np.array(
            [m.geom(o.name).id for o in env.objects if o.kind in ("cube", "pad")], dtype=np.intp
        )
        self._table_geom = m.geom("table_top").id
        self._table_mat = m.material("table_top").id
        self._key_light = m.light("key").id
        self._arm_dofs = np.array([m.joint(j).dofadr[0] for j in ARM_JOINTS], dtype=np.intp)
        self._arm_actuators = np.arange(len(ARM_JOINTS))
        self._distractors = [
            (m.geom(f"distractor{i}").id, m.body(f"distractor{i}").mocapid[0])
            for i in range(len(DISTRACTOR_SHAPES))
        ]
        self._position_mask = self._object_positions(env)
        self.factors: dict[str, float] = {}
        self._observes = self._acts = False
        self.cube_half = CUBE_HALF
        self._rngs: dict[str, np.random.Generator] = {}
        self._changed = False
        self._obs_history: deque = deque()
        self._last_sent: dict[str, Any] | None = None
        self._actions: deque = deque()

    @staticmethod
    def _object_positions(env: ManipulationEnv) -> np.ndarray:
        mask = np.zeros(env.object_state_dim, dtype=bool)
        i = 0
        for obj in env.objects:
            mask[i : i + 3] = True
            i += (10 if obj.kind == "cube" else 3) + len(COLOR_NAMES)
        return mask

    # ------------------------------------------------------------------ per episode

    def begin(self, factors: dict[str, float], entropy: int) -> None:
        """Take the episode's factors; every factor gets its own stream from ``entropy``."""
        self.factors = dict(factors)
        self._observes = not OBSERVATION_FACTORS.isdisjoint(factors)
        self._acts = not ACTION_FACTORS.isdisjoint(factors)
        self._rngs = {
            name: np.random.default_rng([entropy, zlib.crc32(name.encode())]) for name in factors
        }
        self._obs_history.clear()
        self._actions.clear()
        self._last_sent = None

    def rng(self, name: str) -> np.random.Generator:
        return self._rngs[name]

    def use_heldout_phrasing(self) -> bool:
        m = self.factors.get("paraphrase", 0.0)
        return m > 0.0 and self.rng("paraphrase").random() < m

    def counterfactual(self, episode: Episode, kinds: dict[str, str]) -> Episode | None:
        """The episode with its instruction swapped (with the factor's probability), or None."""
        m = self.factors.get("counterfactual", 0.0)
        if m <= 0.0:
            return None
        rng = self.rng("counterfactual")
        if rng.random() >= m:
            return None
        return swap_instruction(episode, kinds, rng)

    def note_model_change(self) -> None:
        """Something else (a world event) changed the model: restore it before the next episode."""
        self._changed = True

    def restore(self) -> None:
        """Put back the nominal model (a no-op when the last episode changed nothing)."""
        if not self._changed:
            return
        m = self._model
        for name, value in self._nominal.items():
            np.copyto(getattr(m, name), value)
        m.vis.headlight.ambient[:] = self._headlight[0]
        m.vis.headlight.diffuse[:] = self._headlight[1]
        self.cube_half = CUBE_HALF
        self._changed = False

    def apply_model(self) -> None:
        """Change the model for this episode's model factors (after the episode's colours)."""
        m, f = self._model, self.factors
        model_factors = [n for n in f if n in _MODEL_FACTORS]
        if not model_factors:
            return
        self._changed = True
        for name in model_factors:
            _MODEL_FACTORS[name](self, m, f[name], self.rng(name))

    def place_distractors(self, env: ManipulationEnv, episode: Episode) -> None:
        """Put ``distractors`` on free spots of the table, away from the episode's objects
        (``mj_resetData`` has just put every distractor back under the table)."""
        m = self.factors.get("distractors", 0.0)
        if m <= 0.0:
            return
        rng = self.rng("distractors")
        taken = [(np.array(xyyaw[:2]), 0.08) for xyyaw in episode.placements.values()]
        count = int(math.ceil(len(self._distractors) * m - 1e-9))
        for (geom, mid), (_, _, rest_z) in zip(self._distractors[:count], DISTRACTOR_SHAPES):
            xy = free_spot(rng, taken, OBJECT_LOW - 0.03, OBJECT_HIGH + 0.03, attempts=200)
            taken.append((xy, 0.08))
            env.data.mocap_pos[mid] = (xy[0], xy[1], rest_z)
            colour = DISTRACTOR_COLORS[rng.integers(len(DISTRACTOR_COLORS))]
            self._model.geom_rgba[geom] = (*colour, 1.0)
            self._changed = True

    # ------------------------------------------------------------------ per step

    def observe(self, obs: dict[str, Any]) -> dict[str, Any]:
        """What the agent receives for the true observation ``obs``: delayed, dropped, noisy."""
        if not self._observes:
            return obs
        f = self.factors
        delay = OBSERVATION_DELAY * f.get("observation_delay", 0.0)
        if delay:
            self._obs_history.append(obs)
            while len(self._obs_history) > math.ceil(delay) + 1:
                self._obs_history.popleft()
            history = self._obs_history
            obs = {key: _lagged([o[key] for o in history], delay) for key in obs}
        out = dict(obs)
        drop = 0.5 * f.get("dropped_frames", 0.0)
        if drop and self._last_sent is not None and self.rng("dropped_frames").random() < drop:
            for key in out:
                if key.startswith(IMAGE_PREFIX) or key == OBJECT_STATE:
                    out[key] = self._last_sent[key]
        self._last_sent = out
        sent = dict(out)
        if f.get("image_noise", 0.0):
            rng, sigma = self.rng("image_noise"), 25.0 * f["image_noise"]
            for key in sent:
                if key.startswith(IMAGE_PREFIX):
                    noisy = sent[key] + rng.normal(0.0, sigma, sent[key].shape)
                    sent[key] = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        if f.get("proprio_noise", 0.0):
            sigma = np.full(sent[PROPRIO].shape, 0.01 * f["proprio_noise"])
            sigma[6:9] = sigma[14:19] = 0.1 * f["proprio_noise"]
            noise = self.rng("proprio_noise").normal(0.0, 1.0, sigma.shape) * sigma
            sent[PROPRIO] = (sent[PROPRIO] + noise).astype(np.float32)
        if f.get("object_state_noise", 0.0):
            noise = self.rng("object_state_noise").normal(
                0.0, 0.01 * f["object_state_noise"], sent[OBJECT_STATE].shape
            )
            sent[OBJECT_STATE] = (sent[OBJECT_STATE] + noise * self._position_mask).astype(
                np.float32
            )
        return sent

    def act(self, action: np.ndarray) -> np.ndarray:
        """The action the actuators execute for the commanded ``action``: late, noisy."""
        if not self._acts:
            return action
        f = self.factors
        delay = ACTION_DELAY * f.get("action_delay", 0.0)
        if delay:
            if not self._actions:
                self._actions.extend([HOLD_ACTION.copy()] * math.ceil(delay))
            self._actions.append(action)
            while len(self._actions) > math.ceil(delay) + 1:
                self._actions.popleft()
            action = _lagged(list(self._actions), delay)
        if f.get("action_noise", 0.0):
            noise = self.rng("action_noise").normal(0.0, 0.4 * f["action_noise"], action.shape)
            action = np.clip(action + noise, -1.0, 1.0)
        return action


# ---------------------------------------------------------------- model factors


def _object_shade(p: Perturbation, m: mujoco.MjModel, mag: float, rng: np.random.Generator) -> None:
    for g in p._object_geoms:
        scale = 1.0 + 0.5 * mag * rng.uniform(-1.0, 1.0, 3)
        m.geom_rgba[g, :3] = np.clip(m.geom_rgba[g, :3] * scale, 0.0, 1.0)


def _table_color(p: Perturbation, m: mujoco.MjModel, mag: float, rng: np.random.Generator) -> None:
    tint = rng.uniform(0.25, 1.0, 3)
    m.mat_rgba[p._table_mat, :3] = (1.0 - mag) * m.mat_rgba[p._table_mat, :3] + mag * tint


def _table_texture(
    p: Perturbation, m: mujoco.MjModel, mag: float, rng: np.random.Generator
) -> None:
    m.mat_texrepeat[p._table_mat] *= _scale(3.0, mag, rng)


def _light_intensity(
    p: Perturbation, m: mujoco.MjModel, mag: float, rng: np.random.Generator
) -> None:
    scale = _scale(2.5, mag, rng)
    m.light_diffuse[:] = np.clip(m.light_diffuse * scale, 0.0, 1.0)
    head = m.vis.headlight
    head.ambient[:] = np.clip(head.ambient * scale, 0.0, 1.0)
    head.diffuse[:] = np.clip(head.diffuse * scale, 0.0, 1.0)


def _light_direction(
    p: Perturbation, m: mujoco.MjModel, mag: float, rng: np.random.Generator
) -> None:
    angle = mag * 0.5 * math.pi * _sign(rng)
    c, s = math.cos(angle), math.sin(angle)
    x, y, z = m.light_pos[p._key_light]
    pos = np.array([c * x - s * y, s * x + c * y, z])
    m.light_pos[p._key_light] = pos
    m.light_dir[p._key_light] = -pos / np.linalg.norm(pos)


def _camera_pose(p: Perturbation, m: mujoco.MjModel, mag: float, rng: np.random.Generator) -> None:
    for cam in range(m.ncam):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        in_hand = m.cam_bodyid[cam] != 0
        m.cam_pos[cam] += (0.015 if in_hand else 0.08) * mag * direction
        if in_hand:  # a fixed camera also turns: up to 8 degrees about a random axis
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
            turn = np.zeros(4)
            mujoco.mju_axisAngle2Quat(turn, axis, math.radians(8.0) * mag)
            out = np.zeros(4)
            mujoco.mju_mulQuat(out, turn, m.cam_quat[cam].copy())
            m.cam_quat[cam] = out


def _camera_fov(p: Perturbation, m: mujoco.MjModel, mag: float, rng: np.random.Generator) -> None:
    m.cam_fovy[:] = m.cam_fovy * (1.0 + 0.25 * mag * _sign(rng))


def _object_mass(p: Perturbation, m: mujoco.MjModel, mag: float, rng: np.random.Generator) -> None:
    scale = _scale(4.0, mag, rng)
    m.body_mass[p._cube_bodies] *= scale
    m.body_inertia[p._cube_bodies] *= scale


def _object_friction(
    p: Perturbation, m: mujoco.MjModel, mag: float, rng: np.random.Generator
) -> None:
    m.geom_friction[p._cube_geoms, 0] *= _scale(3.0, mag, rng)


def _object_size(p: Perturbation, m: mujoco.MjModel, mag: float, rng: np.random.Generator) -> None:
    half = CUBE_HALF * (1.0 + 0.2 * mag * _sign(rng))
    m.geom_size[p._cube_geoms] = half
    m.geom_rbound[p._cube_geoms] = half * math.sqrt(3.0)
    m.geom_aabb[p._cube_geoms, 3:] = half
    p.cube_half = half


def _table_friction(
    p: Perturbation, m: mujoco.MjModel, mag: float, rng: np.random.Generator
) -> None:
    m.geom_friction[p._table_geom, 0] *= _scale(3.0, mag, rng)


def _joint_damping(
    p: Perturbation, m: mujoco.MjModel, mag: float, rng: np.random.Generator
) -> None:
    m.dof_damping[p._arm_dofs] *= _scale(4.0, mag, rng)


def _actuator_gain(
    p: Perturbation, m: mujoco.MjModel, mag: float, rng: np.random.Generator
) -> None:
    scale = _scale(2.5, mag, rng)
    m.actuator_gainprm[p._arm_actuators, 0] *= scale
    m.actuator_biasprm[p._arm_actuators, 1] *= scale


_MODEL_FACTORS = {
    "object_shade": _object_shade,
    "table_color": _table_color,
    "table_texture": _table_texture,
    "light_intensity": _light_intensity,
    "light_direction": _light_direction,
    "camera_pose": _camera_pose,
    "camera_fov": _camera_fov,
    "object_mass": _object_mass,
    "object_friction": _object_friction,
    "object_size": _object_size,
    "table_friction": _table_friction,
    "joint_damping": _joint_damping,
    "actuator_gain": _actuator_gain,
}
assert set(_MODEL_FACTORS) <= set(FACTORS)


# ---------------------------------------------------------------- language


def swap_instruction(
    episode: Episode, kinds: dict[str, str], rng: np.random.Generator, only: tuple[str, ...] = ()
) -> Episode:
    """The same scene with an instruction that names other objects of the same kinds.

    The colours of the scene's objects are permuted within each kind (``only``: just the
    objects in it may change) until the plan changes; the plan's names and the instruction's
    colour words follow the permutation. Needs every colour in the scene to be unique (it is
    in every task the counterfactual applies to).
    """
    colours = list(episode.colors.values())
    if len(set(colours)) != len(colours):
        raise ValueError(
            "a counterfactual instruction needs a scene whose colours are all distinct"
        )
    by_kind: dict[str, list[str]] = {}
    for body, colour in episode.colors.items():
        name = f"{colour}_{kinds[body]}"
        if not only or name in only:
            by_kind.setdefault(kinds[body], []).append(colour)
    for _ in range(100):
        mapping: dict[str, str] = {}
        for group in by_kind.values():
            mapping.update(zip(group, rng.permutation(group).tolist()))

        def rename(name: str | None) -> str | None:
            if name is None or "_" not in name:
                return name
            colour, kind = name.split("_", 1)
            return f"{mapping.get(colour, colour)}_{kind}"

        plan = [Subtask(s.verb, rename(s.obj), rename(s.dest)) for s in episode.plan]
        if plan != episode.plan:
            words = re.compile(r"\b(" + "|".join(COLOR_NAMES) + r")\b")
            text = words.sub(lambda w: mapping.get(w.group(1), w.group(1)), episode.instruction)
            return Episode(
                colors=dict(episode.colors),
                placements=dict(episode.placements),
                plan=plan,
                instruction=text,
                link_ends=list(episode.link_ends),
                push_goals=dict(episode.push_goals),
                target_heights=dict(episode.target_heights),
            )
    raise ValueError(f"no swap of {sorted(by_kind)} changes the plan {episode.plan}")
