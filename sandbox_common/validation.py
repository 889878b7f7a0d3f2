"""What every frozen config's ``__post_init__`` shares: collect each problem with a field, then
raise them together in one message that names the config class."""

from __future__ import annotations

from typing import Any


def check_positive(config: Any, names: tuple[str, ...], problems: list[str]) -> None:
    """Append a problem for each field in ``names`` below 1 (counts, sizes, step budgets)."""
    for name in names:
        if getattr(config, name) < 1:
            problems.append(f"{name} must be >= 1, got {getattr(config, name)}")


def raise_problems(config: Any, problems: list[str]) -> None:
    """Raise ``ValueError('invalid <Config>: a; b; ...')`` if there are any problems."""
    if problems:
        raise ValueError(f"invalid {type(config).__name__}: " + "; ".join(problems))


def without_retired(
    data: dict[str, Any], retired: dict[str, tuple[Any, str]], used: str, remedy: str
) -> dict[str, Any]:
    """``data`` (a written config) without the ``retired`` fields (name -> (the value every
    config now has, why it went)) that hold that value; raises ``ValueError`` naming the option
    when one was used: "``used`` the option NAME, WHY; ``remedy``"."""
    data = dict(data)
    for name, (value, why) in retired.items():
        if name in data and data.pop(name) != value:
            raise ValueError(f"{used.format(name=name, flag=name.replace('_', '-'))}, {why}; "
                             f"{remedy}")  # fmt: skip
    return data
