"""``train world-model``, ``train agent`` (imitation of every kind, DAgger, seed sweeps) and
``train rl`` (stable-baselines3 from scratch, or residual over a trained agent)."""

from __future__ import annotations

import argparse
from pathlib import Path

from embodied.cli.common import (
    UsageError,
    add_ray_option,
    check_task,
    comma_list,
    factor_magnitudes,
    positive,
)
from policies.bc import BC_KINDS


def _training_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``train_bc`` from the command line."""
    return {
        "preset": args.preset,
        "steps": args.steps,
        "device": args.device,
        "dagger": args.dagger,
        "dagger_episodes": args.dagger_episodes,
        "teacher": args.teacher,
        "dagger_beta": args.dagger_beta,
    }


def _report_line(kind: str, report: dict) -> str:
    """One line per round of a trained run (round 0: imitation; then DAgger rounds)."""
    lines = []
    for r, rnd in enumerate(report["rounds"]):
        rollouts = ", ".join(
            f"{x['task']} {x['rollout_success']:.0%}" for x in rnd.get("rollouts", [])
        )
        final = {k: round(v, 4) for k, v in rnd["final"].items()}
        lines.append(
            f"round {r}: {rnd['steps']} steps {final}"
            + (f"; rollouts: {rollouts}" if rollouts else "")
        )
    return "\n".join(lines)


def cmd_train_agent(args: argparse.Namespace) -> int:
    import torch

    from embodied.training.baselines import train_bc

    torch.set_num_threads(args.threads)
    options = _training_options(args)
    if args.seeds or args.ray is not None:
        return _train_sweep(args, options)
    report = train_bc(
        args.kind, args.data, args.out, seed=args.seed, progress=not args.quiet, **options
    )
    print(_report_line(args.kind, report))
    print(f"agent written to {Path(args.out) / 'agent.pt'} (train.json, round_*/)")
    return 0


def _train_sweep(args: argparse.Namespace, options: dict) -> int:
    """``train agent --seeds K... [--ray [ADDRESS]]``: one run per seed in ``OUT/seed_<k>``."""
    from embodied.scale import sweep_dir, train_sweep, train_sweep_ray

    if not args.seeds:
        raise UsageError("--ray trains a seed sweep: give the seeds, e.g. --seeds 0 1 2")
    if args.ray is None:
        reports = train_sweep(
            args.kind, args.data, args.out, args.seeds, progress=not args.quiet, **options
        )
    else:
        reports = train_sweep_ray(args.kind, args.data, args.out, args.seeds, args.ray, **options)
    for seed, report in reports.items():
        line = _report_line(args.kind, report).splitlines()[-1]
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
        perception=args.perception,
    )
    rows = summary.get("per_horizon", {})
    print(f"world model written to {args.out} (eval.json, eval.png, checkpoint.pt, tensorboard/)")
    for h, row in rows.items():
        print(
            f"  horizon {h:>2}: model {row['model']:.4f}  nothing-moves {row['nothing_moves']:.4f}  "
            f"linear {row['linear']:.4f}  ({summary['error_space']} space)"
        )
    return 0


def cmd_train_rl(args: argparse.Namespace) -> int:
    from embodied.training.rl import RLConfig, train_rl

    if args.her and (args.init is not None or args.dream is not None):
        raise UsageError("--her trains from scratch: drop --init / --dream")
    if args.her and args.reward is not None:
        raise UsageError(
            f"--her pays the goal test (1 when the goal is reached, what HER relabels with); "
            f"drop --reward {args.reward}"
        )
    if (
        args.privileged_critic or args.demo_episodes or args.residual_previous_action
    ) and not args.residual:
        raise UsageError(
            "--privileged-critic, --demo-episodes and --residual-previous-action are for a "
            "residual: --init RUN --residual"
        )
    if args.init is not None and not args.residual:
        raise UsageError("--init RUN trains a residual over that agent: add --residual")
    if args.residual and args.init is None:
        raise UsageError("--residual needs the base agent: --init RUN")
    if args.dream is not None and args.init is not None:
        raise UsageError("choose one: --init RUN --residual, or --dream WORLD_MODEL_RUN")
    if args.dream is not None and not Path(args.dream).exists():
        raise UsageError(f"--dream {args.dream!r} does not exist; give a `train world-model` run")
    if args.init is not None and not Path(args.init).exists():
        raise UsageError(
            f"--init {args.init!r} does not exist; give a run written by `train agent`"
        )
    try:
        given = {
            "residual_scale": args.residual_scale,
            "ent_coef": args.ent_coef,
            "residual_gripper_scale": args.residual_gripper_scale,
            "residual_log_std": args.residual_log_std,
            "residual_previous_action": args.residual_previous_action or None,
        }
        config = RLConfig(
            algo=args.algo,
            steps=args.steps,
            learning_rate=args.learning_rate,
            **{k: v for k, v in given.items() if v is not None},
            eval_every=args.eval_every,
            eval_episodes=args.eval_episodes,
            checkpoint_every=args.checkpoint_every,
            learning_starts=min(1_000, max(1, args.steps // 10)),
            her=args.her,
            privileged_critic=args.privileged_critic,
            demo_episodes=args.demo_episodes,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    report = train_rl(
        check_task(args.task),
        args.out,
        config,
        init=args.init,
        obs_mode=args.obs_mode,
        reward=args.reward,
        dream=args.dream,
        seed=args.seed,
        progress=not args.quiet,
        randomize=comma_list(args.randomize),
        randomize_magnitude=args.magnitude,
        randomize_joint=args.joint,
        factors=factor_magnitudes(args.factors) if args.factors else None,
    )
    last = report["evals"][-1]
    lo, hi = last["ci95"]
    if "imagined_return" in last:
        print(
            f"return: imagined {last['imagined_return']:.2f}, real {last['mean_return']:.2f}; "
            f"success: imagined {last['imagined_success']:.0%}, real {last['success_rate']:.0%}"
        )
    print(
        f"{report['kind']} agent ({args.algo}) on {args.task}: {report['env_steps']} env steps in "
        f"{report['train_seconds']:.0f} s; success {last['success_rate']:.0%} "
        f"({lo:.0%}-{hi:.0%}) on {args.eval_episodes} held-out episodes -> {args.out}/agent.pt"
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
    t.add_argument(
        "--perception",
        metavar="AGENT_RUN",
        help="a bc-keypoints / hierarchical-keypoints run whose object perception starts the "
        "world model's object slots (omit: the model finds objects with its own keypoint maps)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train_world_model)

    t = train.add_parser(
        "agent",
        help="train (or resume) an agent by imitation: layered (end-to-end, hierarchical) or a "
        "reference baseline (bc-state, bc-pixels; optionally with DAgger), or an agent on "
        "perceived objects (bc-keypoints: end-to-end, hierarchical-keypoints: layered)",
    )
    t.add_argument(
        "--kind",
        required=True,
        choices=BC_KINDS,
        help="which agent: end-to-end / hierarchical (the VLA with learned language, "
        "System 2 speaking words over it), bc-keypoints / hierarchical-keypoints (the same "
        "perception, parsed language), bc-state (privileged state), bc-pixels",
    )
    t.add_argument(
        "--data", required=True, nargs="+", help="dataset directories written by `collect`"
    )
    t.add_argument("--out", required=True, help="run directory (resumes when it holds checkpoints)")
    t.add_argument(
        "--preset",
        default="default",
        help="debug, default or large; more per kind (previous-action, history, history-dropout, history3-dropout, ...): an unknown name lists the kind's presets",
    )
    t.add_argument("--seed", type=int, default=0, help="training seed")
    t.add_argument(
        "--seeds", type=int, nargs="+", help="a seed sweep: one run per seed in OUT/seed_<k>"
    )
    add_ray_option(t, "train the --seeds on a Ray cluster, one run per worker")
    t.add_argument(
        "--steps", type=positive, help="updates of the first stage (default: the preset's)"
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

    t = train.add_parser(
        "rl",
        help="reinforcement learning with stable-baselines3: from scratch on state, or a "
        "residual over a trained agent (--init RUN --residual)",
    )
    t.add_argument("--task", required=True, help="task name (see `tasks`)")
    t.add_argument("--algo", default="sac", choices=["sac", "td3", "ppo"], help="SB3 algorithm")
    t.add_argument(
        "--obs-mode",
        choices=["state", "pixels"],
        help="from scratch: state; residual: the base agent's (the default)",
    )
    t.add_argument("--init", help="a trained agent's run directory: the frozen base")
    t.add_argument("--residual", action="store_true", help="learn a correction to --init")
    t.add_argument(
        "--dream",
        metavar="WORLD_MODEL_RUN",
        help="train inside this world model's dream env; evaluate in the simulator",
    )
    t.add_argument(
        "--residual-scale",
        type=float,
        help="bound of the residual correction (actions are in [-1, 1]; default 0.3)",
    )
    t.add_argument(
        "--residual-gripper-scale",
        type=float,
        help="bound of the residual's gripper command, up to 2 (it can then open a closed "
        "gripper and close an open one; default: --residual-scale)",
    )
    t.add_argument(
        "--residual-log-std",
        type=float,
        help="sac/ppo residuals: the actor's log-std at the start (default: SB3's, about 0; "
        "-2 explores with a std of 0.14, which leaves the base's gripper alone)",
    )
    t.add_argument(
        "--ent-coef",
        help="SAC's entropy coefficient: auto (learned from 1), auto_X (learned from X) or a "
        "fixed number (default auto_0.01)",
    )
    t.add_argument(
        "--reward",
        choices=["shaped", "dense", "sparse"],
        help="shaped (the default): success + potential-based shaping by the task's dense "
        "progress (the task's dense reward pays for hovering; see embodied/training/rl_envs.py)",
    )
    t.add_argument(
        "--her",
        action="store_true",
        help="sac/td3 from scratch with hindsight experience replay, on the goal-conditioned "
        "view of a one-goal task (reach, push, pick-place); the reward is the goal test",
    )
    t.add_argument(
        "--privileged-critic",
        action="store_true",
        help="sac residuals: an asymmetric critic that also reads the simulator's task-relative "
        "state; the actor (what the agent deploys) never does",
    )
    t.add_argument(
        "--residual-previous-action",
        action="store_true",
        help="residuals: the actor also reads the action executed one step earlier (what an "
        "observation or action lag hides from it)",
    )
    t.add_argument(
        "--demo-episodes",
        type=int,
        default=0,
        help="sac/td3 residuals: episodes steered toward the scripted expert, stored in the "
        "replay buffer before learning (default 0)",
    )
    t.add_argument("--steps", type=positive, default=50_000, help="environment steps")
    t.add_argument("--learning-rate", type=float, default=3e-4, help="optimiser step size")
    t.add_argument("--eval-every", type=positive, default=5_000, help="env steps between evals")
    t.add_argument("--eval-episodes", type=positive, default=10, help="episodes per evaluation")
    t.add_argument(
        "--checkpoint-every", type=positive, default=5_000, help="env steps between checkpoints"
    )
    t.add_argument("--out", required=True, help="run directory (resumes when it holds sb3/)")
    t.add_argument("--seed", type=int, default=0, help="training seed")
    t.add_argument(
        "--randomize",
        metavar="FAMILY[,FAMILY]",
        help="domain randomisation of the training env (evaluation stays nominal); see `suites`",
    )
    t.add_argument(
        "--magnitude", type=float, default=1.0, help="largest randomisation magnitude, in (0, 1]"
    )
    t.add_argument(
        "--joint",
        type=float,
        default=0.0,
        help="share of randomised episodes with one magnitude for every factor, in [0, 1]",
    )
    t.add_argument(
        "--factors",
        metavar="NAME=M[,NAME=M]",
        help="a fixed deployment condition (factors of variation at magnitudes in [0, 1], see "
        "`suites --factors`) for the training env and every evaluation: a residual adapts its "
        "base to it",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train_rl)
