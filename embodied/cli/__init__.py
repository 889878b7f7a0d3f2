"""The command line: ``wm-sandbox <verb> ...`` or ``python -m embodied <verb> ...``.

``main(argv)`` takes a list, so tests call it in-process. User errors print one line naming
what was wrong and what is accepted, and return exit code 2. Each verb group lives in its own
module (``data``, ``train``, ``evaluate``, ``bench``, ``demo``): its ``cmd_*`` functions do the
work, its ``add_parsers`` declares the arguments.
"""

from __future__ import annotations

import argparse
import sys

from embodied.cli import bench, data, demo, evaluate, train
from embodied.cli.common import UsageError

__all__ = ["UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wm-sandbox",
        description="Embodied-AI world-model sandbox: tasks, demos, videos, benchmarks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in (data, train, evaluate, demo, bench):
        group.add_parsers(sub)
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
