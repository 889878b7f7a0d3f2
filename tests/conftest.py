import numpy as np
import pytest

import envs

TASK_NAMES = envs.TASKS.names()


@pytest.fixture(params=TASK_NAMES)
def task(request) -> str:
    return request.param


def random_actions(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, 5)).astype(np.float32)


def train_debug_variant(kind, demos, out, monkeypatch, **fields):
    """Train ``kind``'s debug preset with ``fields`` changed (a preset registered for the test
    only); returns the training report."""
    from dataclasses import replace

    from embodied.training.baselines import train_bc
    from policies.bc_config import BC_PRESETS, bc_preset

    monkeypatch.setitem(
        BC_PRESETS[kind], "debug-variant", replace(bc_preset(kind, "debug"), **fields)
    )
    return train_bc(kind, [demos], out, preset="debug-variant", progress=False, tensorboard=False)


def train_with_previous_action(kind, demos, out, monkeypatch):
    """Train ``kind``'s debug preset with ``previous_action`` on; returns the loaded bundle."""
    from embodied.saved_agents import load_bundle
    from policies.bc_config import bc_preset

    train_debug_variant(kind, demos, out, monkeypatch, previous_action=True)
    assert bc_preset(kind, "previous-action").previous_action
    return load_bundle(out)


def check_remembers_previous_action(agent, obs, instruction: str) -> None:
    """The agent's action depends on the last one it chose, which only ``act`` records and
    ``reset`` clears."""
    agent.reset(instruction)
    first = agent.raw_action(obs)
    np.testing.assert_array_equal(agent.raw_action(obs), first)  # raw_action keeps the memory
    action = agent.act(obs)
    np.testing.assert_array_equal(agent.previous, action)
    assert not np.allclose(agent.raw_action(obs), first)  # the same frame, another memory
    agent.reset(instruction)
    np.testing.assert_array_equal(agent.previous, 0.0)
    np.testing.assert_array_equal(agent.raw_action(obs), first)


def check_reads_its_last_steps(bundle, env, task: str) -> None:
    """An agent trained with ``history``: what it does now depends on the steps it took before
    (another agent of the same bundle, fresh on the same frame, acts otherwise), and ``reset``
    forgets them (the first frame gives the first action again)."""
    obs, info = env.reset(seed=3)
    agent = bundle.make(task=task)
    agent.reset(info["instruction"])
    first = agent.raw_action(obs)
    later = obs
    for _ in range(2):
        later, *_ = env.step(agent.act(later))
    fresh = bundle.make(task=task)
    fresh.reset(info["instruction"])
    fresh.raw_action(obs)  # binds the instruction on the same first frame
    assert not np.allclose(fresh.raw_action(later), agent.raw_action(later))
    agent.reset(info["instruction"])
    np.testing.assert_array_equal(agent.previous, 0.0)
    np.testing.assert_array_equal(agent.raw_action(obs), first)
