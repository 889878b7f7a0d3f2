"""The shared machinery of every task: physics, control, observations, subtasks, rewards, rendering.

A task (one file under ``envs/tasks/``) subclasses :class:`ManipulationEnv` and says only
which objects its scene holds, how an episode is drawn from ``self.np_random`` (colours,
placements, the plan of subtasks and the instruction) and, where it differs from "every subtask
done", when it is a success.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.instructions import GENERATED_SPLITS, describe
from envs.language import (
    COLOR_NAMES,
    COLORS,
    DIRECTIONS,
    HELDOUT_TEMPLATES,
    Subtask,
    is_heldout_pair,
    phrase,
    plan_pairs,
)
from envs.observation import (  # re-exported: the env's observation keys and sizes
    CAMERAS,
    IMAGE_PREFIX,
    INSTRUCTION,
    OBJECT_KINDS,
    OBJECT_STATE,
    OBS_BOUND,
    PROPRIO,
    PROPRIO_DIM,
    ObservationsAndRendering,
    _close_renderers,
)
from envs.robot import ARM_JOINTS, FINGER_JOINTS, FINGER_OPEN, ArmController, IKConfig
from envs.scene import ObjectSpec, build_model
from envs.subtasks import (  # re-exported: the subtask tolerances
    LIFT_HEIGHT,
    PLACE_XY,
    PUSH_TOLERANCE,
    REACH_TOLERANCE,
    SubtaskTracking,
)
from envs.task_config import OBS_MODES, REWARD_TYPES, Episode, TaskConfig
from envs.variation import Variation

__all__ = [  # the names other modules import from here, including those defined beside it
    "ACTION_DIM",
    "CAMERAS",
    "ENV_VERSION",
    "IMAGE_PREFIX",
    "INSTRUCTION",
    "LIFT_HEIGHT",
    "MAX_REACH",
    "OBJECT_KINDS",
    "OBJECT_STATE",
    "OBS_BOUND",
    "OBS_MODES",
    "PLACE_XY",
    "POS_STEP",
    "PROPRIO",
    "PROPRIO_DIM",
    "PUSH_DISTANCE",
    "PUSH_TOLERANCE",
    "REACH_TOLERANCE",
    "REWARD_TYPES",
    "YAW_LIMIT",
    "YAW_STEP",
    "Episode",
    "ManipulationEnv",
    "TaskConfig",
]

ENV_VERSION = "0.2.0"
"""Bumped whenever dynamics, observations or rewards change; recorded in every dataset."""

INSTRUCTION_CHARSET = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.;:'-()_"
)
INSTRUCTION_MAX_LEN = 400

ACTION_DIM = 5
"""Action: end-effector delta x, y, z, delta yaw, gripper (+1 close, -1 open), each in [-1, 1]."""
POS_STEP = 0.025
"""Metres of end-effector target motion per control step at action 1."""
YAW_STEP = 0.15
"""Radians of yaw target motion per control step at action 1."""
YAW_LIMIT = 1.7
WORKSPACE_LOW = np.array([-0.32, -0.32, 0.012])
WORKSPACE_HIGH = np.array([0.25, 0.32, 0.35])
MAX_LEAD = 0.06
"""The pose target never runs further than this ahead of the real end effector (m)."""
HOME_POS = np.array([-0.12, 0.0, 0.22])
MAX_REACH = 0.62
"""Largest horizontal distance of the end-effector target from the arm's base axis (m)."""

PUSH_DISTANCE = 0.12
"""How far "push the cube left" moves it (m)."""


class ManipulationEnv(Variation, SubtaskTracking, ObservationsAndRendering, gym.Env):
    """A five-joint arm with a parallel gripper at a table, driven by end-effector deltas."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 20}
    task_name: ClassVar[str] = ""

    def __init__(self, config: TaskConfig, render_mode: str | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = config
        self.render_mode = render_mode
        self.objects: tuple[ObjectSpec, ...] = self._scene_objects()
        self.model = build_model(self.objects)
        self.data = mujoco.MjData(self.model)
        self.controller = ArmController(self.model, IKConfig())
        self._control_dt = float(self.model.opt.timestep * config.frame_skip)
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self.control_dt))}

        m = self.model
        qadr = [int(m.joint(j).qposadr[0]) for j in ARM_JOINTS]
        dadr = [int(m.joint(j).dofadr[0]) for j in ARM_JOINTS]
        if qadr != list(range(qadr[0], qadr[0] + 5)) or dadr != list(range(dadr[0], dadr[0] + 5)):
            raise RuntimeError(f"arm joints must be contiguous in qpos/qvel, got {qadr}, {dadr}")
        self._arm_qadr = slice(qadr[0], qadr[0] + 5)
        self._arm_dadr = slice(dadr[0], dadr[0] + 5)
        self._finger_qadr = np.array([m.joint(j).qposadr[0] for j in FINGER_JOINTS])
        self._finger_geoms = (m.geom("finger_left").id, m.geom("finger_right").id)
        self._ee_site = m.site("ee").id
        self._base_xy = m.body("arm_base").pos[:2].copy()
        self._body = {o.name: m.body(o.name).id for o in self.objects}
        self._kinds = {o.name: o.kind for o in self.objects}
        self._geom = {o.name: m.geom(o.name).id for o in self.objects}
        self._qadr = {o.name: m.joint(o.name).qposadr[0] for o in self.objects if o.kind == "cube"}
        self._dadr = {o.name: m.joint(o.name).dofadr[0] for o in self.objects if o.kind == "cube"}
        self._mocap = {
            o.name: m.body(o.name).mocapid[0] for o in self.objects if o.kind == "target"
        }
        bad = [
            int(w)
            for w in (
                mujoco.mjtWarning.mjWARN_BADQPOS,
                mujoco.mjtWarning.mjWARN_BADQVEL,
                mujoco.mjtWarning.mjWARN_BADQACC,
            )
        ]
        self._instability_warnings = np.array(bad)

        self.home_q = self.controller.solve_converged(
            np.array([0.0, 0.3, 1.2, 0.1, 0.0]), HOME_POS, 0.0
        )

        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), dtype=np.float32)
        obs_spaces: dict[str, spaces.Space] = {}
        if config.obs_mode == "pixels":
            size = config.image_size
            for cam in config.cameras:
                obs_spaces[IMAGE_PREFIX + cam] = spaces.Box(0, 255, (size, size, 3), dtype=np.uint8)
        obs_spaces[PROPRIO] = spaces.Box(-OBS_BOUND, OBS_BOUND, (PROPRIO_DIM,), dtype=np.float32)
        obs_spaces[OBJECT_STATE] = spaces.Box(
            -OBS_BOUND, OBS_BOUND, (self.object_state_dim,), dtype=np.float32
        )
        obs_spaces[INSTRUCTION] = spaces.Text(
            INSTRUCTION_MAX_LEN, min_length=1, charset="".join(sorted(INSTRUCTION_CHARSET))
        )
        self.observation_space = spaces.Dict(obs_spaces)

        self._renderers: dict[str, mujoco.Renderer] = {}
        self._exit_hook: functools.partial | None = None
        weakref.finalize(self, _close_renderers, self._renderers)  # collected without close()
        self._episode: Episode | None = None
        self._semantic: dict[str, str] = {}
        self._seed: int | None = None
        self._last_obs: dict[str, Any] | None = None
        self._proprio_buffer = np.zeros(PROPRIO_DIM, dtype=np.float32)
        self._step_count = 0
        self._reset_count = 0
        self._contacts_key: tuple[int, int] | None = None
        self._contacts: tuple[set[int], set[int]] = (set(), set())
        self._init_variation()

    # ------------------------------------------------------------------ task hooks

    def _scene_objects(self) -> tuple[ObjectSpec, ...]:
        raise NotImplementedError

    def _sample_episode(self, rng: np.random.Generator) -> Episode:
        raise NotImplementedError

    def _check_success(self) -> bool:
        """Default: every subtask of the plan is done."""
        return self._progress >= len(self.plan)

    # ------------------------------------------------------------------ properties

    @property
    def control_dt(self) -> float:
        return self._control_dt

    @property
    def object_state_dim(self) -> int:
        per_kind = {
            "cube": 3 + 4 + 3 + len(COLOR_NAMES),
            "pad": 3 + len(COLOR_NAMES),
            "target": 3 + len(COLOR_NAMES),
        }
        return sum(per_kind[o.kind] for o in self.objects)

    @property
    def plan(self) -> list[Subtask]:
        return self._require_episode().plan

    @property
    def instruction(self) -> str:
        return self._require_episode().instruction

    @property
    def current_subtask(self) -> Subtask | None:
        plan = self.plan
        return plan[self._progress] if self._progress < len(plan) else None

    @property
    def names(self) -> dict[str, str]:
        """Semantic name (``red_cube``) -> body name (``cube0``) for this episode."""
        self._require_episode()
        return dict(self._semantic)

    def _require_episode(self) -> Episode:
        if self._episode is None:
            raise RuntimeError("call reset() before using the environment")
        return self._episode

    # ------------------------------------------------------------------ privileged state (experts)

    def body_of(self, name: str) -> str:
        """Body name of a semantic object name; body names pass through."""
        if name in self._body:
            return name
        try:
            return self._semantic[name]
        except KeyError:
            raise KeyError(
                f"no object {name!r} in this episode; objects: {sorted(self._semantic)}"
            ) from None

    def object_pos(self, name: str) -> np.ndarray:
        body = self.body_of(name)
        return self.data.xpos[self._body[body]].copy()

    def object_yaw(self, name: str) -> float:
        w, x, y, z = self.data.xquat[self._body[self.body_of(name)]]
        return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))

    @property
    def ee_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._ee_site].copy()

    @property
    def ee_yaw(self) -> float:
        rot = self.data.site_xmat[self._ee_site]
        return float(np.arctan2(rot[3], rot[0]))

    @property
    def base_xy(self) -> np.ndarray:
        """xy of the arm's base axis (the hand's reach is measured from it)."""
        return self._base_xy.copy()

    @property
    def gripper_opening(self) -> float:
        """0 closed .. 1 fully open."""
        left, right = self._finger_qadr
        qpos = self.data.qpos
        return float((qpos[left] + qpos[right]) * (0.5 / FINGER_OPEN))

    def _finger_contacts(self) -> tuple[set[int], set[int]]:
        """Geoms touching the left and the right finger, computed once per physics state."""
        key = (self._step_count, self._reset_count)
        if self._contacts_key != key:
            left, right = self._finger_geoms
            touching_left: set[int] = set()
            touching_right: set[int] = set()
            c = self.data.contact
            for g1, g2 in zip(c.geom1.tolist(), c.geom2.tolist()):
                if g1 == left or g2 == left:
                    touching_left.add(g2 if g1 == left else g1)
                elif g1 == right or g2 == right:
                    touching_right.add(g2 if g1 == right else g1)
            self._contacts = (touching_left, touching_right)
            self._contacts_key = key
        return self._contacts

    def _touching(self, geom: int) -> tuple[bool, bool]:
        left, right = self._finger_contacts()
        return geom in left, geom in right

    def is_grasped(self, name: str) -> bool:
        left, right = self._touching(self._geom[self.body_of(name)])
        return left and right

    def is_touched(self, name: str) -> bool:
        left, right = self._touching(self._geom[self.body_of(name)])
        return left or right

    def push_goal(self, subtask: Subtask) -> np.ndarray:
        """Goal xy of a push: a pad's centre, or the drawn point for a push in a direction."""
        if subtask.dest in DIRECTIONS:
            return np.array(self._require_episode().push_goals[subtask.label])
        return self.object_pos(subtask.dest)[:2]

    # ------------------------------------------------------------------ language splits

    def phrase(self, kind: str, rng: np.random.Generator, **names: str) -> str:
        """An instruction clause in the words of this env's language split."""
        unseen = self.config.language == "unseen-paraphrase" or self._heldout_phrasing
        return phrase(kind, rng, HELDOUT_TEMPLATES if unseen else None, **names)

    def _draw_episode(self, rng: np.random.Generator, attempts: int = 500) -> Episode:
        """The task's episode, redrawn until its colour/destination combinations fit the
        language split (``all`` takes the first draw, so its episodes never change)."""
        split = self.config.language
        for _ in range(attempts):
            episode = self._sample_episode(rng)
            if split in ("all", "templates"):
                return episode
            if split in GENERATED_SPLITS:
                scene = [f"{episode.colors[o.name]}_{o.kind}" for o in self.objects]
                episode.instruction, self._phenomena = describe(
                    self.task_name, episode.plan, scene, rng, split
                )
                return episode
            pairs = plan_pairs(episode.plan)
            if split == "unseen-composition" and not pairs:
                raise ValueError(
                    f"{self.task_name} instructions pair no cube with a destination, so it has no "
                    "unseen compositions; language='unseen-composition' applies to pick-place, "
                    "push, stack and chain"
                )
            heldout = any(is_heldout_pair(c, dest) for c, dest in pairs)
            if heldout == (split == "unseen-composition"):
                return episode
        raise RuntimeError(f"no {split!r} episode of {self.task_name} in {attempts} draws")

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._seed = int(seed)
        self._begin_variation(options)
        m, d = self.model, self.data
        self._phenomena: dict[str, str] = {}
        episode = self._vary_episode(self._draw_episode(self.np_random))
        self._episode = episode
        self._semantic = {}
        for body, color in episode.colors.items():
            self._semantic[f"{color}_{self._kinds[body]}"] = body
            m.geom_rgba[self._geom[body], :3] = COLORS[color]
        self._color_index = {body: COLOR_NAMES.index(c) for body, c in episode.colors.items()}
        self.perturbation.apply_model()
        self._sync_renderers()

        mujoco.mj_resetData(m, d)
        d.qpos[self._arm_qadr] = self.home_q
        d.qpos[self._finger_qadr] = FINGER_OPEN
        d.ctrl[:5] = self.home_q
        d.ctrl[5:7] = FINGER_OPEN
        for obj in self.objects:
            x, y, yaw = episode.placements[obj.name]
            if obj.kind == "cube":
                a = self._qadr[obj.name]
                d.qpos[a : a + 3] = (x, y, self.cube_half)
                d.qpos[a + 3 : a + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
            elif obj.kind == "pad":
                m.body_pos[self._body[obj.name]] = (x, y, 0.0)
            else:
                d.mocap_pos[self._mocap[obj.name]] = (
                    x,
                    y,
                    episode.target_heights.get(obj.name, 0.1),
                )
        self.perturbation.place_distractors(self, episode)
        mujoco.mj_forward(m, d)
        self._layout_object_state()

        self._q_target = self.home_q.copy()
        self._target_pos = self.ee_pos
        self._target_yaw = 0.0
        self._prev_ee = self.ee_pos
        self._step_count = 0
        self._reset_count += 1
        self._progress = 0
        self._update_subtasks()
        self._start_events()
        obs = self.perturbation.observe(self._observation())
        self._last_obs = obs
        return obs, self._info(
            success=self._check_success(), completed=[], reverted=[], unstable=False
        )

    def _validate_action(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (ACTION_DIM,):
            raise ValueError(
                f"action must have shape ({ACTION_DIM},) = [dx, dy, dz, dyaw, gripper], got shape {a.shape}"
            )
        if not np.isfinite(a).all():
            raise ValueError(f"action must be finite, got {a.tolist()} (NaN or inf)")
        return np.minimum(np.maximum(a, -1.0), 1.0)

    def step(self, action: Any):
        self._require_episode()
        a = self.perturbation.act(self._validate_action(action))
        m, d = self.model, self.data
        ee = self.ee_pos
        target = self._target_pos + a[:3] * POS_STEP
        target = np.minimum(np.maximum(target, ee - MAX_LEAD), ee + MAX_LEAD)
        target = np.minimum(np.maximum(target, WORKSPACE_LOW), WORKSPACE_HIGH)
        radial = target[:2] - self._base_xy
        reach = float(np.hypot(radial[0], radial[1]))
        if reach > MAX_REACH:  # keep the target where the arm can follow it
            target[:2] = self._base_xy + radial * (MAX_REACH / reach)
        self._target_pos = target
        self._target_yaw = min(
            max(self._target_yaw + float(a[3]) * YAW_STEP, -YAW_LIMIT), YAW_LIMIT
        )
        self._q_target = self.controller.solve(self._q_target, self._target_pos, self._target_yaw)
        d.ctrl[:5] = self._q_target
        d.ctrl[5:7] = FINGER_OPEN * (1.0 - a[4]) / 2.0

        self._prev_ee = ee
        bad_before = self._instability_count()
        mujoco.mj_step(m, d, nstep=self.config.frame_skip)
        self._step_count += 1
        truncated = self._step_count >= self.config.max_steps

        unstable = self._instability_count() > bad_before or not np.isfinite(d.qpos).all()
        if unstable:
            # MuJoCo reset the state or it holds NaNs: end the episode, hand back the last good observation.
            info = self._info(success=False, completed=[], reverted=[], unstable=True)
            return self._last_obs, 0.0, True, truncated, info

        completed, reverted = self._update_subtasks()
        self._fire_events(completed)
        success = self._check_success()
        if success and self._progress < len(self.plan):  # a state-based success completes the plan
            completed += [s.label for s in self.plan[self._progress :]]
            self._progress = len(self.plan)
        obs = self.perturbation.observe(self._observation())
        self._last_obs = obs
        info = self._info(success=success, completed=completed, reverted=reverted, unstable=False)
        reward = (
            info["reward_dense"] if self.config.reward_type == "dense" else info["reward_sparse"]
        )
        terminated = bool(success and self.config.terminate_on_success)
        return obs, float(reward), terminated, truncated, info

    def _instability_count(self) -> int:
        """How often MuJoCo found NaN / huge positions, velocities or accelerations (it then resets)."""
        return int(self.data.warning.number[self._instability_warnings].sum())

    def _info(
        self, *, success: bool, completed: list[str], reverted: list[str], unstable: bool
    ) -> dict:
        plan = self.plan
        current = self.current_subtask
        if success:
            dense = 1.0
        else:
            shaping = self._subtask_shaping(current) if current is not None else 0.0
            dense = (min(self._progress, len(plan) - 1) + 0.99 * shaping) / len(plan)
        return {
            "success": bool(success),
            "is_success": bool(success),
            "subtask": current.label if current is not None else "none",
            "subtask_index": int(self._progress),
            "plan": [s.label for s in plan],
            "num_subtasks": len(plan),
            "subtasks_completed": completed,
            "subtasks_reverted": reverted,
            "links_completed": self.links_completed(),
            "num_links": len(self._require_episode().link_ends),
            "instruction": self.instruction,
            "phenomena": dict(self._phenomena),
            "seed": self._seed,
            "task": self.task_name,
            "language": self.config.language,
            "reward_dense": float(dense),
            "reward_sparse": float(success),
            "unstable": bool(unstable),
        } | self._variation_info()
