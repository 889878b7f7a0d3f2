"""The one-command demo: demos for every task, expert videos, a world model trained, evaluated and
watched (real | imagined), and a report.

The agents and their end-to-end vs hierarchical comparison join it when issue 4 lands.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import envs
from embodied.agent import ExpertAgent
from embodied.collect import collect
from embodied.rollout import run_episode
from embodied.video import write_video
from sandbox_common.atomic import write_json_atomic


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_demo(
    out: str | Path,
    episodes: int = 20,
    seed: int = 0,
    noise: float = 0.1,
    video_size: int = 256,
    tasks: list[str] | None = None,
    workers: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, Any] = {}
    for task in tasks or envs.TASKS.names():
        start = time.perf_counter()
        data_dir = out / "data" / task
        summary = collect(
            task, episodes, data_dir, seed=seed, noise=noise, workers=workers, progress=progress
        )
        env = envs.make(task, obs_mode="state")
        try:
            rollout = run_episode(env, ExpertAgent(env, seed=seed), seed, video_size=video_size)
            fps = env.metadata["render_fps"]
        finally:
            env.close()
        video = write_video(rollout.frames, out / "videos" / f"{task}.mp4", fps=fps)
        gif = write_video(rollout.frames[::2], out / "videos" / f"{task}.gif", fps=max(1, fps // 2))
        rows[task] = {
            "episodes": summary["episodes"],
            "expert_success_rate": summary["success_rate"],
            "mean_length": summary["mean_length"],
            "dataset_mb": round(_dir_size(data_dir) / 1e6, 2),
            "video": str(video.relative_to(out)),
            "gif": str(gif.relative_to(out)),
            "instruction": rollout.instruction,
            "seconds": round(time.perf_counter() - start, 1),
        }
    report = {
        "episodes_per_task": episodes,
        "noise": noise,
        "seed": seed,
        "env_version": envs.ENV_VERSION,
        "tasks": rows,
    }
    write_json_atomic(out / "report.json", report)
    lines = [
        "# wm-sandbox demo report",
        "",
        f"Scripted-expert demonstrations ({episodes} per task, action noise {noise}, seeds {seed}..{seed + episodes - 1}),",
        "one expert video per task. The agent comparison joins this report when the agents land.",
        "",
        "| task | episodes | expert success | mean length | dataset MB | video | example instruction |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, r in rows.items():
        lines.append(
            f"| {task} | {r['episodes']} | {r['expert_success_rate']:.0%} | {r['mean_length']:.0f} | "
            f"{r['dataset_mb']} | [{task}.mp4]({r['video']}) | {r['instruction']} |"
        )
    wm = report.get("world_model")
    if wm:

        def fmt(x):
            return "n/a" if x is None else f"{x:.3f}"

        lines += [
            "",
            f"## World model ({wm['task']}, {wm['episodes']} demos, {wm['steps']} updates)",
            "",
            "Open-loop prediction error 10 steps ahead on held-out episodes (normalised MSE, lower is better):",
            "",
            "| space | model | nothing moves |",
            "|---|---|---|",
            f"| latent | {fmt(wm['h10_latent_model'])} | {fmt(wm['h10_latent_nothing_moves'])} |",
            f"| objects (never seen as input) | {fmt(wm['h10_objects_model'])} | {fmt(wm['h10_objects_nothing_moves'])} |",
            "",
            f"Success-head accuracy {fmt(wm['success_accuracy'])}. Plot: [{wm['plot']}]({wm['plot']}); "
            f"real | imagined video: [{wm['video']}]({wm['video']}).",
        ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return report
