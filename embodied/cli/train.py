"""``train world-model`` and ``train agent`` (layered agents, baselines + DAgger, seed sweeps)."""

from __future__ import annotations

import argparse
from pathlib import Path

from embodied.cli.common import *


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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add this group's verbs to the top-level parser."""
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
    t.add_argument("--steps", type=positive, help="training updates (default: the preset's)")
    t.add_argument(
        "--threads", type=positive, default=1, help="torch threads (1 is fastest on 2 busy cores)"
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
    add_ray_option(t, "train the --seeds on a Ray cluster, one run per worker")
    t.add_argument("--steps", type=positive, help="System 1 updates (default: the preset's)")
    t.add_argument(
        "--planner-steps", type=positive, help="System 2 updates (default: the preset's)"
    )
    t.add_argument(
        "--dagger",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="baselines: DAgger rounds after behaviour cloning (default 0)",
    )
    t.add_argument(
        "--dagger-episodes", type=positive, default=50, help="rollouts per task per DAgger round"
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
        "--threads", type=positive, default=1, help="torch threads (1 is fastest on 2 busy cores)"
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train_agent)
