"""Atomic file writes: write a temp file in the same directory, fsync, rename over the target."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fh)`` on a temp file beside ``path``, then rename it to ``path``.

    A crash leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_json_atomic(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    data = json.dumps(payload, indent=2, sort_keys=True).encode()
    return atomic_write(path, lambda fh: fh.write(data))
