"""``train rl``: stable-baselines3 (SAC, TD3, PPO) used as a library, from scratch on
task-relative state or as a residual over a frozen trained agent.

Run directory::

    RUN/
      agent.pt            the trained agent (``rl`` or ``residual``), for eval / compare / video
      best_agent.pt       the agent at its best periodic evaluation
      train.json          settings, the evaluation curve (success vs env steps and seconds)
      sb3/model.zip       the SB3 model (atomic), with sb3/replay_buffer.pkl: resume from here
      tensorboard/        SB3's losses and the periodic evaluation's success rate

A killed run resumes from ``sb3/`` with its replay buffer, and a finished one continues there
under a larger ``--steps``; the env's episode stream after a
resume differs from an uninterrupted run's (the env is rebuilt), so a resumed run is not bit
for bit the same. A non-finite loss or parameter stops the run with a clear error; the last
checkpoint is kept.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

import envs
from embodied.evaluation.harness import evaluate
from embodied.saved_agents import agent_file, load_bundle
from embodied.training.data_split import AGENT_FILE
from embodied.training.rl_callbacks import callbacks
from embodied.training.rl_config import ADDED_SETTINGS, RLConfig, without_retired
from embodied.training.rl_demos import seed_replay_buffer
from embodied.training.rl_envs import (
    GoalTaskEnv,
    ResidualEnv,
    TaskStateEnv,
    env_settings,
    imagined_returns,
    start_observations,
)
from policies.rl import RLBundle
from sandbox_common.atomic import write_json_atomic
from world_models.dream_env import DreamEnv
from world_models.training import CHECKPOINT as WM_CHECKPOINT
from world_models.training import load_world_model

EVAL_SEED = 20_000
"""First seed of the periodic evaluations (demos start at 100000, benchmarks at 0 or 10000)."""


def _algorithm(algo: str):
    from stable_baselines3 import PPO, SAC, TD3

    return {"sac": SAC, "td3": TD3, "ppo": PPO}[algo]


def _new_model(config: RLConfig, env, seed: int, tensorboard: Path | None, residual: bool):
    kwargs: dict[str, Any] = {
        "learning_rate": config.learning_rate,
        "gamma": config.gamma,
        "seed": seed,
        "device": "cpu",
        "verbose": 0,
        "tensorboard_log": str(tensorboard) if tensorboard else None,
        "policy_kwargs": {"net_arch": list(config.net_arch)},
    }
    if config.algo in ("sac", "td3"):
        kwargs |= {
            "batch_size": config.batch_size,
            "buffer_size": config.buffer_size,
            "learning_starts": config.learning_starts,
        }
        if config.algo == "sac":
            fixed = not config.ent_coef.startswith("auto")
            kwargs["ent_coef"] = float(config.ent_coef) if fixed else config.ent_coef
            kwargs["use_sde"] = config.use_sde
    else:
        # PPO collects n_steps before each update: a budget below 1,024 collects exactly it
        rollout = min(1024, config.steps)
        kwargs |= {"batch_size": min(config.batch_size, 64, rollout), "n_steps": rollout}
    policy = "MlpPolicy"
    if config.her:
        from stable_baselines3 import HerReplayBuffer

        policy = "MultiInputPolicy"
        # HER samples goals from finished episodes: learn after the first one at the latest
        episode = env.unwrapped.config.max_steps
        kwargs["learning_starts"] = max(config.learning_starts, episode + 1)
        kwargs["replay_buffer_class"] = HerReplayBuffer
        kwargs["replay_buffer_kwargs"] = {
            "n_sampled_goal": config.her_goals,
            "goal_selection_strategy": "future",
        }
    if config.privileged_critic:
        from policies.asymmetric import AsymmetricSACPolicy

        policy = AsymmetricSACPolicy
        kwargs["policy_kwargs"]["actor_dim"] = env.actor_dim
    model = _algorithm(config.algo)(policy, env, **kwargs)
    if residual:  # start as a correction near zero
        with torch.no_grad():
            head = {"sac": lambda p: p.actor.mu, "td3": lambda p: p.actor.mu[-2],
                    "ppo": lambda p: p.action_net}[config.algo](model.policy)  # fmt: skip
            if isinstance(head, torch.nn.Sequential):  # gSDE: Linear then Hardtanh
                head = head[0]
            head.weight.mul_(config.residual_init)
            head.bias.zero_()
            _start_log_std(model, config)
            if config.algo == "td3":
                model.policy.actor_target.load_state_dict(model.policy.actor.state_dict())
    return model


def _start_log_std(model, config: RLConfig) -> None:
    """Set a residual actor's starting log-std (``config.residual_log_std``), where it is."""
    value = config.residual_log_std
    if value is None:
        return
    policy = model.policy
    if config.algo == "ppo" or config.use_sde:  # one parameter, not a function of the input
        (policy.log_std if config.algo == "ppo" else policy.actor.log_std).fill_(value)
    else:  # SAC: a linear layer of the actor's features
        policy.actor.log_std.weight.mul_(config.residual_init)
        policy.actor.log_std.bias.fill_(value)


def check_finite(model) -> None:
    """Raise when a loss SB3 logged or a parameter is no longer finite."""
    logged = getattr(getattr(model, "_logger", None), "name_to_value", {})  # set once learning
    bad = [k for k, v in logged.items() if k.startswith("train/") and not np.isfinite(v)]
    if bad or not all(torch.isfinite(p).all() for p in model.policy.parameters()):
        raise FloatingPointError(
            f"RL training diverged at env step {model.num_timesteps} (non-finite "
            f"{', '.join(bad) or 'parameters'}); the last checkpoint in sb3/ is kept: lower "
            "--learning-rate, or resume from it"
        )


def _save_model(model, sb3: Path, off_policy: bool) -> None:
    """Model and replay buffer, each written to a temp file then renamed."""
    sb3.mkdir(parents=True, exist_ok=True)
    tmp = sb3 / ".model.tmp.zip"
    model.save(tmp)
    if off_policy:
        buf = sb3 / ".replay_buffer.tmp.pkl"
        model.save_replay_buffer(buf)
        os.replace(buf, sb3 / "replay_buffer.pkl")
    os.replace(tmp, sb3 / "model.zip")


def train_rl(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Train (or resume) an RL agent: :func:`train_rl_agent`'s report alone (``RUN/train.json``'s
    content, or ``{"stopped_at": ENV_STEPS}`` when ``stop_after`` stopped it)."""
    return train_rl_agent(*args, **kwargs)[0]


def train_rl_agent(
    task: str,
    out: str | Path,
    config: RLConfig | None = None,
    init: str | Path | None = None,
    obs_mode: str | None = None,
    reward: str | None = None,
    seed: int = 0,
    progress: bool = True,
    tensorboard: bool = True,
    stop_after: int | None = None,
    dream: str | Path | None = None,
    randomize: tuple[str, ...] = (),
    randomize_magnitude: float = 1.0,
    randomize_joint: float = 0.0,
    factors: dict[str, float] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Train (or resume) an RL agent on ``task``; returns ``RUN/train.json``'s content and the
    stable-baselines3 model as training left it in memory (its policy is the one
    ``RUN/agent.pt`` holds once the budget is spent).

    ``reward``: ``shaped`` (the default: success + potential-based shaping by the task's dense
    progress; see :mod:`embodied.training.rl_envs`), ``dense`` or ``sparse`` (the task's own).
    With ``config.her``: from scratch on the goal-conditioned view, paid by the goal test
    (``reward`` must be None).
    Without ``init``: from scratch on task-relative state (``obs_mode`` must be ``state``). With
    ``init`` (a trained run): a residual over that frozen agent, on its own observation layout
    (``obs_mode`` defaults to the base's and must match it). With ``dream`` (a world-model run):
    in that model's dream env, started from encoded real observations, with its reward head;
    evaluated in the simulator (episodes as long as the dream's), where the imagined return of
    the same policy is reported beside the real one.

    ``randomize`` (families, up to ``randomize_magnitude``): domain randomisation of the training
    env; evaluations stay nominal. ``factors`` (name -> magnitude): a fixed deployment condition
    (an observation lag, say) that the training env and every periodic evaluation act under, so
    that a residual adapts its base to it; ``eval --factors`` measures the result.
    """
    torch.set_num_threads(1)
    config = config or RLConfig()
    out = Path(out)
    if init is not None and dream is not None:
        raise ValueError("choose one: a residual over --init RUN, or RL in the dream of --dream WM")
    if config.privileged_critic and init is None:
        raise ValueError("a privileged critic is for a residual over --init RUN (from scratch, "
                         "the actor reads privileged state already)")  # fmt: skip
    if init is None and (
        config.demo_episodes
        or config.residual_log_std is not None
        or config.residual_previous_action
    ):
        raise ValueError("expert-guided episodes, a residual's log-std and its previous action "
                         "are for a residual over --init RUN")  # fmt: skip
    if config.her and (init is not None or dream is not None or reward is not None):
        raise ValueError("HER trains from scratch and pays the goal test: no init, dream or reward")
    if factors and randomize:
        raise ValueError("choose one: fixed --factors (a deployment condition) or --randomize")
    if factors and dream is not None:
        raise ValueError("--factors act in the simulator; a dream env has none of them")
    reward = "goal" if config.her else reward or "shaped"
    bundle = load_bundle(init) if init is not None else None
    base_blob = agent_file(init).read_bytes() if init is not None else b""
    world_model, wm_blob = None, b""
    if dream is not None:
        world_model, _ = load_world_model(dream)
        wm_file = Path(dream) / WM_CHECKPOINT if Path(dream).is_dir() else Path(dream)
        wm_blob = wm_file.read_bytes()
    overrides = env_settings(task, bundle, world_model, obs_mode)
    if world_model is not None:
        overrides["max_steps"] = config.dream_horizon  # real episodes as long as dreamed ones
    # domain randomisation: the training env only; evaluations stay nominal
    dr = (
        {
            "randomize": tuple(randomize),
            "randomize_magnitude": randomize_magnitude,
            "randomize_joint": randomize_joint,
        }
        if randomize
        else {}
    )
    deployed = {"factors": dict(factors)} if factors else {}  # training and evaluation alike
    # HER (Fetch's convention): a reached goal does not end a training episode
    episode_end = {"terminate_on_success": False} if config.her else {}
    env = envs.make(task, **overrides, **deployed, **dr, **episode_end)
    kinds = {task: tuple(o.kind for o in env.unwrapped.objects)}
    residual_scale: float | tuple[float, ...] = config.residual_scale
    if config.residual_gripper_scale is not None:  # motion, yaw: one bound; the gripper: its own
        residual_scale = (config.residual_scale,) * 4 + (config.residual_gripper_scale,)
    if bundle is not None:
        bundle.check_env(task, env.observation_space)
        train_env = ResidualEnv(env, bundle, task, residual_scale, seed=200_000 + seed,
                                reward=reward, gamma=config.gamma,
                                privileged=config.privileged_critic,
                                previous_action=config.residual_previous_action)  # fmt: skip
    elif world_model is not None:
        starts = start_observations(env, world_model, config.dream_starts, 300_000 + seed)
        env.close()
        train_env = DreamEnv(world_model, starts, max_steps=config.dream_horizon)
        imagined = DreamEnv(world_model, starts, max_steps=config.dream_horizon)  # evaluation
    elif config.her:
        train_env = GoalTaskEnv(env)
    else:
        train_env = TaskStateEnv(env, reward=reward, gamma=config.gamma)
    train_env.reset(seed=200_000 + seed)

    sb3 = out / "sb3"
    state_path = out / "train.json"
    report: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {}
    wanted = json.loads(json.dumps(asdict(config)))
    try:
        written = {**ADDED_SETTINGS, **without_retired(report.get("config", wanted))}
    except ValueError as exc:
        raise ValueError(f"{out}: {exc}") from None
    if {**written, "steps": wanted["steps"]} != wanted:  # a larger --steps extends a run
        raise ValueError(
            f"{out} holds a run with other settings ({report['config']}); use a new --out"
        )
    if written["steps"] > wanted["steps"]:
        raise ValueError(
            f"{out} holds a run of {written['steps']} steps; --steps can extend it, not shorten it"
        )
    if report and report.get("factors", {}) != (factors or {}):
        raise ValueError(
            f"{out} holds a run under factors {report.get('factors', {})}, not {factors or {}}; "
            f"use a new --out"
        )
    off_policy = config.algo in ("sac", "td3")
    start = time.perf_counter()
    if (sb3 / "model.zip").exists():
        model = _algorithm(config.algo).load(sb3 / "model.zip", env=train_env, device="cpu")
        if off_policy and (sb3 / "replay_buffer.pkl").exists():
            with warnings.catch_warnings():  # HER: the episode in flight ends there, rightly:
                warnings.filterwarnings("ignore", "The last trajectory")  # the env is rebuilt
                model.load_replay_buffer(sb3 / "replay_buffer.pkl")
        resumed = True
    else:
        model = _new_model(config, train_env, seed, out / "tensorboard" if tensorboard else None,
                           residual=bundle is not None)  # fmt: skip
        resumed = False
        if config.demo_episodes:  # kept in the buffer's pickle: a resumed run has them
            report["demos"] = seed_replay_buffer(model, train_env, config.demo_episodes, seed)
    if not tensorboard:  # else SB3 makes a /tmp/SB3-<time> folder per learn() for its logs
        from stable_baselines3.common.logger import Logger

        model.set_logger(Logger(folder=None, output_formats=[]))
    report = {
        "task": task,
        "kind": "residual" if bundle is not None else "dream" if dream is not None else "rl",
        "init": str(init) if init is not None else None,
        "dream": str(dream) if dream is not None else None,
        "reward": reward,
        "seed": seed,
        "randomize": {k: list(v) if isinstance(v, tuple) else v for k, v in dr.items()},
        "factors": dict(factors or {}),
        "config": asdict(config),
        "evals": report.get("evals", []),
        "train_seconds": report.get(
            "train_seconds_at_checkpoint", report.get("train_seconds", 0.0)
        ),
        "resumed": resumed,
        **({"demos": report["demos"]} if "demos" in report else {}),
    }

    def agent_bundle(model) -> RLBundle:
        return RLBundle(
            kind=report["kind"],
            algo=config.algo,
            policy=model.policy,
            env={k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
            tasks=(task,),
            task_kinds=kinds,
            base=bundle,
            base_blob=base_blob,
            world_model=world_model,
            world_model_blob=wm_blob,
            scale=residual_scale,
            info={"algo": config.algo, "seed": seed, "env_steps": int(model.num_timesteps)},
            view="goal" if config.her else "state",
            critic_dim=getattr(train_env, "critic_dim", 0),
            previous_action=config.residual_previous_action,
        )

    def evaluation(model) -> None:
        model.policy.set_training_mode(False)
        agent = agent_bundle(model)
        result = evaluate(
            lambda env, s: agent.make(seed=s, task=task), task, config.eval_episodes,
            seed=EVAL_SEED, **overrides, **deployed,
        )  # fmt: skip
        entry = {
            "env_steps": int(model.num_timesteps),
            "seconds": round(report["train_seconds"] + time.perf_counter() - start, 1),
            "success_rate": result.success_rate,
            "ci95": list(result.ci95),
            "mean_return": float(np.mean([e["total_reward"] for e in result.per_episode])),
        }
        if world_model is not None:  # the same policy in imagination: the return gap
            entry |= imagined_returns(imagined, model.policy, config.eval_episodes, seed)
        report["evals"].append(entry)
        if getattr(model, "_logger", None) is not None:  # SB3 sets it up when learning starts
            model.logger.record("eval/success_rate", entry["success_rate"])
            model.logger.record("eval/mean_return", entry["mean_return"])
        if entry["success_rate"] >= max(e["success_rate"] for e in report["evals"]):
            agent.save(out / "best_agent.pt")

    def checkpoint(model) -> None:
        check_finite(model)
        _save_model(model, sb3, off_policy)
        report["train_seconds_at_checkpoint"] = round(
            report["train_seconds"] + time.perf_counter() - start, 1
        )
        write_json_atomic(state_path, report)

    Progress, Periodic = callbacks()
    remaining = config.steps - model.num_timesteps
    if stop_after is not None:
        remaining = min(remaining, stop_after - model.num_timesteps)
    try:
        if not report["evals"]:  # where learning starts from (a residual: about the base agent)
            evaluation(model)
        if remaining > 0:
            model.learn(
                remaining,
                callback=[
                    Progress(config.steps, progress),
                    Periodic(min(1_000, config.checkpoint_every), check_finite),
                    Periodic(config.eval_every, evaluation),
                    Periodic(config.checkpoint_every, checkpoint),
                ],
                reset_num_timesteps=not resumed,
                tb_log_name="sb3",
            )
        check_finite(model)
        _save_model(model, sb3, off_policy)
    finally:
        train_env.close()
    report["train_seconds"] = round(report["train_seconds"] + time.perf_counter() - start, 1)
    report["env_steps"] = int(model.num_timesteps)
    if model.num_timesteps < config.steps:
        write_json_atomic(state_path, report)
        return {"stopped_at": int(model.num_timesteps)}, model
    if not report["evals"] or report["evals"][-1]["env_steps"] != model.num_timesteps:
        evaluation(model)
    agent_bundle(model).save(out / AGENT_FILE)
    write_json_atomic(state_path, report)
    return report, model
