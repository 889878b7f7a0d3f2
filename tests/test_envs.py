"""The env contract, over every registered task."""

import warnings

import gymnasium
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.base import INSTRUCTION, OBJECT_STATE, PROPRIO
from envs.experts import ScriptedExpert
from envs.language import SUBTASK_VOCAB
from envs.scene import step_warnings
from tests.conftest import random_actions


def test_every_task_has_a_gym_id_and_makes(task):
    env = gymnasium.make(envs.gym_id(task), obs_mode="state")
    obs, info = env.reset(seed=0)
    assert set(obs) == {PROPRIO, OBJECT_STATE, INSTRUCTION}
    assert info["subtask"] in SUBTASK_VOCAB
    env.close()


def test_check_env_passes_with_warnings_as_errors(task):
    env = gymnasium.make(
        envs.gym_id(task),
        image_size=32,
        render_mode="rgb_array",
        render_size=64,
        disable_env_checker=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_assets_step_one_second_without_mujoco_warnings(task):
    env = envs.make(task, obs_mode="state")
    env.reset(seed=1)
    assert step_warnings(env.model, env.data, seconds=1.0) == []
    env.close()


def _rollout(task: str, seed: int, actions: np.ndarray) -> list:
    env = envs.make(task, image_size=32)
    obs, info = env.reset(seed=seed)
    trace = [(obs, 0.0, info)]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        trace.append((obs, reward, info))
        if terminated or truncated:
            break
    env.close()
    return trace


def test_same_seed_same_trajectory(task):
    actions = random_actions(15, seed=3)
    a, b = _rollout(task, 7, actions), _rollout(task, 7, actions)
    assert len(a) == len(b)
    for (obs_a, r_a, info_a), (obs_b, r_b, info_b) in zip(a, b):
        assert r_a == r_b
        assert info_a == info_b
        for key in obs_a:
            if isinstance(obs_a[key], str):
                assert obs_a[key] == obs_b[key]
            else:
                np.testing.assert_array_equal(obs_a[key], obs_b[key])


def test_different_seeds_different_scenes(task):
    env = envs.make(task, obs_mode="state")
    states = [env.reset(seed=s)[0][OBJECT_STATE] for s in range(3)]
    assert not np.allclose(states[0], states[1]) and not np.allclose(states[1], states[2])
    env.close()


def test_rendered_frames_are_uint8_and_not_blank(task):
    env = envs.make(
        task,
        image_size=48,
        cameras=("front", "wrist", "side"),
        render_mode="rgb_array",
        render_size=80,
    )
    obs, _ = env.reset(seed=0)
    for cam in ("front", "wrist", "side"):
        image = obs[f"image_{cam}"]
        assert image.shape == (48, 48, 3) and image.dtype == np.uint8
        assert image.std() > 10, f"{cam} image looks blank"
    frame = env.render()
    assert frame.shape == (80, 80, 3) and frame.dtype == np.uint8 and frame.std() > 10
    env.close()


def test_scripted_expert_solves_a_few_seeds(task):
    env = envs.make(task, obs_mode="state")
    for seed in range(2):
        env.reset(seed=seed)
        expert = ScriptedExpert(env, noise=0.0, seed=seed)
        done, info = False, {}
        labels = set()
        while not done:
            step = expert.act()
            labels.add(step.subtask)
            _, _, terminated, truncated, info = env.step(step.executed)
            done = terminated or truncated
        assert info["success"], f"{task} seed {seed} failed at {info['subtask']}"
        assert info["links_completed"] == info["num_links"]
        assert labels <= set(SUBTASK_VOCAB)
    env.close()


def test_subtask_events_follow_the_plan(task):
    env = envs.make(task, obs_mode="state")
    env.reset(seed=4)
    plan = [s.label for s in env.plan]
    expert = ScriptedExpert(env, seed=4)
    completed, done = [], False
    while not done:
        _, reward, terminated, truncated, info = env.step(expert.act().executed)
        assert 0.0 <= info["reward_dense"] <= 1.0 and info["reward_sparse"] in (0.0, 1.0)
        completed += info["subtasks_completed"]
        done = terminated or truncated
    assert info["success"] and completed[-len(plan) :] == plan
    env.close()


def test_bad_actions_raise_and_out_of_range_is_clipped():
    env = envs.make("pick-place", obs_mode="state")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        env.step(np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([0, np.nan, 0, 0, 0]))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([0, 0, np.inf, 0, 0]))
    big = env.step(np.array([5.0, -5.0, 5.0, 5.0, 5.0]))[0]
    env.reset(seed=0)
    unit = env.step(np.array([1.0, -1.0, 1.0, 1.0, 1.0]))[0]
    np.testing.assert_array_equal(big[PROPRIO], unit[PROPRIO])
    env.close()


def test_unstable_simulation_ends_the_episode_with_a_flag():
    env = envs.make("push", obs_mode="state")
    obs, _ = env.reset(seed=0)
    env.data.qvel[:] = 1e12  # blow the simulation up
    obs2, reward, terminated, truncated, info = env.step(np.zeros(5))
    assert terminated and info["unstable"] and not info["success"]
    assert all(np.all(np.isfinite(v)) for k, v in obs2.items() if k != INSTRUCTION)
    env.close()


def test_invalid_configs_and_names_say_what_is_accepted():
    with pytest.raises(KeyError, match="known tasks: chain, pick-place"):
        envs.make("pick_place")
    with pytest.raises(TypeError, match="accepted: .*image_size"):
        envs.make("reach", image_sise=64)
    with pytest.raises(ValueError, match="image_size must be an int in"):
        envs.make("reach", image_size=5)
    with pytest.raises(ValueError, match="unknown camera"):
        envs.make("reach", cameras=("top",))
    with pytest.raises(ValueError, match="obs_mode must be one of"):
        envs.make("reach", obs_mode="rgb")
    with pytest.raises(ValueError, match="min_links"):
        envs.make("chain", min_links=3, max_links=2)


def test_instructions_have_paraphrases():
    env = envs.make("pick-place", obs_mode="state")
    texts = {env.reset(seed=s)[1]["instruction"].split(" ")[0] for s in range(30)}
    assert len(texts) >= 3  # several templates are drawn
    env.close()


def test_chain_draws_three_to_six_subtasks_and_varied_links():
    env = envs.make("chain", obs_mode="state")
    sizes, verbs = set(), set()
    for seed in range(30):
        env.reset(seed=seed)
        sizes.add(len(env.plan))
        verbs |= {s.verb for s in env.plan}
        assert 3 <= len(env.plan) <= 6
    assert len(sizes) >= 2 and {"pick", "place", "push"} <= verbs
    env.close()


def test_dropped_cube_rolls_place_back_to_pick():
    env = envs.make("pick-place", obs_mode="state")
    env.reset(seed=0)
    expert = ScriptedExpert(env)
    while env.current_subtask.verb != "place":
        env.step(expert.act().executed)
    info = {}
    for _ in range(20):  # open the gripper and let the cube fall
        _, _, _, _, info = env.step(np.array([0, 0, 0, 0, -1.0]))
        if info["subtasks_reverted"]:
            break
    assert info["subtasks_reverted"] == [env.plan[0].label] and env.current_subtask.verb == "pick"
    env.close()


def test_mujoco_model_is_exposed_for_perturbations():
    env = envs.make("push", obs_mode="state")
    assert isinstance(env.model, mujoco.MjModel) and isinstance(env.data, mujoco.MjData)
    env.close()


def test_ik_reaches_every_pose_over_the_object_region():
    env = envs.make("pick-place", obs_mode="state")
    controller = env.controller
    for x in (-0.15, 0.0, 0.12):
        for y in (-0.18, 0.0, 0.18):
            for z, yaw in ((0.02, -1.2), (0.15, 1.2)):
                q = env.home_q.copy()
                for _ in range(100):
                    q = controller.solve(q, np.array([x, y, z]), yaw)
                pos, rot = controller.forward(q)
                assert np.linalg.norm(pos - [x, y, z]) < 2e-3
                assert (
                    abs(np.arctan2(rot[1, 0], rot[0, 0]) - yaw) < 1e-2 and rot[2, 2] > 0.999
                )  # fingers down
    env.close()


def test_language_splits_hold_out_paraphrases_and_compositions():
    import re

    from envs.language import HELDOUT_TEMPLATES, TEMPLATES, is_heldout_pair, plan_pairs

    def pattern(template: str) -> re.Pattern:
        return re.compile(re.sub(r"\\\{\w+\\\}", ".+", re.escape(template)) + "$")

    seen = [pattern(t) for ts in TEMPLATES.values() for t in ts]
    unseen = [pattern(t) for ts in HELDOUT_TEMPLATES.values() for t in ts]
    for task in ("pick-place", "stack", "chain"):
        drawn = {}
        for split in ("all", "train", "unseen-paraphrase", "unseen-composition"):
            env = envs.make(task, obs_mode="state", language=split)
            drawn[split] = []
            for seed in range(12):
                _, info = env.reset(seed=seed)
                pairs = plan_pairs(env._episode.plan)
                heldout = [is_heldout_pair(c, d) for c, d in pairs]
                clauses = re.split(
                    r", then |, next |\. After that, | and then ", info["instruction"]
                )
                if split == "unseen-paraphrase":
                    assert all(any(p.match(c) for p in unseen) for c in clauses), clauses
                    assert not any(any(p.match(c) for p in seen) for c in clauses), clauses
                else:
                    assert all(any(p.match(c) for p in seen) for c in clauses), clauses
                if split in ("train", "unseen-paraphrase"):
                    assert not any(heldout), (task, split, seed)
                if split == "unseen-composition":
                    assert any(heldout), (task, seed)
                drawn[split].append(info["instruction"])
            env.close()
        default = envs.make(task, obs_mode="state")
        assert drawn["all"] == [default.reset(seed=s)[1]["instruction"] for s in range(12)]
        default.close()
    for task in ("reach", "sort"):
        env = envs.make(task, obs_mode="state", language="unseen-composition")
        with pytest.raises(ValueError, match="no unseen compositions"):
            env.reset(seed=0)
        env.close()
    with pytest.raises(ValueError, match="language must be one of"):
        envs.make("reach", language="heldout")
