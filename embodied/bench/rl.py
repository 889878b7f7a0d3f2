"""Benchmark of RL (issue 12): a residual over a frozen imitation agent against RL from scratch
at equal environment steps, learning curves (success vs env steps and vs wall-clock) and RL
throughput beside stable-baselines3's SAC on Gymnasium's ``Pusher-v5`` measured in the same run.

The runs per seed are named :data:`VARIANTS`: ``residual`` (over ``base``), reading the action it
executed one step earlier too (``residual-previous-action``; ``-gripper2-quiet``: with the
gripper's bound at 2 and a quiet start, see below), with an asymmetric
critic on privileged state (``residual-privileged``), with expert-guided episodes in its replay
buffer (``residual-demos``), both (``residual-privileged-demos``), and both with the gripper's
bound at 2 (``residual-privileged-demos-gripper2``: the correction can open and close the gripper),
and that with a quiet start (``-quiet``: the actor's log-std starts at -2, so its exploration does
not open and shut the gripper), that reading its previous action too
(``residual-privileged-demos-previous-action-gripper2-quiet``: the recipe that adapts a pixel
agent to a camera lag); ``scratch`` (state, the shaped reward),
``scratch-dense`` / ``scratch-sparse`` (the task's own rewards) and ``her`` (sparse goal reward
with hindsight experience replay on the goal-conditioned view).

Each run is an ordinary ``train rl`` run directory under ``OUT/runs``; a killed benchmark
resumes them. Results: ``OUT/results.json`` and ``OUT/curves.png``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from embodied.training.rl import RLConfig, train_rl
from sandbox_common.atomic import write_json_atomic
from sandbox_common.paths import portable_path

DEMO_EPISODES = 100
"""Expert-guided episodes in the buffer of the ``-demos`` residual variants."""
QUIET_LOG_STD = -2.0
"""The ``-quiet`` variant's starting log-std of the residual actor (a std of 0.14 before tanh)."""
_QUIET = {
    "privileged_critic": True,
    "demo_episodes": DEMO_EPISODES,
    "residual_gripper_scale": 2.0,
    "residual_log_std": QUIET_LOG_STD,
}
VARIANTS: dict[str, dict[str, Any]] = {
    "residual": {"residual": True},
    "residual-privileged": {"residual": True, "config": {"privileged_critic": True}},
    "residual-previous-action": {"residual": True, "config": {"residual_previous_action": True}},
    "residual-previous-action-gripper2-quiet": {
        "residual": True,
        "config": {
            "residual_previous_action": True,
            "residual_gripper_scale": 2.0,
            "residual_log_std": QUIET_LOG_STD,
        },
    },
    "residual-demos": {"residual": True, "config": {"demo_episodes": DEMO_EPISODES}},
    "residual-privileged-demos": {
        "residual": True,
        "config": {"privileged_critic": True, "demo_episodes": DEMO_EPISODES},
    },
    "residual-privileged-demos-gripper2": {
        "residual": True,
        "config": {
            "privileged_critic": True,
            "demo_episodes": DEMO_EPISODES,
            "residual_gripper_scale": 2.0,
        },
    },
    "residual-privileged-demos-gripper2-quiet": {"residual": True, "config": _QUIET},
    "residual-privileged-demos-previous-action-gripper2-quiet": {
        "residual": True,
        "config": {**_QUIET, "residual_previous_action": True},
    },
    "scratch": {"reward": "shaped"},
    "scratch-dense": {"reward": "dense"},
    "scratch-sparse": {"reward": "sparse"},
    "her": {"config": {"her": True}},
}
"""The runs ``bench rl`` can make per seed: over the base or not, the reward, the ``RLConfig``
fields each changes (see the module docstring)."""


def pusher_throughput(steps: int = 2_000, seed: int = 0) -> dict[str, float]:
    """Env steps per second of SB3 SAC (default settings, 1 thread) on ``Pusher-v5``, learning
    from step 100: the reference an RL user knows."""
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import Logger

    env = gym.make("Pusher-v5")
    model = SAC("MlpPolicy", env, learning_starts=100, seed=seed, device="cpu", verbose=0)
    model.set_logger(Logger(folder=None, output_formats=[]))  # no /tmp/SB3-<time> folder
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    env.close()
    return {"steps": steps, "seconds": round(seconds, 1), "steps_per_s": steps / seconds}


def bench_rl(
    base: str | Path | None,
    out: str | Path,
    task: str = "pick-place",
    steps: int = 50_000,
    seeds: tuple[int, ...] = (0,),
    algo: str = "sac",
    eval_every: int = 5_000,
    eval_episodes: int = 50,
    pusher_steps: int = 2_000,
    progress: bool = True,
    variants: tuple[str, ...] = ("residual", "scratch"),
    factors: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The ``variants`` runs (:data:`VARIANTS`) per seed; returns the results. ``factors``: a
    fixed deployment condition every run trains and is evaluated under (``train rl --factors``)."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"unknown RL variants {unknown}; accepted: {', '.join(VARIANTS)}")
    if any(VARIANTS[v].get("residual") for v in variants) and base is None:
        raise ValueError("the residual variant needs the imitation agent it corrects: base")
    out = Path(out)
    results: dict[str, Any] = {
        "settings": {
            "base": portable_path(base) if base is not None else None,
            "variants": list(variants),
            "task": task,
            "steps": steps,
            "seeds": list(seeds),
            "algo": algo,
            "eval_every": eval_every,
            "eval_episodes": eval_episodes,
            "factors": dict(factors or {}),
        },
        "runs": {},
    }
    config = RLConfig(algo=algo, steps=steps, eval_every=eval_every,
                      eval_episodes=eval_episodes, checkpoint_every=eval_every)  # fmt: skip
    for seed in seeds:
        for name in variants:
            run = out / "runs" / f"{name}-s{seed}"
            variant = VARIANTS[name]
            report = train_rl(
                task, run, replace(config, **variant.get("config", {})), seed=seed,
                init=base if variant.get("residual") else None, reward=variant.get("reward"),
                progress=progress, factors=factors,
            )  # fmt: skip
            if "stopped_at" in report:
                report = json.loads((run / "train.json").read_text())
            results["runs"][f"{name}-s{seed}"] = {
                "kind": name,
                "seed": seed,
                "evals": report["evals"],
                "train_seconds": report["train_seconds"],
                "env_steps_per_s": report["env_steps"] / max(report["train_seconds"], 1e-9),
            }
            write_json_atomic(out / "results.json", results)
    results["pusher_sac"] = pusher_throughput(pusher_steps)
    results["curves"] = plot_curves(results, out / "curves.png").name
    write_json_atomic(out / "results.json", results)
    return results


def plot_curves(results: dict[str, Any], path: Path) -> Path:
    """Success vs env steps and vs wall-clock, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    for name, run in results["runs"].items():
        evals = run["evals"]
        style = (
            "-" if run["kind"].startswith("residual") else "-." if run["kind"] == "her" else "--"
        )
        ys = [100 * e["success_rate"] for e in evals]
        axes[0].plot([e["env_steps"] for e in evals], ys, style, marker="o", label=name)
        axes[1].plot([e["seconds"] / 60 for e in evals], ys, style, marker="o", label=name)
    for ax, label in zip(axes, ("environment steps", "wall-clock (min)")):
        ax.set_xlabel(label)
        ax.set_ylabel("success % (held-out seeds)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    names = ", ".join(results["settings"].get("variants", ("residual", "scratch")))
    fig.suptitle(f"{results['settings']['task']}: RL runs ({names})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def format_summary(results: dict[str, Any]) -> str:
    lines = ["| run | first eval | last eval | best | env steps/s |", "|---|---|---|---|---|"]
    for name, run in results["runs"].items():
        evals = run["evals"]
        pct = [f"{100 * e['success_rate']:.0f}% @ {e['env_steps']}" for e in (evals[0], evals[-1])]
        best = max(e["success_rate"] for e in evals)
        lines.append(f"| {name} | {pct[0]} | {pct[1]} | {100 * best:.0f}% | "
                     f"{run['env_steps_per_s']:.1f} |")  # fmt: skip
    if "pusher_sac" in results:
        lines.append(
            f"\nSB3 SAC on Pusher-v5, same run: {results['pusher_sac']['steps_per_s']:.1f} env steps/s"
        )
    return "\n".join(lines)
