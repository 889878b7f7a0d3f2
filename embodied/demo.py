"""The one-command demo: demos for every task, expert videos, a world model trained, evaluated and
watched (real | imagined), the end-to-end and hierarchical agents trained on the same demos and
compared by the one evaluation harness (with videos), and a report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import envs
from embodied.agent import ExpertAgent
from embodied.data.collect import collect
from embodied.media.video import write_video
from embodied.rollout import run_episode
from sandbox_common.atomic import write_json_atomic


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def demo_world_model(
    out: Path, task: str, episodes: int, steps: int, seed: int, progress: bool, workers: int
) -> dict[str, Any]:
    """Collect fixed-length noisy demos, train the default pixel world model briefly, evaluate it
    on held-out episodes and write the real | imagined video."""
    from embodied.bench.world_model import WM_DATA
    from embodied.media.imagine import imagine_video
    from embodied.training.world_model import train_world_model

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


LIVE_KINDS = ("bc-state",)
"""Trained live by every demo: the privileged-state baseline (a competent agent within a minute of
training, and the reference the pixel agents are read against)."""
LAYERED_KINDS = ("end-to-end", "hierarchical")
"""The VLA agents with learned language, trained live on the demo's pixel demos with
``layered=True`` (``demo --layered``; the demo's budget is far below the benchmarks')."""
SHIPPED_AGENTS = Path(__file__).resolve().parent.parent / "assets" / "agents"
"""Pixel agents the project trained with its own benchmark commands (docs/BENCHMARKS.md) and
ships, each a run directory (``agent.pt``, ``train.json``): the demo evaluates them beside the
agents it trains live, so its report shows competence in minutes."""


def shipped_runs(root: Path = SHIPPED_AGENTS) -> list[Path]:
    """The shipped agents' run directories, by name."""
    return sorted(p.parent for p in root.glob("*/agent.pt"))


def demo_agents(
    out: Path,
    data: list[Path],
    state_data: list[Path],
    steps: int,
    episodes: int,
    seed: int,
    progress: bool,
    preset: str = "default",
    video_size: int = 256,
    layered: bool = False,
) -> dict[str, Any]:
    """Train the bc-state baseline on ``state_data`` (and with ``layered`` the end-to-end and the
    hierarchical agent on the pixel demos, with the same update budget); compare them and the
    shipped agents with ``compare`` (hierarchical agents also under the oracle System 2) and
    return its rows."""
    from embodied.evaluation.compare import compare_runs
    from embodied.media.report import write_report
    from embodied.saved_agents import load_bundle
    from embodied.training.baselines import train_bc

    runs = []
    for kind in LIVE_KINDS + (LAYERED_KINDS if layered else ()):
        run = out / "agents" / kind
        if kind == "bc-state":
            train_bc(kind, state_data, run, preset=preset, seed=seed, progress=progress)
        else:
            train_bc(kind, data, run, preset=preset, seed=seed, steps=steps, progress=progress)
        runs.append(run)
    tasks = {path.name for path in data}
    runs += [run for run in shipped_runs() if tasks & set(load_bundle(run).tasks)]
    where = out / "comparison"
    results = compare_runs(
        runs, where, tasks=tuple(sorted(tasks)), episodes=episodes, seed=10_000 + seed,
        video_episodes=1, language=(), num_envs=2, progress=progress,
    )  # fmt: skip
    paths = write_report(results, where)
    rows = {}
    for row in results["rows"]:
        rows[row["name"]] = {
            "kind": row["kind"],
            "planner": row["planner"],
            "training": row["training"],
            "tasks": {
                task: {
                    "success_rate": c["all"]["success_rate"],
                    "ci95": c["all"]["ci95"],
                    "mean_chain_length": c["all"]["mean_chain_length"],
                    "latency_ms": c["all"]["latency_ms"],
                    "video": f"comparison/{c['all']['videos'][0]}" if c["all"]["videos"] else None,
                }
                for task, c in row["tasks"].items()
            },
        }
    return {
        "episodes": episodes,
        "steps": steps,
        "layered": layered,
        "report": str(paths["html"].relative_to(out)),
        "agents": rows,
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
    agents: bool = True,
    agent_steps: int = 1500,
    agent_episodes: int = 10,
    agent_preset: str = "default",
    baseline_episodes: int = 200,
    layered_agents: bool = False,
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
    if agents:
        state_data = []
        for task in rows:  # state-only demos are cheap (no rendering): more of them for bc-state
            state_data.append(out / "data-state" / task)
            collect(task, baseline_episodes, state_data[-1], seed=100_000 + seed, noise=noise,
                    workers=workers, progress=progress, obs_mode="state")  # fmt: skip
        report["agents"] = demo_agents(
            out,
            [out / "data" / task for task in rows],
            state_data,
            agent_steps,
            agent_episodes,
            seed,
            progress,
            preset=agent_preset,
            video_size=video_size,
            layered=layered_agents,
        )
    write_json_atomic(out / "report.json", report)
    lines = [
        "# wm-sandbox demo report",
        "",
        f"Scripted-expert demonstrations ({episodes} per task, action noise {noise}, seeds {seed}..{seed + episodes - 1}),",
        "one expert video per task.",
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
    comparison = report.get("agents")
    if comparison:
        agents_rows = comparison["agents"]
        names = list(agents_rows)
        tasks_seen = list(dict.fromkeys(t for r in agents_rows.values() for t in r["tasks"]))
        layered = (
            f"; the VLA agents trained live read pixels and words ({episodes} demos per task, "
            f"{comparison['steps']} updates)"
            if comparison["layered"]
            else " (`demo --layered` also trains the VLA agents live)"
        )
        layered += (
            "; `+oracle` rows are a hierarchical agent's System 1 under the env's own subtask "
            "sequence"
        )
        lines += [
            "",
            "## Agents: a live-trained baseline and the shipped pixel agents, end-to-end vs "
            "hierarchical",
            "",
            f"Success over {comparison['episodes']} held-out seeds per task (95% CI) and links "
            f"completed. bc-state is trained live on privileged state ({baseline_episodes} state "
            f"demos per task, one multi-task network){layered}. The other rows are pixel agents "
            "on perceived objects that the project trained and ships in `assets/agents/` "
            "(evaluated here, not trained): `end-to-end-six-tasks` and "
            "`hierarchical-six-tasks` read the instruction with learned language (the VLA, one "
            "network for the six tasks, `benchmarks/vla_multitask.sh`); "
            "`bc-keypoints-pick-place` (end-to-end) and `hierarchical-keypoints-pick-place` "
            "read it through the parser (`benchmarks/keypoints.sh`, 1,000 pick-place demos). "
            "The full report, with plots, latency, training cost "
            "and the same episodes side by side on video: "
            f"[{comparison['report']}]({comparison['report']}). See docs/BENCHMARKS.md for the "
            "full benchmarks.",
            "",
            "| task | " + " | ".join(names) + " | videos |",
            "|---|" + "---|" * len(names) + "---|",
        ]
        for task in tasks_seen:
            cells, videos = [], []
            for name in names:
                r = agents_rows[name]["tasks"].get(task)
                if r is None:
                    cells.append("-")
                    continue
                lo, hi = r["ci95"]
                cells.append(
                    f"{r['success_rate']:.0%} ({lo:.0%}-{hi:.0%}), {r['mean_chain_length']:.2f} links"
                )
                if r["video"]:
                    videos.append(f"[{name}]({r['video']})")
            lines.append(f"| {task} | " + " | ".join(cells) + f" | {' '.join(videos)} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return report
