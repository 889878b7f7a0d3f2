"""Hindsight experience replay: the goal-conditioned view of a one-goal task and ``train rl --her``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import envs
from embodied.cli import main
from embodied.saved_agents import load_bundle
from embodied.training.rl import RLConfig, train_rl, train_rl_agent
from embodied.training.rl_envs import GoalTaskEnv
from envs.experts import ScriptedExpert
from envs.goal_view import GoalView, goal_reached
from tests.conftest import check_rl_run_holds_the_trained_model

TINY = {"steps": 120, "eval_every": 60, "eval_episodes": 1, "checkpoint_every": 60,
        "learning_starts": 30, "batch_size": 16, "net_arch": (32, 32), "her": True}  # fmt: skip


@pytest.mark.parametrize("task,test", [("reach", "reach"), ("push", "on_pad"),
                                       ("pick-place", "on_pad")])  # fmt: skip
def test_the_goal_test_agrees_with_the_task_success_along_an_expert_episode(task, test):
    env = envs.make(task, obs_mode="state")
    for seed in range(2):
        obs, info = env.reset(seed=seed)
        view = GoalView(tuple(o.kind for o in env.unwrapped.objects))
        view.reset(info["instruction"])
        first = view(obs)
        assert view.test == test and first["observation"].shape == (GoalView.observation_dim(test),)
        if task == "reach":  # the hand is what reach moves; the target is not in the observation
            assert np.allclose(first["achieved_goal"], obs["proprio"][:3])
        assert view.compute_reward(first["achieved_goal"], first["desired_goal"]) == 0.0
        expert, done = ScriptedExpert(env, seed=seed), False
        rewards = []
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act().executed)
            goals = view(obs)
            rewards.append(
                float(view.compute_reward(goals["achieved_goal"], goals["desired_goal"]))
            )
            done = terminated or truncated
        assert info["success"] and rewards[-1] == 1.0
        assert np.array_equal(goals["desired_goal"], first["desired_goal"])  # a fixed goal
    env.close()


def test_the_goal_test_is_vectorised_and_relabelling_changes_the_reward():
    achieved = np.array([[0.1, 0.2, 0.02], [0.1, 0.2, 0.02], [0.1, 0.2, 0.10]])
    desired = np.array([[0.11, 0.21, 0.0], [0.3, 0.2, 0.0], [0.1, 0.2, 0.0]])
    assert goal_reached(achieved, desired, "on_pad").tolist() == [True, False, False]  # lifted
    assert goal_reached(achieved[:2], desired[:2], "pushed_to").tolist() == [True, False]
    assert goal_reached(achieved, achieved + 0.01, "reach").all()
    with pytest.raises(ValueError, match="accepted: reach, on_pad, pushed_to"):
        goal_reached(achieved, desired, "near")


@pytest.mark.parametrize("task,words", [("stack", "moves"), ("sort", "links")])
def test_a_task_without_one_fixed_goal_is_refused(task, words):
    with pytest.raises(ValueError, match=f"HER needs .*{words}"):
        GoalTaskEnv(envs.make(task, obs_mode="state"))


def test_the_goal_env_passes_check_env_and_pays_its_goal_test():
    from gymnasium.utils.env_checker import check_env

    env = GoalTaskEnv(envs.make("push", obs_mode="state", terminate_on_success=False))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version.*")
        check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert set(obs) == {"observation", "achieved_goal", "desired_goal"}
    obs, reward, *_ = env.step(np.zeros(5, np.float32))
    assert reward == env.compute_reward(obs["achieved_goal"], obs["desired_goal"], {}) == 0.0
    relabelled = env.compute_reward(obs["achieved_goal"][None], obs["achieved_goal"][None], [{}])
    assert relabelled.tolist() == [1.0]  # the cube rests where it is: that goal is reached
    env.close()


def test_sac_with_her_trains_resumes_saves_and_loads_the_trained_policy(tmp_path):
    run = tmp_path / "her"
    config = RLConfig(**TINY)
    partial = train_rl("reach", run, config, progress=False, tensorboard=False, stop_after=60)
    assert partial == {"stopped_at": 60}
    report, model = train_rl_agent("reach", run, config, progress=False, tensorboard=False)
    assert report["resumed"] and report["env_steps"] == 120 and report["reward"] == "goal"
    bundle = load_bundle(run)
    assert bundle.kind == "rl" and bundle.view == "goal"
    check_rl_run_holds_the_trained_model(run, "reach", model, seed=2, steps=5)
    with pytest.raises(ValueError, match="her is for sac / td3"):
        RLConfig(algo="ppo", her=True)
    with pytest.raises(ValueError, match="HER trains from scratch"):
        train_rl("reach", tmp_path / "x", config, reward="sparse", progress=False)


def test_cli_her_refuses_a_reward_or_a_base(tmp_path, capsys):
    argv = ["train", "rl", "--task", "reach", "--her", "--out", str(tmp_path / "r"), "--quiet"]
    assert main([*argv, "--reward", "shaped"]) == 2
    assert "drop --reward shaped" in capsys.readouterr().err
    assert main([*argv, "--init", str(tmp_path), "--residual"]) == 2
    assert "--her trains from scratch" in capsys.readouterr().err


def test_bench_rl_runs_her_beside_sac_on_the_sparse_reward_without_a_base(tmp_path):
    from embodied.bench.rl import bench_rl

    results = bench_rl(None, tmp_path / "bench", task="reach", steps=60, seeds=(0,),
                       eval_every=60, eval_episodes=1, pusher_steps=120, progress=False,
                       variants=("her", "scratch-sparse"))  # fmt: skip
    assert set(results["runs"]) == {"her-s0", "scratch-sparse-s0"}
    assert load_bundle(tmp_path / "bench" / "runs" / "her-s0").view == "goal"
    assert load_bundle(tmp_path / "bench" / "runs" / "scratch-sparse-s0").view == "state"
    with pytest.raises(ValueError, match="residual variant needs"):
        bench_rl(None, tmp_path / "x", variants=("residual",))
    with pytest.raises(ValueError, match="accepted: residual, residual-privileged, "):
        bench_rl(None, tmp_path / "x", variants=("curious",))
