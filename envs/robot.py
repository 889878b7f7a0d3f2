"""The arm's end-effector controller: damped least-squares IK from pose targets to joint targets.

The task is the 6-D pose of the site ``ee``: a position and a "fingers pointing down, rotated by
yaw" orientation. The arm has 5 joints; the orientation target is always consistent with its
kinematics (three parallel pitch axes under a base yaw), so the damped least-squares iteration
converges to an exact solution. The result goes to stiff position servos.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

ARM_JOINTS: tuple[str, ...] = ("j1", "j2", "j3", "j4", "j5")
FINGER_JOINTS: tuple[str, ...] = ("finger_left", "finger_right")
FINGER_OPEN = 0.045
"""Finger slide position when fully open (m); 0 is closed."""


def yaw_rotation(yaw: float) -> np.ndarray:
    """Rotation matrix of the hand pointing down, turned by ``yaw`` about the world z axis."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class IKConfig:
    """Damped least-squares settings."""

    damping: float = 0.02
    """Levenberg-Marquardt damping lambda (larger: smoother near singularities, slower convergence)."""
    iterations: int = 1
    """Newton iterations per control step, warm-started from the previous joint targets."""
    rotation_weight: float = 0.3
    """Weight of the orientation error (rad) against the position error (m)."""

    def __post_init__(self) -> None:
        if self.damping <= 0 or self.iterations < 1 or self.rotation_weight <= 0:
            raise ValueError(
                f"invalid IKConfig {self}: damping, iterations and rotation_weight must be > 0"
            )


class ArmController:
    """Turns end-effector pose targets into joint position targets."""

    def __init__(
        self, model: mujoco.MjModel, config: IKConfig = IKConfig(), site: str = "ee"
    ) -> None:
        self.model = model
        self.config = config
        self._scratch = mujoco.MjData(model)
        self.site_id = model.site(site).id
        joints = [model.joint(name) for name in ARM_JOINTS]
        self.qpos_adr = np.array([j.qposadr[0] for j in joints])
        self.dof_adr = np.array([j.dofadr[0] for j in joints])
        self.lower = np.array([j.range[0] for j in joints])
        self.upper = np.array([j.range[1] for j in joints])
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        n = len(joints)
        self._damp = np.eye(n) * config.damping**2
        self._jac = np.zeros((6, n))
        self._normal = np.zeros((n, n))
        self._rhs = np.zeros(n)
        self._dq = np.zeros(n)
        self._error = np.zeros(6)

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Site position (3,) and rotation (3, 3) at arm joint positions ``q`` (5,)."""
        s = self._scratch
        s.qpos[self.qpos_adr] = q
        mujoco.mj_kinematics(self.model, s)
        return s.site_xpos[self.site_id].copy(), s.site_xmat[self.site_id].reshape(3, 3).copy()

    def solve(self, q_seed: np.ndarray, target_pos: np.ndarray, target_yaw: float) -> np.ndarray:
        """Joint targets (5,) that bring the site to ``target_pos`` with the hand turned by ``target_yaw``."""
        m, s, cfg, site = self.model, self._scratch, self.config, self.site_id
        target_rot = yaw_rotation(target_yaw)
        q = np.minimum(np.maximum(q_seed, self.lower), self.upper)
        error, jac, normal, rhs, dq = self._error, self._jac, self._normal, self._rhs, self._dq
        half_w = 0.5 * cfg.rotation_weight
        for _ in range(cfg.iterations):
            s.qpos[self.qpos_adr] = q
            mujoco.mj_kinematics(m, s)
            mujoco.mj_comPos(m, s)
            rot = s.site_xmat[site].reshape(3, 3)
            error[:3] = target_pos - s.site_xpos[site]
            # orientation error 0.5 * sum_i rot[:, i] x target[:, i]: the axial vector of target @ rot.T
            rel = target_rot @ rot.T
            error[3] = half_w * (rel[2, 1] - rel[1, 2])
            error[4] = half_w * (rel[0, 2] - rel[2, 0])
            error[5] = half_w * (rel[1, 0] - rel[0, 1])
            mujoco.mj_jacSite(m, s, self._jacp, self._jacr, site)
            jac[:3] = self._jacp[:, self.dof_adr]
            jac[3:] = self._jacr[:, self.dof_adr]
            jac[3:] *= cfg.rotation_weight
            # damped least squares: (J^T J + lambda^2 I) dq = J^T e, by Cholesky in MuJoCo's C
            np.matmul(jac.T, jac, out=normal)
            normal += self._damp
            np.matmul(jac.T, error, out=rhs)
            mujoco.mju_cholFactor(normal, 0.0)
            mujoco.mju_cholSolve(dq, normal, rhs)
            q += dq
            np.minimum(np.maximum(q, self.lower, out=q), self.upper, out=q)
        return q

    def solve_converged(
        self, q_seed: np.ndarray, target_pos: np.ndarray, target_yaw: float, steps: int = 100
    ) -> np.ndarray:
        """Many iterations from ``q_seed``: used once at reset to find the home pose."""
        q = np.asarray(q_seed, dtype=np.float64)
        for _ in range(steps):
            q = self.solve(q, target_pos, target_yaw)
        return q
