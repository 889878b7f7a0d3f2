"""``bench ...``: the benchmarks behind docs/BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from embodied.bench.headline import PARTS as HEADLINE_PARTS
from embodied.cli.common import (
    UsageError,
    check_task,
    comma_list,
    factor_magnitudes,
    int_list,
    non_negative_float,
    positive,
    task_list,
)
from embodied.cli.train import BC_KINDS


def cmd_bench_env(args: argparse.Namespace) -> int:
    from embodied.bench.env import format_table, run_env_benchmark
    from sandbox_common.atomic import write_json_atomic

    tasks = [check_task(t) for t in args.tasks.split(",")] if args.tasks else None
    result = run_env_benchmark(tasks=tasks, steps=args.steps, peers=not args.no_peers)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result)
    print(format_table(result))
    return 0


def cmd_bench_robustness(args: argparse.Namespace) -> int:
    import torch

    from embodied.bench.robustness import bench_robustness

    torch.set_num_threads(1)
    seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    if not seeds:
        raise UsageError(f"--seeds expects comma-separated integers, got {args.seeds!r}")
    bench_robustness(
        args.out,
        task=check_task(args.task),
        demos=args.demos,
        seeds=seeds,
        kind=args.kind,
        preset=args.preset,
        randomize=comma_list(args.randomize) if args.randomize else None,
        magnitude=args.magnitude,
        joint=args.joint,
        suite=args.suite,
        episodes=args.episodes,
        events=not args.no_events,
        progress=not args.quiet,
        language=args.language,
        workers=args.workers,
        num_envs=args.num_envs,
    )
    print((Path(args.out) / "robustness.md").read_text())
    return 0


def cmd_bench_learnability(args: argparse.Namespace) -> int:
    import torch

    from embodied.bench.learnability import bench_learnability, format_table

    torch.set_num_threads(1)
    demos = int_list(args.demos, "--demos")
    if not demos:
        raise UsageError("--demos needs at least one count, e.g. 200,1000")
    results = bench_learnability(
        args.out,
        task_list(args.tasks),
        demos,
        episodes=args.episodes,
        dagger=args.dagger,
        dagger_episodes=args.dagger_episodes,
        dagger_demos=int_list(args.dagger_demos, "--dagger-demos") or None,
        pixel_tasks=task_list(args.pixel_tasks) if args.pixel_tasks else [],
        pixel_demos=int_list(args.pixel_demos, "--pixel-demos"),
        pixel_steps=args.pixel_steps,
        workers=args.workers,
        num_envs=args.num_envs,
        progress=not args.quiet,
        pixel_device=args.device,
    )
    print(format_table(results))
    return 0


def cmd_bench_experts(args: argparse.Namespace) -> int:
    from embodied.bench.experts import bench_experts
    from sandbox_common.atomic import write_json_atomic

    tasks = [check_task(t) for t in args.tasks.split(",")] if args.tasks else None
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


def _variants(text: str, known) -> tuple[str, ...]:
    """The comma-separated ``--variants`` of a benchmark; a clear error naming the known ones."""
    variants = comma_list(text)
    unknown = [v for v in variants if v not in known]
    if unknown or not variants:
        raise UsageError(f"--variants: unknown {unknown or text!r}; known: {', '.join(known)}")
    return variants


def cmd_bench_world_model(args: argparse.Namespace) -> int:
    from embodied.bench.world_model import (
        QUALITY_VARIANTS,
        format_summary,
        run_world_model_benchmark,
    )
    from sandbox_common.atomic import write_json_atomic

    result = run_world_model_benchmark(
        args.work_dir,
        episodes=args.episodes,
        seed=args.seed,
        steps=args.steps,
        train=not args.no_training,
        tasks=tuple(task_list(args.tasks)),
        variants=_variants(args.variants, QUALITY_VARIANTS),
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result)
    print(format_summary(result))
    return 0


def cmd_bench_agents(args: argparse.Namespace) -> int:
    import torch

    from embodied.bench.kinds import HELDOUT_SPLITS, bench_agents, format_table
    from policies.bc import BC_KINDS

    torch.set_num_threads(1)
    tasks = tuple(check_task(t.strip()) for t in args.tasks.split(",")) if args.tasks else None
    for kind in args.kinds:
        if kind not in BC_KINDS:
            raise UsageError(f"unknown agent kind {kind!r}; accepted: {', '.join(BC_KINDS)}")
    language = HELDOUT_SPLITS if args.language is None else tuple(args.language)
    for split in language:
        if split not in HELDOUT_SPLITS:
            raise UsageError(
                f"unknown language split {split!r}; accepted: {', '.join(HELDOUT_SPLITS)}"
            )
    results = bench_agents(
        args.data,
        args.out,
        seeds=tuple(args.seeds),
        kinds=tuple(args.kinds),
        episodes=args.episodes,
        preset=args.preset,
        steps=args.steps,
        floor_steps=args.floor_steps,
        tasks=tasks,
        language_splits=language,
        num_envs=args.num_envs,
        progress=not args.quiet,
        device=args.device,
    )
    print(format_table(results))
    print(json.dumps(results["summary"]["hierarchical_minus_end_to_end"], indent=1))
    print(json.dumps(results["latency"], indent=1))
    return 0


def cmd_bench_rl(args: argparse.Namespace) -> int:
    from embodied.bench.rl import VARIANTS, bench_rl, format_summary

    variants = _variants(args.variants, VARIANTS)
    if any(VARIANTS[v].get("residual") for v in variants) and args.base is None:
        raise UsageError("the residual variants need --base RUN (the imitation agent they correct)")
    if args.base is not None and not Path(args.base).exists():
        raise UsageError(
            f"--base {args.base!r} does not exist; give a run written by `train agent`"
        )
    results = bench_rl(
        args.base,
        args.out,
        task=check_task(args.task),
        steps=args.steps,
        seeds=tuple(args.seeds),
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        pusher_steps=args.pusher_steps,
        progress=not args.quiet,
        variants=variants,
        factors=factor_magnitudes(args.factors) if args.factors else None,
    )
    print(format_summary(results))
    return 0


def cmd_bench_language(args: argparse.Namespace) -> int:
    import torch

    from embodied.bench.language import bench_language, table

    torch.set_num_threads(1)
    results = bench_language(
        args.run, args.out, episodes=args.episodes, seed=args.seed, tasks=args.tasks,
        num_envs=args.num_envs, progress=not args.quiet,
    )  # fmt: skip
    print(table(results))
    return 0


def cmd_bench_headline(args: argparse.Namespace) -> int:
    import torch

    from embodied.bench.headline import bench_headline

    torch.set_num_threads(1)
    if not args.runs and not args.shipped:
        raise SystemExit("bench headline: give --runs DIR, --shipped, or both")
    bench_headline(
        args.out, runs=args.runs, seeds=tuple(args.seeds), shipped=args.shipped,
        parts=tuple(args.parts), episodes=args.episodes,
        language_episodes=args.language_episodes or args.episodes,
        suite_episodes=args.suite_episodes, num_envs=args.num_envs,
        log=(lambda _: None) if args.quiet else print,
    )  # fmt: skip
    print((Path(args.out) / "headline.md").read_text())
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add this group's verbs to the top-level parser."""
    p = sub.add_parser("bench", help="benchmarks")
    bench = p.add_subparsers(dest="bench", metavar="WHAT", required=True)
    b = bench.add_parser(
        "env", help="env steps/s (state, 64px images) vs raw physics and peer envs, one core"
    )
    b.add_argument("--out", required=True, help="JSON file for the results")
    b.add_argument("--steps", type=positive, default=2000, help="control steps per measurement")
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
    b.add_argument("--episodes", type=positive, default=50, help="held-out evaluation episodes")
    b.add_argument("--dagger", type=int, default=3, help="DAgger rounds (0: none)")
    b.add_argument("--dagger-episodes", type=positive, default=50, help="rollouts per round")
    b.add_argument("--dagger-demos", help="demo counts that get DAgger (default: the smallest)")
    b.add_argument("--pixel-tasks", help="tasks for bc-pixels (default: none; it is slow on a CPU)")
    b.add_argument("--pixel-demos", help="demo counts for bc-pixels, e.g. 1000")
    b.add_argument("--pixel-steps", type=positive, help="bc-pixels updates (default: the preset's)")
    b.add_argument(
        "--device", default="cpu", choices=["auto", "cpu", "cuda"], help="where bc-pixels trains"
    )
    b.add_argument("--workers", type=positive, default=2, help="parallel collection processes")
    b.add_argument("--num-envs", type=positive, default=2, help="vectorized evaluation envs")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_bench_learnability)

    b = bench.add_parser(
        "robustness",
        help="an imitation agent trained nominally vs with domain randomisation, through a "
        "robustness suite",
    )
    b.add_argument("--out", required=True, help="directory for data/, runs/, suites/ (resumes)")
    b.add_argument("--task", default="pick-place", help="task name (default: pick-place)")
    b.add_argument(
        "--kind",
        default="bc-state",
        choices=BC_KINDS,
        help="the agent trained (default: bc-state; the others read the cameras)",
    )
    b.add_argument(
        "--preset",
        default="default",
        help="the kind's training preset (see `train agent --preset`: previous-action, "
        "history, history-dropout, ...)",
    )
    b.add_argument("--demos", type=positive, default=200, help="demos per trained agent")
    b.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    b.add_argument(
        "--randomize",
        default=None,
        help="factor families of the domain-randomised training (default: every family for "
        "the pixel kinds; all but visual for bc-state, which sees no images)",
    )
    b.add_argument(
        "--language",
        default="train",
        help="language split of the collected demos (default: train, so the held-out "
        "paraphrases stay held out)",
    )
    b.add_argument("--workers", type=positive, default=1, help="processes collecting demos")
    b.add_argument("--num-envs", type=positive, default=1, help="env processes per suite cell")
    b.add_argument("--magnitude", type=float, default=1.0, help="largest training magnitude")
    b.add_argument(
        "--joint",
        type=float,
        default=0.0,
        help="share of DR episodes with one magnitude for every factor, in [0, 1] (default 0)",
    )
    b.add_argument("--suite", default="all", help="robustness suite (see `suites`)")
    b.add_argument("--episodes", type=positive, default=20, help="episodes per suite cell")
    b.add_argument("--no-events", action="store_true", help="skip the world-events suite")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_bench_robustness)

    b = bench.add_parser(
        "experts", help="scripted-expert success rate per task over seeded episodes"
    )
    b.add_argument("--out", required=True, help="JSON file for the results")
    b.add_argument(
        "--episodes", type=positive, default=100, help="episodes per task (seeds seed..seed+N-1)"
    )
    b.add_argument("--noise", type=non_negative_float, default=0.0, help="expert action noise")
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
    b.add_argument("--episodes", type=positive, default=60, help="demos per task")
    b.add_argument("--seed", type=int, default=0, help="seed of demos and training")
    b.add_argument(
        "--tasks", default="pick-place,stack", help="comma-separated tasks of the quality runs"
    )
    b.add_argument(
        "--variants",
        default="default,perceived,default-no-slots,state,state-slots",
        help="comma-separated models to train per task (default, perceived: slots from a "
        "keypoint agent's perception, default-no-slots, state, state-slots)",
    )
    b.add_argument("--steps", type=positive, help="training updates (default: the preset's)")
    b.add_argument(
        "--no-training", action="store_true", help="only throughput and imagination speed"
    )
    b.set_defaults(func=cmd_bench_world_model)
    b = bench.add_parser(
        "agents",
        help="end-to-end vs hierarchical agents: several seeds, every task, latency",
    )
    b.add_argument("--data", required=True, nargs="+", help="demo dataset directories")
    b.add_argument("--out", required=True, help="directory for runs/ and results.json (resumes)")
    b.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    b.add_argument("--episodes", type=positive, default=20, help="evaluation episodes per task")
    b.add_argument("--preset", default="default", help="debug, default or large")
    b.add_argument(
        "--steps",
        type=positive,
        help="updates of the first stage (perception's and the decisions') (default: the preset's)",
    )
    b.add_argument("--floor-steps", type=positive, help="bc-pixels updates (default: the preset's)")
    b.add_argument(
        "--kinds",
        nargs="+",
        default=["end-to-end", "hierarchical", "bc-pixels"],
        help="agents to train: end-to-end, hierarchical (also evaluated under the oracle "
        "System 2), bc-keypoints, hierarchical-keypoints, bc-pixels, bc-state",
    )
    b.add_argument(
        "--language",
        nargs="*",
        default=None,
        help="held-out language splits evaluated beside the in-distribution seeds (default: "
        "unseen-paraphrase unseen-composition; the flag alone: none)",
    )
    b.add_argument("--tasks", help="comma-separated tasks to evaluate (default: the trained ones)")
    b.add_argument("--num-envs", type=positive, default=2, help="vectorized evaluation envs")
    b.add_argument(
        "--device", default="cpu", choices=["auto", "cpu", "cuda"], help="where training runs"
    )
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_bench_agents)
    b = bench.add_parser(
        "rl", help="residual RL over an imitation agent vs RL from scratch: curves, throughput"
    )
    b.add_argument("--base", help="the frozen imitation agent's run directory (residual)")
    b.add_argument("--out", required=True, help="directory for runs/, results.json, curves.png")
    b.add_argument(
        "--variants",
        default="residual,scratch",
        help="runs per seed, comma-separated: residual, residual-previous-action (the actor reads "
        "its last executed action), residual-privileged (asymmetric critic), "
        "residual-demos (expert-guided episodes in the buffer), residual-privileged-demos, "
        "residual-privileged-demos-gripper2 (and the gripper's bound at 2), "
        "residual-previous-action-gripper2-quiet and "
        "residual-privileged-demos-previous-action-gripper2-quiet (and a quiet start), "
        "scratch (shaped reward), scratch-dense, scratch-sparse, her (sparse goal reward, "
        "hindsight replay)",
    )
    b.add_argument("--task", default="pick-place", help="task name (see `tasks`)")
    b.add_argument("--steps", type=positive, default=50_000, help="env steps per run")
    b.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    b.add_argument("--eval-every", type=positive, default=5_000, help="env steps between evals")
    b.add_argument("--eval-episodes", type=positive, default=50, help="episodes per evaluation")
    b.add_argument(
        "--pusher-steps", type=positive, default=2_000, help="SB3 SAC steps on Pusher-v5"
    )
    b.add_argument(
        "--factors",
        metavar="NAME=M[,NAME=M]",
        help="a fixed deployment condition for every run's training env and evaluations "
        "(`train rl --factors`)",
    )
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_bench_rl)
    b = bench.add_parser(
        "language",
        help="an agent's success per task in its training words and under every held-out "
        "language phenomenon (word orders, relative clauses, frames, per-task synonyms)",
    )
    b.add_argument("run", help="a trained agent's run directory")
    b.add_argument("--out", required=True, help="JSON file for the results (resumed)")
    b.add_argument("--episodes", type=positive, default=50, help="episodes per task and split")
    b.add_argument("--seed", type=int, default=0, help="first seed")
    b.add_argument("--tasks", nargs="+", help="tasks (default: every task the agent knows)")
    b.add_argument("--num-envs", type=positive, default=2, help="env worker processes")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_bench_language)
    b = bench.add_parser(
        "headline",
        help="every agent row on every task over training seeds: success with intervals, chain "
        "links, held-out language, the middle and events suites, cost, latency (resumed)",
    )
    b.add_argument("--out", required=True, help="directory for headline.json/.md/.png")
    b.add_argument("--runs", help="runs laid out as RUNS/KIND/TASK/seed_K (TASK: six-tasks too)")
    b.add_argument(
        "--shipped",
        action="store_true",
        help="add the agents in assets/agents as seed 0 where RUNS has none",
    )
    b.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    b.add_argument(
        "--parts",
        nargs="+",
        default=list(HEADLINE_PARTS),
        choices=HEADLINE_PARTS,
        help="what to measure per cell",
    )
    b.add_argument("--episodes", type=positive, default=50, help="episodes per nominal cell")
    b.add_argument(
        "--language-episodes",
        type=positive,
        help="episodes per held-out language split (default: --episodes)",
    )
    b.add_argument(
        "--suite-episodes", type=positive, default=20, help="episodes per robustness-suite cell"
    )
    b.add_argument("--num-envs", type=positive, default=2, help="env worker processes")
    b.add_argument("--quiet", action="store_true", help="no progress lines")
    b.set_defaults(func=cmd_bench_headline)
