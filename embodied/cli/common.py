"""What every verb shares: the usage error, value parsers, env and Ray options."""

from __future__ import annotations

import argparse
import json
from typing import Any

PLANNER_CHOICES: tuple[str, ...] = ("learned", "oracle", "imagined")
"""``policies.two_systems.PLANNERS`` spelled out: importing ``policies`` here would load torch for every
command (a test keeps the two equal)."""


class UsageError(Exception):
    """A bad command-line value; the message says what is accepted."""


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def env_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in getattr(args, "set", None) or []:
        if "=" not in item:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip().replace("-", "_")] = parse_value(value)
    if getattr(args, "image_size", None) is not None:
        overrides["image_size"] = args.image_size
    if getattr(args, "obs_mode", None) is not None:
        overrides["obs_mode"] = args.obs_mode
    if getattr(args, "cameras", None):
        overrides["cameras"] = comma_list(args.cameras)
    if isinstance(overrides.get("cameras"), list):
        overrides["cameras"] = tuple(overrides["cameras"])
    if getattr(args, "factors", None):
        overrides["factors"] = factor_magnitudes(args.factors)
    if getattr(args, "events", None):
        overrides["events"] = comma_list(args.events)
    if getattr(args, "randomize", None):
        overrides["randomize"] = comma_list(args.randomize)
    if getattr(args, "magnitude", None) is not None:
        if not getattr(args, "randomize", None):
            raise UsageError("--magnitude caps --randomize: give --randomize FAMILY[,FAMILY] too")
        overrides["randomize_magnitude"] = args.magnitude
    if getattr(args, "joint", None) is not None:
        if not getattr(args, "randomize", None):
            raise UsageError("--joint shapes --randomize: give --randomize FAMILY[,FAMILY] too")
        overrides["randomize_joint"] = args.joint
    return overrides


def comma_list(text: str | None) -> tuple[str, ...]:
    """``"a, b,"`` -> ``("a", "b")`` (names are checked by whoever takes them)."""
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def factor_magnitudes(text: str) -> dict[str, float]:
    """``light_intensity=0.5,object_mass=1`` -> a dict (checked by the env config)."""
    out: dict[str, float] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value) if sep else 0.5
        except ValueError:
            raise UsageError(
                f"--factors expects NAME=MAGNITUDE[,NAME=MAGNITUDE] with magnitudes in [0, 1], "
                f"got {item!r}"
            ) from None
    return out


def factor_groups(text: str, task: str) -> dict[str, float]:
    """:func:`factor_magnitudes`' syntax where a family's name (``visual``) stands for each of its
    factors that apply to ``task`` and ``all`` for every factor of ``task`` (the benchmarks'
    probes: ``benchmarks/cube_perception.py``, ``benchmarks/true_table.py``)."""
    from envs.factors import FACTORS, FAMILIES, factors_of

    factors: dict[str, float] = {}
    for name, magnitude in factor_magnitudes(text).items():
        if name == "all" or name in FAMILIES:
            group = list(FACTORS) if name == "all" else factors_of([name])
            factors.update(
                dict.fromkeys((n for n in group if FACTORS[n].applies_to(task)), magnitude)
            )
        else:
            factors[name] = magnitude
    return factors


def check_task(name: str) -> str:
    import envs

    if name not in envs.TASKS:
        raise UsageError(f"unknown task {name!r}; known tasks: {', '.join(envs.TASKS.names())}")
    return name


def positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}") from None
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}")
    return number


def add_env_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--obs-mode", choices=("pixels", "state"), help="observation mode (default: pixels)"
    )
    p.add_argument(
        "--image-size", type=positive, help="observation image size in px (16-640, default 64)"
    )
    p.add_argument("--cameras", help="comma-separated observation cameras from front,wrist,side")
    p.add_argument(
        "--factors",
        metavar="NAME=M[,NAME=M]",
        help="factors of variation at magnitudes in [0, 1] (see `suites --factors`)",
    )
    p.add_argument(
        "--events", metavar="EVENT[,EVENT]", help="world events (see `suites --factors`)"
    )
    p.add_argument(
        "--randomize",
        metavar="FAMILY[,FAMILY]",
        help="domain randomisation: visual, physical, sensing, actuation, language (magnitudes "
        "from training bands that never hold an evaluation magnitude)",
    )
    p.add_argument(
        "--magnitude",
        type=float,
        help="largest domain-randomisation magnitude, in (0, 1] (default 1)",
    )
    p.add_argument(
        "--joint",
        type=float,
        help="share of randomised episodes with one magnitude for every factor, in [0, 1] "
        "(default 0: each factor draws its own)",
    )
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="any other task config field"
    )


def add_ray_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help=f"{what}; ADDRESS joins a running cluster, --ray alone starts a local Ray "
        "(pip install -e .[ray])",
    )


def task_list(text: str | None) -> list[str]:
    import envs

    if not text or text == "all":
        return envs.TASKS.names()
    return [check_task(t.strip()) for t in text.split(",") if t.strip()]


def int_list(text: str | None, flag: str) -> list[int]:
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
