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


def demo_world_model(
    out: Path, task: str, episodes: int, steps: int, seed: int, progress: bool, workers: int
) -> dict[str, Any]:
    """Collect fixed-length noisy demos, train the default pixel world model briefly, evaluate it
    on held-out episodes and write the real | imagined video."""
    from embodied.bench_world_model import WM_DATA
    from embodied.imagine import imagine_video
    from embodied.train_world_model import train_world_model

    data = out / "world_model" / f"data-{task}"
    collect(
        task, episodes, data, seed=seed, noise=0.3, workers=workers, progress=progress, **WM_DATA
    )
    run = out / "world_model" / f"run-{task}"
    summary = train_world_model(
        data, run, preset_name="default", seed=seed, steps=steps, progress=progress
    )
    video = imagine_video(
        run, task, seed=10_000 + seed, out=out / "videos" / f"imagined-{task}.mp4", size=192
    )
    h10 = summary["horizons"].get("10", {})
    return {
        "task": task,
        "episodes": episodes,
        "steps": summary["steps"],
        "h10_latent_model": h10.get("latent/model"),
        "h10_latent_nothing_moves": h10.get("latent/nothing_moves"),
        "h10_state_model": h10.get("state/model"),
        "h10_state_nothing_moves": h10.get("state/nothing_moves"),
        "success_accuracy": summary.get("success_accuracy"),
        "eval": str((run / "eval.json").relative_to(out)),
        "plot": str((run / "eval.png").relative_to(out)),
        "video": str(Path(video["file"]).relative_to(out)),
    }


def run_demo(
    out: str | Path,
    episodes: int = 20,
    seed: int = 0,
    noise: float = 0.1,
    video_size: int = 256,
    tasks: list[str] | None = None,
    workers: int = 2,
    progress: bool = True,
    world_model_task: str | None = "pick-place",
    world_model_episodes: int = 40,
    world_model_steps: int = 600,
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
    if world_model_task:
        report["world_model"] = demo_world_model(
            out, world_model_task, world_model_episodes, world_model_steps, seed, progress, workers
        )
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
            f"| proprioception | {fmt(wm['h10_state_model'])} | {fmt(wm['h10_state_nothing_moves'])} |",
            "",
            f"Success-head accuracy {fmt(wm['success_accuracy'])}. Plot: [{wm['plot']}]({wm['plot']}); "
            f"real | imagined video: [{wm['video']}]({wm['video']}).",
        ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return report
