"""``train rl``: stable-baselines3 from scratch on state and as a residual over a trained agent."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import envs
from embodied.cli import main
from embodied.data.collect import collect
from embodied.evaluation.harness import evaluate
from embodied.saved_agents import agent_factory_from_run, load_bundle
from embodied.training.baselines import train_bc
from embodied.training.rl import RLConfig, check_finite, train_rl, train_rl_agent
from embodied.training.rl_envs import ResidualEnv, TaskStateEnv
from tests.conftest import check_rl_run_holds_the_trained_model

TINY = {"steps": 120, "eval_every": 60, "eval_episodes": 1, "checkpoint_every": 60,
        "learning_starts": 30, "batch_size": 16, "net_arch": (32, 32)}  # fmt: skip


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("demos") / "pick-place"
    collect("pick-place", 3, data, seed=0, noise=0.1, progress=False, image_size=32)
    run = tmp_path_factory.mktemp("base") / "bc-pixels"
    train_bc("bc-pixels", [data], run, preset="debug", progress=False, tensorboard=False)
    return run


def test_sac_from_scratch_on_state_trains_saves_loads_and_evaluates(tmp_path):
    run = tmp_path / "sac"
    report, model = train_rl_agent("reach", run, RLConfig(**TINY), progress=False,
                                   tensorboard=False)  # fmt: skip
    assert report["kind"] == "rl" and report["env_steps"] == 120
    assert [e["env_steps"] for e in report["evals"]] == [0, 60, 120]
    assert (run / "agent.pt").exists() and (run / "best_agent.pt").exists()
    assert (run / "sb3" / "model.zip").exists() and (run / "sb3" / "replay_buffer.pkl").exists()
    check_rl_run_holds_the_trained_model(run, "reach", model)
    make, overrides = agent_factory_from_run(run, "reach")
    result = evaluate(make, "reach", 2, seed=0, max_steps=10, **overrides)
    assert result.episodes == 2
    with pytest.raises(ValueError, match="obs_mode 'state'"):
        train_rl("reach", tmp_path / "x", RLConfig(**TINY), obs_mode="pixels", progress=False)


@pytest.mark.parametrize("algo", ["td3", "ppo"])
def test_other_algorithms_run_end_to_end(tmp_path, algo):
    config = RLConfig(**{**TINY, "algo": algo, "steps": 60, "eval_every": 60})
    report = train_rl("reach", tmp_path / algo, config, progress=False, tensorboard=False)
    assert report["env_steps"] == 60 and (tmp_path / algo / "agent.pt").exists()  # the budget


def test_residual_over_a_pixel_agent_is_bounded_resumes_and_reloads(base_run, tmp_path):
    env = envs.make("pick-place", image_size=32, reward_type="dense")
    wrapped = ResidualEnv(env, load_bundle(base_run), "pick-place", scale=0.1, seed=5)
    import warnings

    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():  # it is a wrapper on purpose: check what SB3 sees
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version.*")
        check_env(wrapped, skip_render_check=True)
    wrapped.reset(seed=1)
    base_action = wrapped.agent._base_action.copy()
    executed = wrapped.agent.combine(np.ones(5, np.float32))
    assert np.allclose(executed, np.clip(base_action + 0.1, -1, 1))
    wrapped.close()

    run = tmp_path / "residual"
    config = RLConfig(**TINY)
    partial = train_rl("pick-place", run, config, init=base_run, progress=False,
                       tensorboard=False, stop_after=60)  # fmt: skip
    assert partial == {"stopped_at": 60} and not (run / "agent.pt").exists()
    report, model = train_rl_agent("pick-place", run, config, init=base_run, progress=False,
                                   tensorboard=False)  # fmt: skip
    assert report["resumed"] and report["env_steps"] == 120 and report["kind"] == "residual"
    bundle = load_bundle(run)
    assert bundle.kind == "residual" and bundle.base.kind == "bc-pixels"
    check_rl_run_holds_the_trained_model(run, "pick-place", model)
    with pytest.raises(ValueError, match="other settings"):
        train_rl("pick-place", run, RLConfig(**{**TINY, "gamma": 0.9}), init=base_run,
                 progress=False)  # fmt: skip


def test_a_residual_over_the_shipped_keypoint_agent_perceives_each_frame_once():
    from pathlib import Path

    run = Path(__file__).resolve().parents[1] / "assets" / "agents" / "bc-keypoints-pick-place"
    bundle = load_bundle(run)
    overrides = dict(bundle.env)
    overrides["cameras"] = tuple(overrides["cameras"])
    wrapped = ResidualEnv(envs.make("pick-place", **overrides), bundle, "pick-place", 0.3, seed=1)
    x, _ = wrapped.reset(seed=4)
    scene = wrapped.agent.base.scene
    calls = []
    observe = scene.observe
    scene.observe = lambda obs: calls.append(1) or observe(obs)
    y, *_ = wrapped.step(np.zeros(5, np.float32))
    assert len(calls) == 1  # act and embed share one perception of the frame
    assert x.shape == y.shape == wrapped.observation_space.shape and np.isfinite(y).all()
    wrapped.close()


@pytest.mark.parametrize("use_sde", [False, True])
def test_a_new_residual_starts_as_the_base_agent(base_run, use_sde):
    from embodied.training.rl import _new_model

    env = envs.make("pick-place", image_size=32)
    wrapped = ResidualEnv(env, load_bundle(base_run), "pick-place", scale=0.3, seed=5)
    config = RLConfig(**{**TINY, "use_sde": use_sde, "ent_coef": "0.001"})
    model = _new_model(config, wrapped, seed=0, tensorboard=None, residual=True)
    x, _ = wrapped.reset(seed=2)
    residual, _ = model.predict(x, deterministic=True)
    assert np.abs(residual).max() < 0.05  # the correction starts near zero
    assert model.ent_coef == pytest.approx(0.001)
    wrapped.close()


@pytest.mark.parametrize("algo", ["sac", "ppo"])
def test_a_residual_started_quiet_explores_within_its_log_std(algo):
    from embodied.training.rl import _new_model

    env = TaskStateEnv(envs.make("reach", obs_mode="state"))
    x, _ = env.reset(seed=0)
    spread = {}
    for log_std in (None, -2.0):
        config = RLConfig(**{**TINY, "algo": algo, "residual_log_std": log_std})
        model = _new_model(config, env, seed=0, tensorboard=None, residual=True)
        model.policy.set_training_mode(False)
        sampled = np.stack([model.predict(x, deterministic=False)[0] for _ in range(300)])
        spread[log_std] = sampled.std(0).mean()
    assert spread[-2.0] == pytest.approx(np.exp(-2.0), rel=0.3)  # tanh(0.14 z) ~ 0.14 z
    assert spread[None] > 3 * spread[-2.0]
    with pytest.raises(ValueError, match="residual_log_std must be in"):
        RLConfig(algo="td3", residual_log_std=-2.0)
    with pytest.raises(
        ValueError,
        match="a residual's log-std and its previous action are for a residual over --init",
    ):
        train_rl("reach", "never-written", RLConfig(**{**TINY, "residual_log_std": -2.0}))
    env.close()


def test_a_run_written_before_a_setting_existed_resumes_only_where_it_did_the_same(tmp_path):
    run = tmp_path / "r"
    config = RLConfig(**TINY)
    train_rl("reach", run, config, progress=False, tensorboard=False, stop_after=60)
    state = json.loads((run / "train.json").read_text())
    del state["config"]["use_sde"]  # older runs had no gSDE: the same as off
    state["config"]["actor_delay"] = 0  # retired at 0, what every run does now
    (run / "train.json").write_text(json.dumps(state))
    assert train_rl("reach", run, config, progress=False, tensorboard=False)["env_steps"] == 120
    state = json.loads((run / "train.json").read_text())
    assert "actor_delay" not in state["config"]
    delayed = {**state["config"], "actor_delay": 80}  # a run that used the retired option
    (run / "train.json").write_text(json.dumps(state | {"config": delayed}))
    with pytest.raises(ValueError, match="option 'actor_delay' .*retired 2026-12-08"):
        train_rl("reach", run, config, progress=False, tensorboard=False)
    del state["config"]["ent_coef"]  # older runs learned it from 1, not from 0.01
    (run / "train.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match="other settings"):
        train_rl("reach", run, config, progress=False, tensorboard=False)


@pytest.mark.parametrize("value", ["auto", "auto_0.01", "0.05", "0"])
def test_entropy_coefficients_accepted(value):
    assert RLConfig(ent_coef=value).ent_coef == value


@pytest.mark.parametrize("value", ["auto_", "auto_0", "-1", "nan", "high"])
def test_entropy_coefficients_refused_with_what_is_accepted(value):
    with pytest.raises(ValueError, match="ent_coef must be 'auto', 'auto_X' or a number X"):
        RLConfig(ent_coef=value)


def test_non_finite_parameters_stop_with_a_clear_message(tmp_path):
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", TaskStateEnv(envs.make("reach", obs_mode="state")), device="cpu")
    check_finite(model)
    with torch.no_grad():
        next(model.policy.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="diverged at env step 0"):
        check_finite(model)


def test_cli_train_rl_refuses_bad_combinations_and_eval_accepts_the_run(base_run, tmp_path, capsys):
    argv = ["train", "rl", "--task", "pick-place", "--out", str(tmp_path / "r"), "--quiet"]
    assert main([*argv, "--init", str(base_run)]) == 2
    assert "add --residual" in capsys.readouterr().err
    assert main([*argv, "--residual"]) == 2
    assert "--residual needs the base agent" in capsys.readouterr().err
    assert main([*argv, "--residual-scale", "3", "--init", str(base_run), "--residual"]) == 2
    assert "residual_scale must be in (0, 1]" in capsys.readouterr().err
    assert main([*argv, "--ent-coef", "lots", "--init", str(base_run), "--residual"]) == 2
    assert "ent_coef must be" in capsys.readouterr().err
    run = tmp_path / "cli"
    code = main(["train", "rl", "--task", "reach", "--steps", "60", "--eval-every", "60",
                 "--eval-episodes", "1", "--out", str(run), "--quiet"])  # fmt: skip
    assert code == 0 and "rl agent (sac) on reach: 60 env steps" in capsys.readouterr().out
    out = tmp_path / "eval"
    code = main(["eval", "--agent", str(run), "--task", "reach", "--episodes", "1",
                 "--out", str(out), "--video", "1", "--set", "max_steps=5", "--quiet"])  # fmt: skip
    assert code == 0 and json.loads((out / "metrics.json").read_text())["episodes"] == 1


def test_bench_rl_compares_residual_and_scratch_with_curves(base_run, tmp_path):
    from embodied.bench.rl import bench_rl, format_summary

    results = bench_rl(base_run, tmp_path / "bench", steps=60, seeds=(0,), eval_every=60,
                       eval_episodes=1, pusher_steps=120, progress=False)  # fmt: skip
    assert set(results["runs"]) == {"residual-s0", "scratch-s0"}
    for run in results["runs"].values():
        assert [e["env_steps"] for e in run["evals"]] == [0, 60] and run["env_steps_per_s"] > 0
    assert results["pusher_sac"]["steps_per_s"] > 0 and (tmp_path / "bench" / "curves.png").exists()
    assert "| residual-s0 |" in format_summary(results)


def test_every_bench_rl_variant_is_a_valid_config_of_its_kind():
    from dataclasses import replace

    from embodied.bench.rl import VARIANTS

    for name, variant in VARIANTS.items():
        config = replace(RLConfig(), **variant.get("config", {}))  # validated on construction
        residual_only = config.privileged_critic or config.demo_episodes
        assert variant.get("residual", False) or not residual_only, name


def test_shaped_reward_pays_for_finishing_not_for_hovering():
    from embodied.training.rl_envs import RewardView

    view = RewardView("shaped", gamma=0.97)
    view.reset({"reward_dense": 0.2})
    assert view({"reward_dense": 0.5, "success": False}) == pytest.approx(0.97 * 0.5 - 0.2)
    hover = [view({"reward_dense": 0.995, "success": False}) for _ in range(50)]
    assert sum(hover[1:]) < 0  # staying just short of success earns nothing
    assert view({"reward_dense": 1.0, "success": True}) > 0.9  # finishing pays about 1
    assert RewardView("sparse", 0.97)({"reward_sparse": 1.0}) == 1.0
    with pytest.raises(ValueError, match="accepted: shaped, dense, sparse"):
        RewardView("curiosity", 0.97)


def test_rl_in_the_dream_env_evaluates_in_the_simulator_with_the_return_gap(tmp_path):
    from embodied.training.world_model import train_world_model

    data = tmp_path / "wm-data"
    collect("reach", 3, data, seed=0, noise=0.3, progress=False, image_size=32, max_steps=12,
            terminate_on_success=False)  # fmt: skip
    wm = tmp_path / "wm"
    train_world_model(data, wm, preset_name="debug", seed=0, steps=4, progress=False)
    run = tmp_path / "dream"
    config = RLConfig(**{**TINY, "dream_horizon": 8, "dream_starts": 4})
    report, model = train_rl_agent("reach", run, config, dream=wm, progress=False,
                                   tensorboard=False)  # fmt: skip
    assert report["kind"] == "dream" and report["env_steps"] == 120
    last = report["evals"][-1]
    assert {"imagined_return", "imagined_success", "mean_return", "success_rate"} <= set(last)
    bundle = load_bundle(run)
    assert bundle.kind == "dream" and bundle.world_model is not None
    check_rl_run_holds_the_trained_model(run, "reach", model)
    with pytest.raises(ValueError, match="choose one"):
        train_rl("reach", tmp_path / "x", config, dream=wm, init=run, progress=False)


def test_an_asymmetric_critic_reads_privileged_state_the_actor_never_sees(base_run, tmp_path):
    from envs.task_features import STATE_DIM

    run = tmp_path / "asym"
    config = RLConfig(**{**TINY, "privileged_critic": True})
    train_rl("pick-place", run, config, init=base_run, progress=False, tensorboard=False,
             stop_after=60)  # fmt: skip
    report, model = train_rl_agent("pick-place", run, config, init=base_run, progress=False,
                                   tensorboard=False)  # fmt: skip
    assert report["resumed"] and report["env_steps"] == 120
    bundle = load_bundle(run)
    policy = bundle.policy
    assert bundle.critic_dim == STATE_DIM == policy.observation_space.shape[0] - policy.actor_dim
    x = torch.randn(4, policy.observation_space.shape[0])
    y = x.clone()
    y[:, policy.actor_dim :] += 1.0  # another privileged state
    assert torch.equal(policy.actor(x, deterministic=True), policy.actor(y, deterministic=True))
    action = torch.zeros(4, 5)
    assert not torch.equal(policy.critic(x, action)[0], policy.critic(y, action)[0])
    check_rl_run_holds_the_trained_model(run, "pick-place", model)  # no privileged state
    with pytest.raises(ValueError, match="privileged_critic is for sac"):
        RLConfig(algo="td3", privileged_critic=True)
    with pytest.raises(ValueError, match="a privileged critic is for a residual"):
        train_rl("reach", tmp_path / "x", config, progress=False)


def test_expert_guided_episodes_seed_the_residual_buffer_with_real_transitions(base_run, tmp_path):
    from embodied.training.rl_demos import expert_residual
    from envs.experts import ScriptedExpert

    env = ResidualEnv(envs.make("pick-place", image_size=32), load_bundle(base_run), "pick-place",
                      scale=0.3, seed=5)  # fmt: skip
    env.reset(seed=3)
    clean, _ = ScriptedExpert(env.unwrapped).label()
    residual = expert_residual(env)
    executed = env.agent.combine(residual)
    close = np.abs(clean - env.agent.base_action) <= 0.3  # within the bound: the expert's action
    assert np.allclose(executed[close], clean[close], atol=1e-6)
    assert np.all(np.abs(residual) <= 1) and np.all(np.abs(residual[~close]) == 1)
    env.close()

    run = tmp_path / "demos"
    config = RLConfig(
        **{**TINY, "demo_episodes": 2, "learning_starts": 200}
    )  # store, learn nothing
    report = train_rl("pick-place", run, config, init=base_run, progress=False, tensorboard=False)
    demos = report["demos"]
    assert demos["episodes"] == 2 and demos["transitions"] > 2
    from stable_baselines3 import SAC

    model = SAC.load(run / "sb3" / "model.zip", device="cpu")
    model.load_replay_buffer(run / "sb3" / "replay_buffer.pkl")
    assert model.replay_buffer.size() == demos["transitions"] + 120
    with pytest.raises(ValueError, match="demo_episodes must be >= 0 and is for sac / td3"):
        RLConfig(algo="ppo", demo_episodes=3)


def test_a_gripper_bound_of_two_lets_the_residual_open_and_close_the_gripper(base_run, tmp_path):
    from policies.rl import ResidualAgent

    class Base:
        def act(self, obs):
            return np.array([0.9, 0.0, 0.0, 0.0, 1.0], np.float32)  # closed

        def embed(self, obs):
            return np.zeros(3, np.float32)

    agent = ResidualAgent(Base(), None, (0.3, 0.3, 0.3, 0.3, 2.0))
    agent.prepare({"proprio": np.zeros(19, np.float32)})
    assert np.allclose(agent.combine(-np.ones(5, np.float32)), [0.6, -0.3, -0.3, -0.3, -1.0])
    with pytest.raises(ValueError, match=r"gripper's in \(0, 2\]"):
        ResidualAgent(Base(), None, (0.3, 0.3, 0.3, 0.3, 2.5))
    with pytest.raises(ValueError, match="residual_gripper_scale must be in"):
        RLConfig(residual_gripper_scale=3.0)
    run = tmp_path / "grip"
    config = RLConfig(**{**TINY, "residual_gripper_scale": 2.0})
    _, model = train_rl_agent("pick-place", run, config, init=base_run, progress=False,
                              tensorboard=False)  # fmt: skip
    assert load_bundle(run).scale == (0.3, 0.3, 0.3, 0.3, 2.0)
    check_rl_run_holds_the_trained_model(run, "pick-place", model)


def test_a_deployment_condition_acts_in_training_and_every_evaluation(tmp_path, monkeypatch):
    from embodied.training import rl

    made, evaluated = [], []
    make, harness = envs.make, rl.evaluate
    monkeypatch.setattr(rl.envs, "make", lambda task, **kw: made.append(kw) or make(task, **kw))
    monkeypatch.setattr(rl, "evaluate", lambda *a, **kw: evaluated.append(kw) or harness(*a, **kw))
    run, lag = tmp_path / "lag", {"observation_delay": 1.0}
    config = RLConfig(**TINY)
    report = train_rl("reach", run, config, progress=False, tensorboard=False, factors=lag)
    assert (
        report["factors"] == lag and json.loads((run / "train.json").read_text())["factors"] == lag
    )
    assert made and all(kw["factors"] == lag for kw in made)
    assert len(evaluated) == 3 and all(kw["factors"] == lag for kw in evaluated)
    assert "factors" not in load_bundle(run).env  # eval --factors says where it is measured
    with pytest.raises(ValueError, match="under factors"):  # resuming elsewhere is refused
        train_rl("reach", run, config, progress=False, factors={"observation_delay": 0.5})
    with pytest.raises(ValueError, match="observation_delay"):  # the accepted names are listed
        train_rl("reach", tmp_path / "x", config, progress=False, factors={"lag": 1.0})
    with pytest.raises(ValueError, match="choose one"):
        train_rl("reach", tmp_path / "y", config, factors=lag, randomize=("sensing",))


def test_a_residual_reading_its_previous_action_sees_what_it_executed(base_run, tmp_path):
    env = envs.make("pick-place", image_size=32)
    plain = ResidualEnv(env, load_bundle(base_run), "pick-place", scale=0.3, seed=5)
    env = envs.make("pick-place", image_size=32)
    wrapped = ResidualEnv(
        env, load_bundle(base_run), "pick-place", 0.3, seed=5, previous_action=True
    )
    assert wrapped.observation_space.shape[0] == plain.observation_space.shape[0] + 5
    plain.close()
    x, _ = wrapped.reset(seed=1)
    assert np.array_equal(x[-5:], np.zeros(5))  # nothing executed yet
    for r in (np.ones(5, np.float32), -np.ones(5, np.float32)):
        base = wrapped.agent.base_action.copy()
        x, *_ = wrapped.step(r)
        assert np.allclose(x[-5:], np.clip(base + 0.3 * r, -1, 1))  # the base's + the correction
    wrapped.reset(seed=2)
    assert not wrapped.agent._executed.any()  # a new episode starts from zeros again
    wrapped.close()

    run = tmp_path / "prev"
    config = RLConfig(**{**TINY, "residual_previous_action": True})
    _, model = train_rl_agent("pick-place", run, config, init=base_run, progress=False,
                              tensorboard=False)  # fmt: skip
    assert load_bundle(run).previous_action and load_bundle(run).make(seed=0).previous_action
    check_rl_run_holds_the_trained_model(run, "pick-place", model)
    with pytest.raises(ValueError, match="previous action are for a residual"):
        train_rl("reach", tmp_path / "x", config, progress=False)


def test_a_finished_run_extends_under_a_larger_step_budget_and_never_shrinks(tmp_path):
    run, config = tmp_path / "r", RLConfig(**TINY)
    train_rl("reach", run, config, progress=False, tensorboard=False)
    longer = RLConfig(**{**TINY, "steps": 180})
    report = train_rl("reach", run, longer, progress=False, tensorboard=False)
    assert report["resumed"] and report["env_steps"] == 180
    assert [e["env_steps"] for e in report["evals"]] == [0, 60, 120, 180]
    assert report["config"]["steps"] == 180
    with pytest.raises(ValueError, match="can extend it, not shorten it"):
        train_rl("reach", run, config, progress=False, tensorboard=False)


def test_the_lag_recipe_puts_the_previous_action_in_the_actor_and_the_true_state_in_the_critic(
    base_run, tmp_path
):
    """The bench variant that adapts a pixel agent to a camera lag (issue 12): the actor reads the
    base's inputs and the action executed last; only the critic reads the simulator's state."""
    from embodied.bench.rl import VARIANTS
    from envs.task_features import STATE_DIM

    recipe = VARIANTS["residual-privileged-demos-previous-action-gripper2-quiet"]["config"]
    config = RLConfig(**{**TINY, **recipe, "demo_episodes": 1})
    run = tmp_path / "lag-recipe"
    report, model = train_rl_agent("pick-place", run, config, init=base_run, progress=False,
                                   tensorboard=False, factors={"observation_delay": 1.0})  # fmt: skip
    assert report["demos"]["episodes"] == 1 and report["factors"] == {"observation_delay": 1.0}
    bundle = load_bundle(run)
    assert bundle.previous_action and bundle.critic_dim == STATE_DIM
    assert bundle.scale == (0.3, 0.3, 0.3, 0.3, 2.0)
    plain = ResidualEnv(envs.make("pick-place", image_size=32), load_bundle(base_run), "pick-place",
                        0.3, seed=5)  # fmt: skip
    assert bundle.policy.actor_dim == plain.actor_dim + 5  # the previous action, nothing more
    plain.close()
    policy = bundle.policy
    x = torch.randn(4, policy.observation_space.shape[0])
    y = x.clone()
    y[:, policy.actor_dim :] += 1.0  # another true state: the actor must not notice
    assert torch.equal(policy.actor(x, deterministic=True), policy.actor(y, deterministic=True))
    y = x.clone()
    y[:, policy.actor_dim - 5 : policy.actor_dim] += 1.0  # another previous action: it must
    assert not torch.equal(policy.actor(x, deterministic=True), policy.actor(y, deterministic=True))
    check_rl_run_holds_the_trained_model(run, "pick-place", model)
