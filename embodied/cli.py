"""The command line: ``wm-sandbox <verb> ...`` or ``python -m embodied <verb> ...``.

``main(argv)`` takes a list, so tests call it in-process. User errors print one line naming
what was wrong and what is accepted, and return exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path
from typing import Any


class UsageError(Exception):
    """A bad command-line value; the message says what is accepted."""


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _env_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in getattr(args, "set", None) or []:
        if "=" not in item:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip().replace("-", "_")] = _parse_value(value)
    if getattr(args, "image_size", None) is not None:
        overrides["image_size"] = args.image_size
    if getattr(args, "obs_mode", None) is not None:
        overrides["obs_mode"] = args.obs_mode
    if getattr(args, "cameras", None):
        overrides["cameras"] = tuple(c.strip() for c in args.cameras.split(",") if c.strip())
    if isinstance(overrides.get("cameras"), list):
        overrides["cameras"] = tuple(overrides["cameras"])
    return overrides


def _check_task(name: str) -> str:
    import envs

    if name not in envs.TASKS:
        raise UsageError(f"unknown task {name!r}; known tasks: {', '.join(envs.TASKS.names())}")
    return name


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}") from None
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}")
    return number


def _add_env_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--obs-mode", choices=("pixels", "state"), help="observation mode (default: pixels)"
    )
    p.add_argument(
        "--image-size", type=_positive, help="observation image size in px (16-640, default 64)"
    )
    p.add_argument("--cameras", help="comma-separated observation cameras from front,wrist,side")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="any other task config field"
    )


def _add_ray_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help=f"{what}; ADDRESS joins a running cluster, --ray alone starts a local Ray "
        "(pip install -e .[ray])",
    )


# ---------------------------------------------------------------- verbs


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

    if args.ray is None:
        run = partial(collect, workers=args.workers)
    else:
        from embodied.scale import collect_ray

        run = partial(collect_ray, address=args.ray)  # Ray spreads over the cluster's CPUs
    summary = run(
        _check_task(args.task),
        args.episodes,
        args.out,
        seed=args.seed,
        noise=args.noise,
        progress=not args.quiet,
        **_env_overrides(args),
    )
    print(json.dumps(summary, indent=2))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    import envs
    from embodied.agent import ExpertAgent
    from embodied.rollout import run_episode
    from embodied.media.video import VIDEO_SUFFIXES, write_video

    out = Path(args.out)
    if out.suffix not in VIDEO_SUFFIXES:
        raise UsageError(f"--out must end in one of {', '.join(VIDEO_SUFFIXES)}, got {args.out!r}")
    if not 16 <= args.size <= 640:
        raise UsageError(f"--size must be in [16, 640] px, got {args.size}")
    overrides = _env_overrides(args)
    overrides.setdefault("obs_mode", "state")
    env = envs.make(_check_task(args.task), **overrides)
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


def cmd_bench_env(args: argparse.Namespace) -> int:
    from embodied.bench.env import format_table, run_env_benchmark
    from sandbox_common.atomic import write_json_atomic

    tasks = [_check_task(t) for t in args.tasks.split(",")] if args.tasks else None
    result = run_env_benchmark(tasks=tasks, steps=args.steps, peers=not args.no_peers)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result)
    print(format_table(result))
    return 0


def _task_list(text: str | None) -> list[str]:
    import envs

    if not text or text == "all":
        return envs.TASKS.names()
    return [_check_task(t.strip()) for t in text.split(",") if t.strip()]


def _int_list(text: str | None, flag: str) -> list[int]:
    if not text:
        return []
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(
            f"{flag} expects comma-separated positive integers, got {text!r}"
        ) from None
    if any(v < 1 for v in values):
        raise UsageError(f"{flag} expects positive integers, got {text!r}")
    return values


def cmd_bench_learnability(args: argparse.Namespace) -> int:
    import torch

    from embodied.bench.learnability import bench_learnability, format_table

    torch.set_num_threads(1)
    demos = _int_list(args.demos, "--demos")
    if not demos:
        raise UsageError("--demos needs at least one count, e.g. 200,1000")
    results = bench_learnability(
        args.out,
        _task_list(args.tasks),
        demos,
        episodes=args.episodes,
        dagger=args.dagger,
        dagger_episodes=args.dagger_episodes,
        dagger_demos=_int_list(args.dagger_demos, "--dagger-demos") or None,
        pixel_tasks=_task_list(args.pixel_tasks) if args.pixel_tasks else [],
        pixel_demos=_int_list(args.pixel_demos, "--pixel-demos"),
        pixel_steps=args.pixel_steps,
        workers=args.workers,
        num_envs=args.num_envs,
        progress=not args.quiet,
        pixel_device=args.device,
    )
    print(format_table(results))
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


def cmd_bench_experts(args: argparse.Namespace) -> int:
    from embodied.bench.experts import bench_experts
    from sandbox_common.atomic import write_json_atomic

    tasks = [_check_task(t) for t in args.tasks.split(",")] if args.tasks else None
    result = bench_experts(
        tasks=tasks,
        episodes=args.episodes,
        noise=args.noise,
        seed=args.seed,
        progress=not args.quiet,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result)
    for task, r in result["tasks"].items():
        lo, hi = r["ci95"]
        print(
            f"{task:<11} success {r['success_rate']:.1%}  (95% CI {lo:.1%}-{hi:.1%})  "
            f"links {r['mean_links_fraction']:.1%}  mean length {r['mean_length']:.0f}"
        )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from embodied.demo import run_demo

    tasks = [_check_task(t) for t in args.tasks.split(",")] if args.tasks else None
    run_demo(
        args.out,
        episodes=args.episodes,
        seed=args.seed,
        noise=args.noise,
        tasks=tasks,
        workers=args.workers,
        progress=not args.quiet,
        world_model_task=None if args.no_world_model else "pick-place",
        world_model_steps=args.world_model_steps,
        world_model_episodes=args.world_model_episodes,
        agents=not args.no_agents,
        agent_steps=args.agent_steps,
        agent_planner_steps=args.agent_planner_steps,
        agent_episodes=args.agent_episodes,
        agent_preset=args.agent_preset,
        baseline_episodes=args.baseline_episodes,
    )
    print((Path(args.out) / "report.md").read_text())
    return 0


def cmd_train_agent(args: argparse.Namespace) -> int:
    import torch

    from embodied.training.layered import summary_line, train_agent

    torch.set_num_threads(args.threads)
    if args.seeds or args.ray is not None:
        return _train_sweep(args)
    if args.kind in ("bc-state", "bc-pixels"):
        from embodied.training.baselines import train_bc

        if args.world_model or args.head or args.planner_steps:
            raise UsageError("--world-model, --head and --planner-steps are for the layered agents")
        report = train_bc(
            args.kind,
            args.data,
            args.out,
            preset=args.preset,
            seed=args.seed,
            steps=args.steps,
            dagger=args.dagger,
            dagger_episodes=args.dagger_episodes,
            teacher=args.teacher,
            dagger_beta=args.dagger_beta,
            progress=not args.quiet,
            device=args.device,
        )
        for r, rnd in enumerate(report["rounds"]):
            rollouts = ", ".join(
                f"{x['task']} {x['rollout_success']:.0%}" for x in rnd.get("rollouts", [])
            )
            final = {k: round(v, 4) for k, v in rnd["final"].items()}
            print(
                f"round {r}: {rnd['steps']} steps {final}"
                + (f"; rollouts: {rollouts}" if rollouts else "")
            )
        print(f"agent written to {Path(args.out) / 'agent.pt'} (train.json, round_*/)")
        return 0
    if args.dagger:
        raise UsageError("--dagger is for the baselines (--kind bc-state or bc-pixels)")
    report = train_agent(
        args.kind,
        args.data,
        args.out,
        preset=args.preset,
        head=args.head,
        world_model=args.world_model,
        seed=args.seed,
        steps=args.steps,
        planner_steps=args.planner_steps,
        progress=not args.quiet,
        device=args.device,
    )
    print(summary_line(report))
    print(f"agent written to {Path(args.out) / 'agent.pt'} (train.json, system1/, system2/)")
    return 0


def _train_sweep(args: argparse.Namespace) -> int:
    """``train agent --seeds K... [--ray [ADDRESS]]``: one run per seed in ``OUT/seed_<k>``."""
    from embodied.scale import BC_KINDS, sweep_dir, train_sweep, train_sweep_ray
    from embodied.training.layered import summary_line

    if not args.seeds:
        raise UsageError("--ray trains a seed sweep: give the seeds, e.g. --seeds 0 1 2")
    if args.kind in BC_KINDS:
        if args.world_model or args.head or args.planner_steps:
            raise UsageError("--world-model, --head and --planner-steps are for the layered agents")
        options = {"dagger": args.dagger, "dagger_episodes": args.dagger_episodes}
        options |= {"teacher": args.teacher, "dagger_beta": args.dagger_beta}
    else:
        if args.dagger:
            raise UsageError("--dagger is for the baselines (--kind bc-state or bc-pixels)")
        options = {"head": args.head, "world_model": args.world_model}
        options |= {"planner_steps": args.planner_steps}
    options |= {"preset": args.preset, "steps": args.steps, "device": args.device}
    if args.ray is None:
        reports = train_sweep(
            args.kind, args.data, args.out, args.seeds, progress=not args.quiet, **options
        )
    else:
        reports = train_sweep_ray(args.kind, args.data, args.out, args.seeds, args.ray, **options)
    for seed, report in reports.items():
        if args.kind in BC_KINDS:
            final = {k: round(v, 4) for k, v in report["rounds"][-1]["final"].items()}
            line = f"{len(report['rounds'])} round(s), final {final}"
        else:
            line = summary_line(report)
        print(f"seed {seed}: {line} -> {sweep_dir(args.out, seed) / 'agent.pt'}")
    return 0


def cmd_train_world_model(args: argparse.Namespace) -> int:
    from embodied.training.world_model import train_world_model

    summary = train_world_model(
        args.data,
        args.out,
        preset_name=args.preset,
        seed=args.seed,
        steps=args.steps,
        progress=not args.quiet,
        threads=args.threads,
        device=args.device,
    )
    rows = summary.get("per_horizon", {})
    print(f"world model written to {args.out} (eval.json, eval.png, checkpoint.pt, tensorboard/)")
    for h, row in rows.items():
        print(
            f"  horizon {h:>2}: model {row['model']:.4f}  nothing-moves {row['nothing_moves']:.4f}  "
            f"linear {row['linear']:.4f}  ({summary['error_space']} space)"
        )
    return 0


def cmd_imagine(args: argparse.Namespace) -> int:
    from embodied.media.imagine import imagine_video
    from embodied.media.video import VIDEO_SUFFIXES

    if Path(args.out).suffix not in VIDEO_SUFFIXES:
        raise UsageError(f"--out must end in one of {', '.join(VIDEO_SUFFIXES)}, got {args.out!r}")
    result = imagine_video(
        args.world_model,
        _check_task(args.task),
        args.seed,
        args.out,
        noise=args.noise,
        size=args.size,
    )
    result.pop("state_error_by_step", None)
    print(json.dumps(result, indent=2))
    return 0


def cmd_bench_agents(args: argparse.Namespace) -> int:
    import torch

    from embodied.bench.agents import bench_agents, format_table

    torch.set_num_threads(1)
    tasks = tuple(_check_task(t.strip()) for t in args.tasks.split(",")) if args.tasks else None
    for head in args.heads:
        if head not in ("discrete", "flow"):
            raise UsageError(f"unknown action head {head!r}; accepted: discrete, flow")
    results = bench_agents(
        args.data,
        args.out,
        seeds=tuple(args.seeds),
        heads=tuple(args.heads),
        episodes=args.episodes,
        world_model=args.world_model,
        preset=args.preset,
        steps=args.steps,
        planner_steps=args.planner_steps,
        tasks=tasks,
        num_envs=args.num_envs,
        progress=not args.quiet,
        pixel_device=args.device,
    )
    print(format_table(results))
    print(json.dumps(results["summary"]["hierarchical_minus_end_to_end"], indent=1))
    print(json.dumps(results["latency"], indent=1))
    return 0


def cmd_bench_vision_probe(args: argparse.Namespace) -> int:
    import torch

    from embodied.bench.vision_probe import run_vision_probe
    from sandbox_common.atomic import write_json_atomic

    torch.set_num_threads(1)
    result = run_vision_probe(args.data, steps=args.steps)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(args.out), result)
    print(json.dumps(result, indent=1))
    return 0


def cmd_bench_world_model(args: argparse.Namespace) -> int:
    from embodied.bench.world_model import format_summary, run_world_model_benchmark
    from sandbox_common.atomic import write_json_atomic

    result = run_world_model_benchmark(
        args.work_dir,
        episodes=args.episodes,
        seed=args.seed,
        steps=args.steps,
        train=not args.no_training,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result)
    print(format_summary(result))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from embodied.evaluation.harness import evaluate, expert_factory, write_metrics

    task = _check_task(args.task)
    if args.video < 0:
        raise UsageError(f"--video must be a number of episodes >= 0, got {args.video}")
    overrides = _env_overrides(args)
    if args.ray is not None and args.video:
        raise UsageError("--video records in this process: drop --video or --ray")
    if args.agent == "expert":
        if args.ray is None and args.num_envs not in (None, 1):
            raise UsageError(
                "the expert reads the in-process env (privileged state): it runs with --num-envs 1, "
                f"got {args.num_envs}"
            )
        factory, num_envs = expert_factory(noise=args.noise), 1
    elif Path(args.agent).exists():
        import torch

        from embodied.agents import agent_factory_from_run

        torch.set_num_threads(1)  # on 2 cores, 2 torch threads collapse next to the env workers

        factory, agent_overrides = agent_factory_from_run(
            args.agent, task, world_model_check=not args.no_world_model, device=args.device
        )
        overrides = {**agent_overrides, **overrides}
        num_envs = args.num_envs or 2
    else:
        raise UsageError(
            f"unknown agent {args.agent!r}; accepted: expert (the scripted expert, privileged "
            "state) or the run directory of a trained agent (written by `train agent`)"
        )
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


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wm-sandbox",
        description="Embodied-AI world-model sandbox: tasks, demos, videos, benchmarks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("tasks", help="list the registered tasks and their Gymnasium ids")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser(
        "collect", help="collect scripted-expert demos into a dataset directory (resumable)"
    )
    p.add_argument("--task", required=True, help="task name (see `tasks`)")
    p.add_argument(
        "--episodes", type=_positive, required=True, help="number of episodes in the dataset"
    )
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    p.add_argument("--out", required=True, help="dataset directory (resumes when it exists)")
    p.add_argument(
        "--noise",
        type=_non_negative_float,
        default=0.0,
        help="std of Gaussian noise on executed actions",
    )
    p.add_argument("--workers", type=_positive, default=1, help="parallel collection processes")
    _add_ray_option(p, "collect on a Ray cluster (same files as a local run)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_env_options(p)
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser(
        "render", help="render a scripted-expert episode to mp4 or gif with overlays"
    )
    p.add_argument("--task", required=True, help="task name (see `tasks`)")
    p.add_argument("--seed", type=int, default=0, help="episode seed")
    p.add_argument("--out", required=True, help="video file, .mp4 or .gif")
    p.add_argument("--size", type=int, default=320, help="video frame size in px (16-640)")
    p.add_argument("--camera", default="front", help="camera: front, side or wrist")
    p.add_argument("--noise", type=_non_negative_float, default=0.0, help="expert action noise")
    p.add_argument("--gif", action="store_true", help="also write a .gif beside the .mp4")
    _add_env_options(p)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("train", help="train a model on a dataset directory")
    train = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    t = train.add_parser(
        "world-model", help="train (or resume) a latent world model, then evaluate it"
    )
    t.add_argument("--data", required=True, help="dataset directory written by `collect`")
    t.add_argument(
        "--out", required=True, help="run directory (resumes when it holds a checkpoint)"
    )
    t.add_argument("--preset", default="default", help="debug, state, default or large")
    t.add_argument("--seed", type=int, default=0, help="training seed")
    t.add_argument("--steps", type=_positive, help="training updates (default: the preset's)")
    t.add_argument(
        "--threads", type=_positive, default=1, help="torch threads (1 is fastest on 2 busy cores)"
    )
    t.add_argument(
        "--device",
        default="cpu",
        choices=["auto", "cpu", "cuda"],
        help="where to train (auto: CUDA when present); evaluation runs on the CPU",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train_world_model)

    t = train.add_parser(
        "agent",
        help="train (or resume) an agent by imitation: layered (end-to-end, hierarchical) or a "
        "reference baseline (bc-state, bc-pixels; optionally with DAgger)",
    )
    t.add_argument(
        "--kind",
        required=True,
        choices=["end-to-end", "hierarchical", "bc-state", "bc-pixels"],
        help="which agent",
    )
    t.add_argument(
        "--data", required=True, nargs="+", help="dataset directories written by `collect`"
    )
    t.add_argument("--out", required=True, help="run directory (resumes when it holds checkpoints)")
    t.add_argument(
        "--world-model",
        help="world-model run for System 2's imagination check (hierarchical; omit: no check)",
    )
    t.add_argument("--preset", default="default", help="debug, default or large")
    t.add_argument(
        "--head", choices=["discrete", "flow"], help="System 1 action head (default: the preset's)"
    )
    t.add_argument("--seed", type=int, default=0, help="training seed")
    t.add_argument(
        "--seeds", type=int, nargs="+", help="a seed sweep: one run per seed in OUT/seed_<k>"
    )
    _add_ray_option(t, "train the --seeds on a Ray cluster, one run per worker")
    t.add_argument("--steps", type=_positive, help="System 1 updates (default: the preset's)")
    t.add_argument(
        "--planner-steps", type=_positive, help="System 2 updates (default: the preset's)"
    )
    t.add_argument(
        "--dagger",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="baselines: DAgger rounds after behaviour cloning (default 0)",
    )
    t.add_argument(
        "--dagger-episodes", type=_positive, default=50, help="rollouts per task per DAgger round"
    )
    t.add_argument(
        "--device",
        default="cpu",
        choices=["auto", "cpu", "cuda"],
        help="where to train (auto: CUDA when present); trained agents act on the CPU",
    )
    t.add_argument(
        "--dagger-beta",
        type=float,
        default=0.5,
        help="round r executes the teacher's action with probability beta**r (0: the student only)",
    )
    t.add_argument(
        "--teacher",
        default="expert",
        help="DAgger teacher: expert (the scripted expert) or a bc-state run directory",
    )
    t.add_argument(
        "--threads", type=_positive, default=1, help="torch threads (1 is fastest on 2 busy cores)"
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train_agent)

    p = sub.add_parser(
        "imagine", help="real | imagined video of one action sequence, with the error over time"
    )
    p.add_argument(
        "--world-model", required=True, help="world-model run directory or checkpoint file"
    )
    p.add_argument("--task", required=True, help="task name (see `tasks`)")
    p.add_argument("--seed", type=int, default=0, help="episode seed")
    p.add_argument("--out", required=True, help="video file, .mp4 or .gif")
    p.add_argument("--noise", type=_non_negative_float, default=0.1, help="expert action noise")
    p.add_argument("--size", type=int, default=256, help="size of each panel in px")
    p.set_defaults(func=cmd_imagine)

    p = sub.add_parser(
        "eval", help="evaluate an agent on seeded episodes: success, 95% CI, chain length, latency"
    )
    p.add_argument(
        "--agent",
        required=True,
        help="expert (the scripted expert) or the run directory of a trained agent",
    )
    p.add_argument("--task", required=True, help="task name (see `tasks`)")
    p.add_argument("--episodes", type=_positive, default=50, help="episodes (seeds seed..seed+N-1)")
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
        type=_positive,
        help="env worker processes (default: 2 for trained agents; the expert runs 1 in-process)",
    )
    p.add_argument("--noise", type=_non_negative_float, default=0.0, help="expert action noise")
    _add_ray_option(p, "evaluate on a Ray cluster (--num-envs: workers; no --video)")
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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_env_options(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="the main demo: demos for every task, expert videos, a report")
    p.add_argument("--out", default="demo", help="output directory (resumes when it exists)")
    p.add_argument("--episodes", type=_positive, default=20, help="demos per task")
    p.add_argument("--seed", type=int, default=0, help="first episode seed")
    p.add_argument(
        "--noise", type=_non_negative_float, default=0.1, help="expert action noise in the demos"
    )
    p.add_argument("--tasks", help="comma-separated subset of tasks (default: all)")
    p.add_argument("--workers", type=_positive, default=2, help="parallel collection processes")
    p.add_argument(
        "--world-model-steps", type=_positive, default=600, help="updates of the demo's world model"
    )
    p.add_argument(
        "--world-model-episodes",
        type=_positive,
        default=40,
        help="demos for the demo's world model",
    )
    p.add_argument("--no-world-model", action="store_true", help="skip the world-model part")
    p.add_argument("--no-agents", action="store_true", help="skip training and comparing agents")
    p.add_argument("--agent-steps", type=_positive, default=1500, help="System 1 updates")
    p.add_argument("--agent-planner-steps", type=_positive, default=500, help="planner updates")
    p.add_argument(
        "--agent-episodes", type=_positive, default=10, help="evaluation episodes per task"
    )
    p.add_argument("--agent-preset", default="default", help="agent preset (debug for a smoke run)")
    p.add_argument(
        "--baseline-episodes",
        type=_positive,
        default=200,
        help="state-only demos per task for the bc-state baseline",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)

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

    p = sub.add_parser("bench", help="benchmarks")
    bench = p.add_subparsers(dest="bench", metavar="WHAT", required=True)
    b = bench.add_parser(
        "env", help="env steps/s (state, 64px images) vs raw physics and peer envs, one core"
    )
    b.add_argument("--out", required=True, help="JSON file for the results")
    b.add_argument("--steps", type=_positive, default=2000, help="control steps per measurement")
    b.add_argument("--tasks", help="comma-separated subset of tasks (default: all)")
    b.add_argument("--no-peers", action="store_true", help="skip FetchPush / Meta-World / Pusher")
    b.set_defaults(func=cmd_bench_env)
    b = bench.add_parser(
        "learnability",
        help="collect demos, train bc-state / bc-pixels (with DAgger), evaluate on held-out seeds",
    )
    b.add_argument(
        "--out", required=True, help="directory for data/, runs/ and the results (resumes)"
    )
    b.add_argument("--tasks", default="all", help="comma-separated tasks or all (default)")
    b.add_argument("--demos", default="200,1000", help="comma-separated demo counts")
    b.add_argument("--episodes", type=_positive, default=50, help="held-out evaluation episodes")
    b.add_argument("--dagger", type=int, default=3, help="DAgger rounds (0: none)")
    b.add_argument("--dagger-episodes", type=_positive, default=50, help="rollouts per round")
    b.add_argument("--dagger-demos", help="demo counts that get DAgger (default: the smallest)")
    b.add_argument("--pixel-tasks", help="tasks for bc-pixels (default: none; it is slow on a CPU)")
    b.add_argument("--pixel-demos", help="demo counts for bc-pixels, e.g. 1000")
    b.add_argument(
        "--pixel-steps", type=_positive, help="bc-pixels updates (default: the preset's)"
    )
    b.add_argument(
        "--device", default="cpu", choices=["auto", "cpu", "cuda"], help="where bc-pixels trains"
    )
    b.add_argument("--workers", type=_positive, default=2, help="parallel collection processes")
    b.add_argument("--num-envs", type=_positive, default=2, help="vectorized evaluation envs")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_bench_learnability)

    b = bench.add_parser(
        "experts", help="scripted-expert success rate per task over seeded episodes"
    )
    b.add_argument("--out", required=True, help="JSON file for the results")
    b.add_argument(
        "--episodes", type=_positive, default=100, help="episodes per task (seeds seed..seed+N-1)"
    )
    b.add_argument("--noise", type=_non_negative_float, default=0.0, help="expert action noise")
    b.add_argument("--seed", type=int, default=0, help="first seed")
    b.add_argument("--tasks", help="comma-separated subset of tasks (default: all)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_bench_experts)
    b = bench.add_parser(
        "world-model", help="world-model throughput, imagination speed, prediction quality"
    )
    b.add_argument("--out", required=True, help="JSON file for the results")
    b.add_argument(
        "--work-dir",
        default="runs/bench-world-model",
        help="where demos and runs are kept (resumable)",
    )
    b.add_argument("--episodes", type=_positive, default=100, help="demos per task")
    b.add_argument("--seed", type=int, default=0, help="seed of demos and training")
    b.add_argument("--steps", type=_positive, help="training updates (default: the preset's)")
    b.add_argument(
        "--no-training", action="store_true", help="only throughput and imagination speed"
    )
    b.set_defaults(func=cmd_bench_world_model)
    b = bench.add_parser(
        "agents",
        help="end-to-end vs hierarchical agents: both heads, several seeds, every task, latency",
    )
    b.add_argument("--data", required=True, nargs="+", help="demo dataset directories")
    b.add_argument("--out", required=True, help="directory for runs/ and results.json (resumes)")
    b.add_argument("--world-model", help="world-model run for the hierarchical agents")
    b.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    b.add_argument("--heads", nargs="+", default=["discrete", "flow"], help="action heads")
    b.add_argument("--episodes", type=_positive, default=20, help="evaluation episodes per task")
    b.add_argument("--preset", default="default", help="debug, default or large")
    b.add_argument("--steps", type=_positive, help="System 1 updates (default: the preset's)")
    b.add_argument(
        "--planner-steps", type=_positive, help="System 2 updates (default: the preset's)"
    )
    b.add_argument("--tasks", help="comma-separated tasks to evaluate (default: the trained ones)")
    b.add_argument("--num-envs", type=_positive, default=2, help="vectorized evaluation envs")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_bench_agents)
    b = bench.add_parser(
        "vision-probe", help="can System 1's backbone locate the instructed cube? (metres)"
    )
    b.add_argument("--data", required=True, help="a pick-place demo dataset directory")
    b.add_argument("--out", required=True, help="JSON file for the results")
    b.add_argument("--steps", type=_positive, default=1500, help="regression updates")
    b.set_defaults(func=cmd_bench_vision_probe)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from sandbox_common.errors import InputError

    try:
        return int(args.func(args) or 0)
    except (UsageError, InputError, ValueError, TypeError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"wm-sandbox {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
