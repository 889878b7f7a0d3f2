"""``demo``: the one-command demo."""

from __future__ import annotations

import argparse
from pathlib import Path

from embodied.cli.common import check_task, non_negative_float, positive


def cmd_demo(args: argparse.Namespace) -> int:
    from embodied.demo import run_demo

    tasks = [check_task(t) for t in args.tasks.split(",")] if args.tasks else None
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
        agent_episodes=args.agent_episodes,
        agent_preset=args.agent_preset,
        baseline_episodes=args.baseline_episodes,
        layered_agents=args.layered,
    )
    print((Path(args.out) / "report.md").read_text())
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add this group's verbs to the top-level parser."""
    p = sub.add_parser("demo", help="the main demo: demos for every task, expert videos, a report")
    p.add_argument("--out", default="demo", help="output directory (resumes when it exists)")
    p.add_argument("--episodes", type=positive, default=20, help="demos per task")
    p.add_argument("--seed", type=int, default=0, help="first episode seed")
    p.add_argument(
        "--noise", type=non_negative_float, default=0.1, help="expert action noise in the demos"
    )
    p.add_argument("--tasks", help="comma-separated subset of tasks (default: all)")
    p.add_argument("--workers", type=positive, default=2, help="parallel collection processes")
    p.add_argument(
        "--world-model-steps", type=positive, default=600, help="updates of the demo's world model"
    )
    p.add_argument(
        "--world-model-episodes",
        type=positive,
        default=40,
        help="demos for the demo's world model",
    )
    p.add_argument("--no-world-model", action="store_true", help="skip the world-model part")
    p.add_argument("--no-agents", action="store_true", help="skip training and comparing agents")
    p.add_argument(
        "--layered",
        action="store_true",
        help="also train the end-to-end and hierarchical VLA agents live on the demo's demos",
    )
    p.add_argument(
        "--agent-steps", type=positive, default=1500, help="VLA updates (--layered)"
    )
    p.add_argument(
        "--agent-episodes", type=positive, default=10, help="evaluation episodes per task"
    )
    p.add_argument("--agent-preset", default="default", help="agent preset (debug for a smoke run)")
    p.add_argument(
        "--baseline-episodes",
        type=positive,
        default=200,
        help="state-only demos per task for the bc-state baseline",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
