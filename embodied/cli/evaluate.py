"""``eval`` (the one harness, any agent, optionally on Ray) and ``imagine`` (real | imagined video)."""

from __future__ import annotations

import argparse
import json
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


def cmd_eval(args: argparse.Namespace) -> int:
    from embodied.evaluation.harness import evaluate, expert_factory, write_metrics

    task = check_task(args.task)
    if args.video < 0:
        raise UsageError(f"--video must be a number of episodes >= 0, got {args.video}")
    overrides = env_overrides(args)
    if args.ray is not None and args.video:
        raise UsageError("--video records in this process: drop --video or --ray")
    if args.planner != "learned" and not Path(args.agent).exists():
        raise UsageError("--planner applies to a trained hierarchical agent (a run directory)")
    if args.world_model is not None and (args.ray is not None or not Path(args.agent).exists()):
        raise UsageError("--world-model applies to a trained agent evaluated here (no --ray)")
    if args.agent == "expert":
        if args.ray is None and args.num_envs not in (None, 1):
            raise UsageError(
                "the expert reads the in-process env (privileged state): it runs with --num-envs 1, "
                f"got {args.num_envs}"
            )
        factory, num_envs = expert_factory(noise=args.noise), 1
    elif Path(args.agent).exists():
        import torch

        from embodied.saved_agents import agent_factory_from_run

        torch.set_num_threads(1)  # on 2 cores, 2 torch threads collapse next to the env workers

        factory, agent_overrides = agent_factory_from_run(
            args.agent,
            task,
            world_model_check=not args.no_world_model,
            device=args.device,
            planner=args.planner,
            world_model=args.world_model,
        )
        overrides = {**agent_overrides, **overrides}
        num_envs = args.num_envs or 2
        if args.subtask:
            factory = _with_subtasks(factory, args.subtask, args.agent)
            factory(None, 0)  # refuse a wrong agent before any episode starts
    else:
        raise UsageError(
            f"unknown agent {args.agent!r}; accepted: expert (the scripted expert, privileged "
            "state) or the run directory of a trained agent (written by `train agent`)"
        )
    if args.suite is not None:
        return _eval_suite(args, task, factory, num_envs, overrides)
    if args.ray is not None:  # the workers build the agent; --num-envs: how many workers
        from embodied.scale import evaluate_ray

        result = evaluate_ray(
            args.agent,
            task,
            args.episodes,
            args.seed,
            args.ray,
            args.num_envs,
            noise=args.noise,
            world_model_check=not args.no_world_model,
            planner=args.planner,
            progress=not args.quiet,
            **overrides,
        )
    else:
        result = evaluate(
            factory,
            task,
            args.episodes,
            seed=args.seed,
            video_episodes=args.video,
            video_dir=Path(args.out) / "videos",
            progress=not args.quiet,
            num_envs=num_envs,
            **overrides,
        )
    path = write_metrics(result, args.out)
    lo, hi = result.ci95
    latency = result.latency_ms
    parts = [f"act {latency['act_mean']:.2f} ms"]
    for name, label in (("system1", "System 1"), ("system2", "System 2")):
        if f"{name}_mean" in latency:
            parts.append(
                f"{label} {latency[f'{name}_mean']:.2f} ms "
                f"({latency[f'{name}_calls_per_episode']:.1f} calls/episode)"
            )
    print(
        f"{task}: success {result.success_rate:.1%} (95% CI {lo:.1%}-{hi:.1%}), "
        f"chain length {result.mean_chain_length:.2f}, {', '.join(parts)} -> {path}"
    )
    return 0


def _eval_suite(args: argparse.Namespace, task: str, factory, num_envs: int, overrides) -> int:
    from embodied.evaluation.robustness import check_suite, run_agent_suite

    suite = check_suite(args.suite)
    if args.video or args.ray is not None:
        raise UsageError("--suite runs many evaluations in this process: drop --video and --ray")
    clash = sorted({"factors", "events", "randomize"} & set(overrides))
    if clash:
        raise UsageError(f"--suite sets the factors and events of every cell itself; drop {clash}")

    report = run_agent_suite(
        factory,
        str(args.agent),
        suite,
        task,
        args.out,
        args.episodes,
        args.seed,
        num_envs,
        progress=None if args.quiet else (lambda key: print(f"[{suite.name}] {key}", flush=True)),
        **overrides,
    )
    print((Path(args.out) / "robustness.md").read_text())
    print(f"-> {Path(args.out) / 'robustness.json'}")
    return 0 if report["rows"] else 1


def cmd_suites(args: argparse.Namespace) -> int:
    from embodied.evaluation.robustness import SUITES, suite_cells
    from envs.events import EVENTS
    from envs.factors import FACTORS, MAGNITUDES, TRAIN_BANDS

    if args.factors:
        print(f"magnitudes: {MAGNITUDES}; domain randomisation draws from {list(TRAIN_BANDS)}")
        for f in FACTORS.values():
            only = f" (only {', '.join(f.tasks)})" if f.tasks else ""
            print(f"{f.family:10s} {f.name:20s} {f.changes}; at 1: {f.at_one}{only}")
        for e in EVENTS.values():
            print(f"{'event':10s} {e.name:20s} at {e.trigger}: {e.what}")
        return 0
    for s in SUITES.values():
        cells = len(suite_cells(s, "pick-place"))
        print(f"{s.name:10s} {cells:3d} cells on pick-place: {s.description}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import torch

    from embodied.evaluation.compare import compare_runs
    from embodied.media.report import write_report
    from envs.language import HELDOUT_SPLITS

    torch.set_num_threads(1)
    if args.video > args.episodes:
        raise UsageError(f"--video ({args.video}) must be <= --episodes ({args.episodes})")
    tasks = tuple(check_task(t.strip()) for t in args.tasks.split(",")) if args.tasks else None
    results = compare_runs(
        args.runs,
        args.out,
        tasks=tasks,
        episodes=args.episodes,
        seed=args.seed,
        video_episodes=args.video,
        language=HELDOUT_SPLITS if args.language is None else tuple(args.language),
        oracle=not args.no_oracle,
        num_envs=args.num_envs,
        progress=not args.quiet,
        suite=args.suite,
        **env_overrides(args),
    )
    paths = write_report(results, args.out)
    print(paths["markdown"].read_text())
    print(f"report: {paths['html']} (Markdown twin: {paths['markdown']})")
    return 0


def cmd_imagine(args: argparse.Namespace) -> int:
    from embodied.media.imagine import imagine_video
    from embodied.media.video import VIDEO_SUFFIXES

    if Path(args.out).suffix not in VIDEO_SUFFIXES:
        raise UsageError(f"--out must end in one of {', '.join(VIDEO_SUFFIXES)}, got {args.out!r}")
    result = imagine_video(
        args.world_model,
        check_task(args.task),
        args.seed,
        args.out,
        noise=args.noise,
        size=args.size,
    )
    result.pop("state_error_by_step", None)
    print(json.dumps(result, indent=2))
    return 0


def _with_subtasks(factory, specs: list[str], run: str):
    """``factory`` whose agents take a person's subtasks (``STEP:TEXT``) in System 2's place."""
    schedule = []
    for spec in specs:
        step, sep, text = spec.partition(":")
        if not sep or not step.strip().isdigit() or not text.strip():
            raise UsageError(
                f"--subtask takes STEP:TEXT (e.g. 0:'put the red cube on the blue pad'), got {spec!r}"
            )
        schedule.append((int(step), text.strip()))

    def make(env=None, seed: int = 0):
        agent = factory(env, seed)
        if not hasattr(agent, "inject"):
            raise UsageError(
                f"--subtask speaks in System 2's place: {run} has no System 2 that reads words "
                "(train one with --kind hierarchical)"
            )
        for step, text in schedule:
            agent.inject(step, text)
        return agent

    return make


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add this group's verbs to the top-level parser."""
    p = sub.add_parser(
        "eval", help="evaluate an agent on seeded episodes: success, 95%% CI, chain length, latency"
    )
    p.add_argument(
        "--agent",
        required=True,
        help="expert (the scripted expert) or the run directory of a trained agent",
    )
    p.add_argument("--task", required=True, help="task name (see `tasks`)")
    p.add_argument("--episodes", type=positive, default=50, help="episodes (seeds seed..seed+N-1)")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--out", required=True, help="directory for metrics.json (and videos/)")
    p.add_argument(
        "--video",
        type=int,
        nargs="?",
        const=2,
        default=0,
        metavar="N",
        help="record annotated videos of the first N episodes (--video alone: 2)",
    )
    p.add_argument(
        "--num-envs",
        type=positive,
        help="env worker processes (default: 2 for trained agents; the expert runs 1 in-process)",
    )
    p.add_argument("--noise", type=non_negative_float, default=0.0, help="expert action noise")
    p.add_argument(
        "--subtask",
        action="append",
        default=[],
        metavar="STEP:TEXT",
        help="a hierarchical VLA does TEXT (your words) from step STEP until it is done, then "
        "System 2 resumes (repeatable); the video shows who proposed each subtask",
    )
    add_ray_option(p, "evaluate on a Ray cluster (--num-envs: workers; no --video)")
    p.add_argument(
        "--device",
        default="cpu",
        choices=["auto", "cpu", "cuda"],
        help="where a trained agent's networks run (auto: CUDA when present)",
    )
    p.add_argument(
        "--no-world-model",
        action="store_true",
        help="hierarchical agents: System 2 without the world-model check (the ablation)",
    )
    p.add_argument(
        "--planner",
        default="learned",
        choices=list(PLANNER_CHOICES),
        help="hierarchical agents: System 2 is the agent's own planner (learned) or the env's "
        "subtask sequence (oracle: how much of the gap is System 1, how much planning); "
        "hierarchical-keypoints also: imagined (System 2 is the --world-model alone, choosing "
        "every few steps the subtask whose imagined progress is largest)",
    )
    p.add_argument(
        "--world-model",
        help="hierarchical-keypoints agents: a world-model run of the perceived objects "
        "(`train world-model --perception RUN`) that System 2 thinks with",
    )
    p.add_argument(
        "--suite",
        help="robustness suite (see `suites`): every factor x magnitude and events, written to "
        "OUT/robustness.json, .md and .png",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_env_options(p)
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser(
        "suites", help="list the robustness suites (--factors: every factor and event)"
    )
    p.add_argument("--factors", action="store_true", help="list the factors and world events")
    p.set_defaults(func=cmd_suites)
    p = sub.add_parser(
        "compare",
        help="trained agents side by side: one HTML report (plots, videos) and its Markdown twin",
    )
    p.add_argument("runs", nargs="+", help="run directories written by `train agent`")
    p.add_argument("--out", required=True, help="directory for the report (resumes)")
    p.add_argument("--tasks", help="comma-separated tasks (default: every task a run knows)")
    p.add_argument("--episodes", type=positive, default=50, help="episodes per task and agent")
    p.add_argument("--seed", type=int, default=10_000, help="first seed (held-out by default)")
    p.add_argument(
        "--video", type=int, default=2, help="episodes on video per task and agent (the same seeds)"
    )
    p.add_argument(
        "--language",
        nargs="*",
        default=None,
        help="held-out language splits to evaluate too (default: unseen-paraphrase "
        "unseen-composition; the flag alone: none)",
    )
    p.add_argument(
        "--no-oracle", action="store_true", help="no oracle-System 2 row for hierarchical runs"
    )
    p.add_argument("--num-envs", type=positive, default=2, help="env worker processes")
    p.add_argument(
        "--suite",
        help="also run this robustness suite per agent and task (see `suites`): a heatmap",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_env_options(p)
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser(
        "imagine", help="real | imagined video of one action sequence, with the error over time"
    )
    p.add_argument(
        "--world-model", required=True, help="world-model run directory or checkpoint file"
    )
    p.add_argument("--task", required=True, help="task name (see `tasks`)")
    p.add_argument("--seed", type=int, default=0, help="episode seed")
    p.add_argument("--out", required=True, help="video file, .mp4 or .gif")
    p.add_argument("--noise", type=non_negative_float, default=0.1, help="expert action noise")
    p.add_argument("--size", type=int, default=256, help="size of each panel in px")
    p.set_defaults(func=cmd_imagine)
