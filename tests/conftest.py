from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import envs

TASK_NAMES = envs.TASKS.names()


@pytest.fixture(params=TASK_NAMES)
def task(request) -> str:
    return request.param


@dataclass
class TrainedRun:
    """A training run: its directory, its report and the agent training left in memory."""

    out: Path
    report: dict[str, Any]
    bundle: Any


@pytest.fixture(scope="session")
def trained_bc(tmp_path_factory):
    """``trained_bc(kind)``: ``kind``'s debug preset trained once a session on three pick-place
    demos (state ones for ``bc-state``, 32-px pixel ones else): a :class:`TrainedRun`."""
    from embodied.data.collect import collect
    from embodied.training.baselines import train_bc_agent

    data: dict[str, Path] = {}
    runs: dict[str, TrainedRun] = {}

    def train(kind: str) -> TrainedRun:
        if kind not in runs:
            mode = "state" if kind == "bc-state" else "pixels"
            if mode not in data:
                root = tmp_path_factory.mktemp("demos") / f"pick-place-{mode}"
                layout = {"obs_mode": "state"} if mode == "state" else {"image_size": 32}
                collect("pick-place", 3, root, seed=100, noise=0.1, progress=False, **layout)
                data[mode] = root
            out = tmp_path_factory.mktemp("runs") / kind
            report, bundle = train_bc_agent(kind, [data[mode]], out, preset="debug",
                                            progress=False, tensorboard=False)  # fmt: skip
            runs[kind] = TrainedRun(out, report, bundle)
        return runs[kind]

    return train


def check_rl_run_holds_the_trained_model(run, task: str, model, seed: int = 3, steps: int = 6):
    """The agent loaded from ``run`` is the SB3 ``model`` that training left in memory: the same
    policy tensors, the same actions step by step from a seeded reset; and it is not a fresh
    policy of the same settings seeded as training was (what a save of the start would hold)."""
    from stable_baselines3.common.utils import set_random_seed

    from embodied.saved_agents import load_bundle
    from policies.bundles import env_overrides

    bundle = load_bundle(run)
    trained, loaded = model.policy.state_dict(), bundle.policy.state_dict()
    assert trained.keys() == loaded.keys()
    differ = [k for k in trained if not torch.equal(trained[k], loaded[k])]
    assert not differ, f"saved otherwise than trained: {differ}"
    set_random_seed(bundle.info["seed"])  # as SB3 does before it builds the policy
    policy = bundle.policy
    fresh = type(policy)(**policy._get_constructor_parameters()).state_dict()
    actor = [k for k in loaded if k.startswith(("actor.", "mlp_extractor.", "action_net."))]
    unchanged = [k for k in actor if torch.equal(fresh[k], loaded[k])]
    assert actor and not unchanged, f"never trained: {unchanged}"
    env = envs.make(task, **env_overrides(bundle))
    obs, info = env.reset(seed=seed)
    in_memory, from_disk = bundle.make(seed=1, task=task), bundle.make(seed=1, task=task)
    in_memory.policy = model.policy
    for agent in (in_memory, from_disk):
        agent.reset(info["instruction"])
    for _ in range(steps):
        x, y = in_memory.act(obs), from_disk.act(obs)
        np.testing.assert_array_equal(x, y)
        assert x.shape == (5,) and np.all(np.abs(x) <= 1)
        obs, *_ = env.step(x)
    env.close()


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
