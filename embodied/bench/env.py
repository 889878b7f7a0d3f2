"""Environment throughput benchmark: our tasks against raw physics and the peers a user would pick.

Everything runs in this one process pinned to one core, one measurement at a time, so the
ratios (ours / raw MuJoCo on the same model, ours / FetchPush-v4) compare like with like.
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from collections.abc import Callable
from typing import Any

import mujoco
import numpy as np

import envs

PEERS = {
    "FetchPush-v4": ("gymnasium_robotics", "FetchPush-v4", {}),
    "Meta-World push-v3": ("metaworld", "Meta-World/MT1", {"env_name": "push-v3"}),
    "Pusher-v5": (None, "Pusher-v5", {}),
}


def pin_to_one_core() -> int | None:
    """Run on one CPU, like a single env worker would; return the core, or None where unsupported."""
    try:
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return core
    except (AttributeError, OSError):
        return None


def _rate(run: Callable[[int], None], steps: int, repeats: int = 3) -> float:
    """Best of ``repeats`` runs of ``run(steps)``, in steps per second (best: least disturbed)."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps)
        best = max(best, steps / (time.perf_counter() - start))
    return best


def _gym_loop(env: Any, seed: int = 0) -> Callable[[int], None]:
    rng = np.random.default_rng(seed)
    space = env.action_space
    actions = rng.uniform(space.low, space.high, size=(4096, *space.shape)).astype(space.dtype)
    env.reset(seed=seed)

    def run(steps: int) -> None:
        for i in range(steps):
            _, _, terminated, truncated, _ = env.step(actions[i % len(actions)])
            if terminated or truncated:
                env.reset()

    return run


def bench_task(task: str, steps: int) -> dict[str, Any]:
    """Our env with random actions, against raw ``mj_step`` replaying the very same controls.

    The env runs one long episode (no truncation, no termination) so that the replay starts from
    the same reset state and, MuJoCo being deterministic, goes through the same contacts: the
    ratio isolates what the env adds (IK, observations, subtasks, rewards) over the physics.
    """
    out: dict[str, Any] = {"gym_id": envs.gym_id(task)}
    env = envs.make(task, obs_mode="state", max_steps=10**9, terminate_on_success=False)
    skip = env.config.frame_skip
    out["frame_skip"] = skip
    model, data = env.model, env.data
    actions = np.random.default_rng(0).uniform(-1, 1, size=(steps, 5)).astype(np.float32)
    controls = np.zeros((steps, model.nu))

    def env_run(n: int) -> None:
        env.reset(seed=0)
        for i in range(n):
            env.step(actions[i])
            controls[i] = data.ctrl

    def raw_run(n: int) -> None:
        env.reset(seed=0)
        for i in range(n):
            data.ctrl[:] = controls[i]
            mujoco.mj_step(model, data, nstep=skip)

    out["state_steps_per_s"] = _rate(env_run, steps)
    out["raw_physics_steps_per_s"] = _rate(
        raw_run, steps
    )  # control-step equivalents: frame_skip mj_steps each
    out["state_over_raw"] = out["state_steps_per_s"] / out["raw_physics_steps_per_s"]
    env.close()

    for cameras in (("front",), ("front", "wrist")):
        env = envs.make(task, obs_mode="pixels", image_size=64, cameras=cameras)
        rate = _rate(_gym_loop(env), max(steps // 4, 50))
        key = "+".join(cameras)
        out[f"pixels64_{key}_steps_per_s"] = rate
        out[f"pixels64_{key}_frames_per_s"] = rate * len(cameras)
        env.close()
    return out


def bench_peer(label: str, steps: int) -> dict[str, Any]:
    import gymnasium as gym

    module, env_id, kwargs = PEERS[label]
    try:
        if module is not None:
            mod = __import__(module)
            if module == "gymnasium_robotics":
                gym.register_envs(mod)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = gym.make(env_id, **kwargs)
            rate = _rate(_gym_loop(env), steps)
        unwrapped = env.unwrapped
        skip = getattr(unwrapped, "n_substeps", None) or getattr(unwrapped, "frame_skip", None)
        env.close()
        return {"steps_per_s": rate, "substeps": skip}
    except Exception as exc:  # a missing optional peer is reported, not fatal
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}


def run_env_benchmark(
    tasks: list[str] | None = None, steps: int = 2000, peers: bool = True
) -> dict[str, Any]:
    """Run every measurement on one core; the process's CPU affinity is restored afterwards."""
    try:
        saved = os.sched_getaffinity(0)
    except AttributeError:
        saved = None
    try:
        return _run_env_benchmark(tasks, steps, peers)
    finally:
        if saved is not None:
            os.sched_setaffinity(0, saved)


def _run_env_benchmark(tasks: list[str] | None, steps: int, peers: bool) -> dict[str, Any]:
    core = pin_to_one_core()
    tasks = tasks or envs.TASKS.names()
    result: dict[str, Any] = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "pinned_core": core,
            "python": platform.python_version(),
            "mujoco": mujoco.__version__,
            "gl_backend": os.environ.get("MUJOCO_GL"),
        },
        "steps": steps,
        "tasks": {},
        "peers": {},
    }
    if peers:
        result["peers"]["FetchPush-v4"] = bench_peer("FetchPush-v4", steps)
    for task in tasks:
        result["tasks"][task] = bench_task(task, steps)
    if peers:
        for label in PEERS:
            if label != "FetchPush-v4":
                result["peers"][label] = bench_peer(label, steps)
        fetch = result["peers"]["FetchPush-v4"].get("steps_per_s")
        if fetch:
            for task_result in result["tasks"].values():
                task_result["state_over_fetchpush"] = task_result["state_steps_per_s"] / fetch
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [
        "| task | state steps/s | raw physics steps/s | state/raw | state/FetchPush | 64px front fps | 64px front+wrist frames/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, r in result["tasks"].items():
        lines.append(
            f"| {task} | {r['state_steps_per_s']:.0f} | {r['raw_physics_steps_per_s']:.0f} | "
            f"{r['state_over_raw']:.2f} | {r.get('state_over_fetchpush', float('nan')):.2f} | "
            f"{r['pixels64_front_frames_per_s']:.0f} | {r['pixels64_front+wrist_frames_per_s']:.0f} |"
        )
    for label, r in result["peers"].items():
        if "steps_per_s" in r:
            lines.append(f"| peer {label} | {r['steps_per_s']:.0f} | | | | | |")
        else:
            lines.append(f"| peer {label} | unavailable: {r['error']} | | | | | |")
    return "\n".join(lines)
