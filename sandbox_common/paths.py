"""Paths as results files record them: relative to the working directory (the project root
when the benchmark scripts run them), so that results committed to the repository name no
directory of the machine that made them."""

from __future__ import annotations

import os
from pathlib import Path


def portable_path(path: str | os.PathLike) -> str:
    """``path`` relative to the working directory when it lies inside it; otherwise only its
    last two parts (``<elsewhere>/parent/name``), never an absolute path."""
    p = Path(path).resolve()
    try:
        return p.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return "<elsewhere>/" + "/".join(p.parts[-2:])
