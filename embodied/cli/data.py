"""Data verbs: ``tasks``, ``collect``, ``render``, ``export``, ``import``."""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

from embodied.cli.common import (
    PLANNER_CHOICES,
    UsageError,
    add_env_options,
    add_ray_option,
    check_task,
    env_overrides,
    non_negative_float,
    positive,
)


def cmd_tasks(args: argparse.Namespace) -> int:
    import envs

    rows = []
    for name in envs.TASKS.names():
        cls = envs.TASKS.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        rows.append(
            {
                "task": name,
                "gym_id": envs.gym_id(name),
                "max_steps": cls().max_steps,
                "description": doc,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        width = max(len(r["task"]) for r in rows)
        id_width = max(len(r["gym_id"]) for r in rows)
        for r in rows:
            print(
                f"{r['task']:<{width}}  {r['gym_id']:<{id_width}}  {r['max_steps']:>4} steps  {r['description']}"
            )
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from embodied.data.collect import collect

    if args.agent is not None:
        return _collect_agent(args)
    if args.world_model is not None or args.planner != "learned":
        raise UsageError(
            "--world-model and --planner apply to --agent (a trained agent's rollouts)"
        )
    if args.ray is None:
        run = partial(collect, workers=args.workers)
    else:
        from embodied.scale import collect_ray

        run = partial(collect_ray, address=args.ray)  # Ray spreads over the cluster's CPUs
    summary = run(
        check_task(args.task),
        args.episodes,
        args.out,
        seed=args.seed,
        noise=args.noise,
        progress=not args.quiet,
        **env_overrides(args),
    )
    print(json.dumps(summary, indent=2))
    return 0


def _collect_agent(args: argparse.Namespace) -> int:
    """A trained agent's own episodes (the expert's clean action kept as each step's label), for
    a world model to learn what the agent's actions do, its failures included."""
    import torch

    from embodied.data.collect import collect_rollouts, expert_teacher
    from embodied.saved_agents import agent_factory_from_run

    if args.ray is not None or args.workers != 1 or args.noise:
        raise UsageError("--agent collects in this process: drop --ray, --workers and --noise")
    if not Path(args.agent).exists():
        raise UsageError(f"--agent {args.agent!r}: no such run directory")
    torch.set_num_threads(1)
    task = check_task(args.task)
    make, agent_overrides = agent_factory_from_run(
        args.agent, task, planner=args.planner, world_model=args.world_model
    )
    source = {"agent": str(args.agent), "planner": args.planner}
    if args.world_model is not None:
        source["world_model"] = str(args.world_model)
    seeds = list(range(args.seed, args.seed + args.episodes))
    summary = collect_rollouts(
        args.out,
        task,
        seeds,
        make,
        expert_teacher,
        meta=source,
        progress=not args.quiet,
        **{**agent_overrides, **env_overrides(args)},
    )
    print(json.dumps(summary, indent=2))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    import envs
    from embodied.agent import ExpertAgent
    from embodied.media.video import VIDEO_SUFFIXES, write_video
    from embodied.rollout import run_episode

    out = Path(args.out)
    if out.suffix not in VIDEO_SUFFIXES:
        raise UsageError(f"--out must end in one of {', '.join(VIDEO_SUFFIXES)}, got {args.out!r}")
    if not 16 <= args.size <= 640:
        raise UsageError(f"--size must be in [16, 640] px, got {args.size}")
    overrides = env_overrides(args)
    overrides.setdefault("obs_mode", "state")
    env = envs.make(check_task(args.task), **overrides)
    if args.camera not in envs.base.CAMERAS:
        raise UsageError(
            f"unknown camera {args.camera!r}; known cameras: {', '.join(envs.base.CAMERAS)}"
        )
    try:
        rollout = run_episode(
            env,
            ExpertAgent(env, noise=args.noise, seed=args.seed),
            args.seed,
            video_size=args.size,
            camera=args.camera,
        )
        fps = env.metadata["render_fps"]
    finally:
        env.close()
    write_video(rollout.frames, out, fps=fps)
    written = [str(out)]
    if args.gif and out.suffix != ".gif":
        write_video(rollout.frames, out.with_suffix(".gif"), fps=fps)
        written.append(str(out.with_suffix(".gif")))
    print(
        json.dumps(
            {
                "task": args.task,
                "seed": args.seed,
                "success": rollout.success,
                "steps": rollout.length,
                "instruction": rollout.instruction,
                "files": written,
            },
            indent=2,
        )
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from embodied.data.lerobot import export_lerobot

    summary = export_lerobot(args.data, args.out, repo_id=args.repo_id)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from embodied.data.lerobot import import_lerobot

    summary = import_lerobot(args.data, args.out)
    print(json.dumps(summary, indent=2))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add this group's verbs to the top-level parser."""
    p = sub.add_parser("tasks", help="list the registered tasks and their Gymnasium ids")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_tasks)
    p = sub.add_parser(
        "collect",
        help="collect scripted-expert demos (or a trained agent's episodes, --agent) into a "
        "dataset directory (resumable)",
    )
    p.add_argument("--task", required=True, help="task name (see `tasks`)")
    p.add_argument(
        "--episodes", type=positive, required=True, help="number of episodes in the dataset"
    )
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    p.add_argument("--out", required=True, help="dataset directory (resumes when it exists)")
    p.add_argument(
        "--noise",
        type=non_negative_float,
        default=0.0,
        help="std of Gaussian noise on executed actions",
    )
    p.add_argument("--workers", type=positive, default=1, help="parallel collection processes")
    add_ray_option(p, "collect on a Ray cluster (same files as a local run)")
    p.add_argument(
        "--agent",
        help="a trained agent's run directory: record its own episodes instead of the expert's "
        "(the expert's clean action is kept as each step's label)",
    )
    p.add_argument(
        "--planner",
        default="learned",
        choices=list(PLANNER_CHOICES),
        help="with --agent: its System 2 (see `eval --planner`)",
    )
    p.add_argument("--world-model", help="with --agent: the world model its System 2 thinks with")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_env_options(p)
    p.set_defaults(func=cmd_collect)
    p = sub.add_parser(
        "render", help="render a scripted-expert episode to mp4 or gif with overlays"
    )
    p.add_argument("--task", required=True, help="task name (see `tasks`)")
    p.add_argument("--seed", type=int, default=0, help="episode seed")
    p.add_argument("--out", required=True, help="video file, .mp4 or .gif")
    p.add_argument("--size", type=int, default=320, help="video frame size in px (16-640)")
    p.add_argument("--camera", default="front", help="camera: front, side or wrist")
    p.add_argument("--noise", type=non_negative_float, default=0.0, help="expert action noise")
    p.add_argument("--gif", action="store_true", help="also write a .gif beside the .mp4")
    add_env_options(p)
    p.set_defaults(func=cmd_render)
    p = sub.add_parser("export", help="write a dataset directory in another format (LeRobot v3.0)")
    p.add_argument("--data", required=True, help="dataset directory written by `collect`")
    p.add_argument("--format", required=True, choices=["lerobot"], help="the format to write")
    p.add_argument("--out", required=True, help="new directory for the export (must be empty)")
    p.add_argument(
        "--repo-id", help="LeRobot repo id recorded in the export (default wm-sandbox/<task>)"
    )
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("import", help="read an export back into a dataset directory (LeRobot v3.0)")
    p.add_argument(
        "--data", required=True, help="the LeRobot export directory (written by `export`)"
    )
    p.add_argument("--format", required=True, choices=["lerobot"], help="the format to read")
    p.add_argument("--out", required=True, help="new dataset directory (must be empty)")
    p.set_defaults(func=cmd_import)
