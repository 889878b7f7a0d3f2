"""Headless GL backend selection and its error message."""

import subprocess
import sys

from envs import rendering


def test_user_choice_is_kept(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    monkeypatch.setattr(
        rendering, "probe_backend", lambda b: (_ for _ in ()).throw(AssertionError("probed"))
    )
    assert rendering.select_backend() == "osmesa"


def test_probe_prefers_egl_then_osmesa_and_caches(monkeypatch, tmp_path):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    probed = []
    monkeypatch.setattr(rendering, "probe_backend", lambda b: probed.append(b) or b == "osmesa")
    assert rendering.select_backend() == "osmesa"
    assert probed == ["egl", "osmesa"]
    monkeypatch.delenv("MUJOCO_GL")
    assert rendering.select_backend() == "osmesa" and probed == ["egl", "osmesa"]  # from the cache


def test_no_backend_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(rendering, "probe_backend", lambda b: False)
    assert rendering.select_backend() is None
    message = str(rendering.renderer_error(RuntimeError("no display")))
    assert "libegl1" in message and "libosmesa6" in message and "scripts/setup.sh" in message


def test_the_backend_in_use_really_renders():
    assert rendering.probe_backend(rendering.select_backend() or "egl")


def test_an_env_left_unclosed_exits_quietly():
    """Its GL contexts are freed before mujoco terminates EGL: no traceback at exit."""
    code = (
        "import envs\n"
        "e = envs.make('reach'); e.reset(seed=0)\n"
        "f = envs.make('push'); f.reset(seed=0); f.render_camera('front', 48, fast=False)\n"
        "g = envs.make('push'); g.reset(seed=0); g.close()\n"
        "print('done')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "done"
    assert "Traceback" not in result.stderr and "EGLError" not in result.stderr, result.stderr
