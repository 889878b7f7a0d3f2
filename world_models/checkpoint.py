"""The one checkpoint format: a torch file written atomically, with config, data and code version.

Every trained artifact (world models now, policies and agents later) is saved with
:func:`save_checkpoint` and read back with :func:`load_checkpoint`, which names what is wrong
when a file is truncated, is not a checkpoint, or holds another kind or config of model.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import torch

from sandbox_common.atomic import atomic_write
from sandbox_common.errors import InputError

FORMAT_VERSION = 1


class CheckpointError(InputError):
    """A checkpoint is missing, corrupt, or does not match what it is loaded for."""


def code_version() -> str:
    """The package version plus the git commit of the source tree, when there is one."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        base = version("wm-sandbox")
    except PackageNotFoundError:
        base = "unknown"
    try:
        root = Path(__file__).resolve().parent.parent
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return f"{base}+{commit}" if commit else base


def save_checkpoint(path: str | os.PathLike, kind: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, configs as dicts, numbers) as a ``kind`` checkpoint, atomically."""
    record = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "code_version": code_version(),
        **payload,
    }
    buffer = io.BytesIO()
    torch.save(record, buffer)
    data = buffer.getvalue()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda fh: fh.write(data))


def load_checkpoint(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """Read a checkpoint and check that it is a ``kind`` checkpoint of this format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        record = torch.load(path, map_location="cpu", weights_only=False)
    except (
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        ValueError,
        OSError,
    ) as exc:
        raise CheckpointError(
            f"{path}: corrupt or truncated checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None
    if not isinstance(record, dict) or "kind" not in record:
        raise CheckpointError(f"{path}: not a wm-sandbox checkpoint")
    if record["kind"] != kind:
        raise CheckpointError(f"{path}: holds a {record['kind']!r} checkpoint, expected {kind!r}")
    if record.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {record.get('format_version')!r}, this code reads {FORMAT_VERSION}"
        )
    return record


def config_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Fields whose values differ between two config dicts, as 'name: saved vs wanted'."""
    keys = sorted(set(saved) | set(wanted))
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    return [
        f"{k}: {saved.get(k)!r} vs {wanted.get(k)!r}"
        for k in keys
        if norm(saved.get(k)) != norm(wanted.get(k))
    ]
