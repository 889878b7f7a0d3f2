"""Headless OpenGL backend selection. Imported by ``envs`` before anything imports mujoco.

MuJoCo reads ``MUJOCO_GL`` once, when it is first imported, so the choice must be made here.
If the user set ``MUJOCO_GL`` we keep it. Otherwise we probe, in a short-lived subprocess, whether
EGL can create a context, then OSMesa; the answer is cached per interpreter in the user's cache dir.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

BACKENDS = ("egl", "osmesa")
INSTALL_HINT = (
    "no headless OpenGL backend works here. Install one with\n"
    "  sudo apt-get install -y libegl1 libopengl0 libgl1-mesa-dri   # EGL (preferred)\n"
    "  sudo apt-get install -y libosmesa6                           # or OSMesa\n"
    "or run scripts/setup.sh, which does it; or set MUJOCO_GL to a backend that works."
)

_PROBE = (
    "import os, sys; os.environ['MUJOCO_GL'] = sys.argv[1]; os.environ['PYOPENGL_PLATFORM'] = sys.argv[1]\n"
    "import mujoco\n"
    "ctx = mujoco.GLContext(32, 32); ctx.make_current(); ctx.free()\n"
)


def _cache_file() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wm-sandbox"
    key = hashlib.sha1(sys.executable.encode()).hexdigest()[:12]
    return root / f"gl-backend-{key}"


def probe_backend(backend: str, timeout: float = 60.0) -> bool:
    """True when ``backend`` can create an offscreen OpenGL context in a fresh process."""
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE, backend],
            capture_output=True,
            timeout=timeout,
            env={**os.environ, "MUJOCO_GL": backend},
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def select_backend() -> str | None:
    """Set ``MUJOCO_GL`` (and PyOpenGL's platform) to a working headless backend; return it."""
    chosen = os.environ.get("MUJOCO_GL")
    if not chosen:
        cache = _cache_file()
        cached = cache.read_text().strip() if cache.is_file() else ""
        if cached in BACKENDS:
            chosen = cached
        else:
            chosen = next((b for b in BACKENDS if probe_backend(b)), None)
            if chosen is None:
                return None
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                cache.write_text(chosen)
            except OSError:
                pass
        os.environ["MUJOCO_GL"] = chosen
    if chosen in BACKENDS:
        os.environ.setdefault("PYOPENGL_PLATFORM", chosen)
    return chosen


def renderer_error(exc: BaseException) -> RuntimeError:
    """The error raised when an offscreen renderer cannot be created."""
    backend = os.environ.get("MUJOCO_GL", "(unset)")
    return RuntimeError(
        f"cannot create an offscreen renderer with MUJOCO_GL={backend}: {exc}\n{INSTALL_HINT}"
    )
