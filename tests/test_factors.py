"""Factors of variation, domain randomisation, world events and robustness suites."""

from __future__ import annotations

import json
import re
from itertools import pairwise

import numpy as np
import pytest

import envs
from embodied.agent import ExpertAgent
from embodied.rollout import run_episode
from envs.events import EVENTS
from envs.factors import FACTORS, FAMILIES, MAGNITUDES, TRAIN_BANDS, draw_training_magnitude
from envs.perturbation import MODEL_ARRAYS

CLAIMS = {
    "object_shade": {"geom_rgba"},
    "table_color": {"mat_rgba"},
    "table_texture": {"mat_texrepeat"},
    "light_intensity": {"light_diffuse", "headlight"},
    "light_direction": {"light_pos", "light_dir"},
    "camera_pose": {"cam_pos", "cam_quat"},
    "camera_fov": {"cam_fovy"},
    "distractors": {"geom_rgba", "mocap"},
    "object_mass": {"body_mass", "body_inertia"},
    "object_friction": {"geom_friction"},
    "object_size": {"geom_size", "geom_rbound", "geom_aabb"},
    "table_friction": {"geom_friction"},
    "joint_damping": {"dof_damping"},
    "actuator_gain": {"actuator_gainprm", "actuator_biasprm"},
}
OBS_CLAIMS = {
    "image_noise": {"image_front", "image_wrist"},
    "proprio_noise": {"proprio"},
    "object_state_noise": {"object_state"},
    "paraphrase": {"instruction"},
    "counterfactual": {"instruction"},
}
ACTIONS = np.random.default_rng(0).uniform(-1, 1, (12, 5))


def _model_state(env) -> dict[str, np.ndarray]:
    m = env.unwrapped.model
    state = {name: getattr(m, name).copy() for name in MODEL_ARRAYS}
    state["headlight"] = np.concatenate([m.vis.headlight.ambient, m.vis.headlight.diffuse])
    state["mocap"] = env.unwrapped.data.mocap_pos.copy()
    return state


def _changed(a: dict, b: dict) -> set[str]:
    return {k for k in a if not np.array_equal(a[k], b[k])}


def _run(env, seed: int, options=None, actions=ACTIONS) -> list[dict]:
    obs, _ = env.reset(seed=seed, options=options)
    out = [obs]
    for a in actions:
        obs, *_ = env.step(a)
        out.append(obs)
    return out


def _same(a: dict, b: dict) -> bool:
    return all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


@pytest.fixture(scope="module")
def pixel_env():
    env = envs.make("pick-place", image_size=32)
    yield env
    env.close()


def test_catalogue_has_every_family_and_enough_factors():
    families = {f.family for f in FACTORS.values()}
    assert families == {"visual", "physical", "sensing", "actuation", "language"}
    assert len(FACTORS) >= 15
    # training bands never hold an evaluation magnitude
    for m in MAGNITUDES.values():
        assert not any(lo <= m <= hi for lo, hi in TRAIN_BANDS)
    rng = np.random.default_rng(0)
    draws = [draw_training_magnitude(rng, 1.0) for _ in range(2000)]
    assert all(any(lo <= d <= hi for lo, hi in TRAIN_BANDS) for d in draws)
    assert max(draws) > 0.8 and min(draws) < 0.05
    assert max(draw_training_magnitude(rng, 0.4) for _ in range(500)) <= 0.4


def test_magnitude_zero_is_bit_identical_to_nominal(pixel_env):
    nominal = _run(pixel_env, 3)
    zeros = {name: 0.0 for name, f in FACTORS.items() if f.applies_to("pick-place")}
    for a, b in zip(nominal, _run(pixel_env, 3, {"factors": zeros})):
        assert _same(a, b)
    env = envs.make("pick-place", image_size=32, factors=zeros)
    try:
        for a, b in zip(nominal, _run(env, 3)):
            assert _same(a, b)
    finally:
        env.close()


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_model_factors_change_what_they_claim_and_nothing_else(pixel_env, name):
    pixel_env.reset(seed=5)
    before = _model_state(pixel_env)
    obs0, _ = pixel_env.reset(seed=5)
    obs, info = pixel_env.reset(seed=5, options={"factors": {name: 1.0}})
    assert info["factors"] == {name: 1.0}
    changed = _changed(before, _model_state(pixel_env))
    assert changed and changed <= CLAIMS[name], changed
    family = FACTORS[name].family
    if family == "visual":  # the images change, the state does not
        assert not np.array_equal(obs["image_front"], obs0["image_front"])
        assert np.array_equal(obs["proprio"], obs0["proprio"])
        assert np.array_equal(obs["object_state"], obs0["object_state"])
    # the next reset restores the nominal model exactly
    obs2, _ = pixel_env.reset(seed=5)
    assert not _changed(before, _model_state(pixel_env))
    assert _same(obs2, obs0)


def test_measured_friction_and_size():
    env = envs.make("pick-place", obs_mode="state")
    m = env.model
    cube = m.geom("cube0").id
    env.reset(seed=1)
    mu, half = m.geom_friction[cube, 0], m.geom_size[cube, 0]
    env.reset(seed=1, options={"factors": {"object_friction": 1.0, "object_size": 0.5}})
    ratio = m.geom_friction[cube, 0] / mu
    assert ratio == pytest.approx(3.0) or ratio == pytest.approx(1 / 3)
    assert m.geom_size[cube, 0] / half in (pytest.approx(1.1), pytest.approx(0.9))
    # the cube rests on the table at its new size
    for _ in range(5):
        env.step(np.array([0, 0, 0, 0, -1.0]))
    assert env.object_pos("cube0")[2] == pytest.approx(env.cube_half, abs=1e-3)
    env.close()


@pytest.mark.parametrize("name", sorted(OBS_CLAIMS))
def test_observation_factors_change_only_their_key(pixel_env, name):
    if name == "counterfactual":
        env = envs.make("pick-place", image_size=32)
    else:
        env = pixel_env
    nominal = _run(env, 7)
    perturbed = _run(env, 7, {"factors": {name: 1.0}})
    changed = {
        k
        for a, b in zip(nominal, perturbed)
        for k in a
        if not np.array_equal(np.asarray(a[k]), np.asarray(b[k]))
    }
    assert changed == OBS_CLAIMS[name]


def test_observation_delay_shows_the_past(pixel_env):
    nominal = _run(pixel_env, 2)
    delayed = _run(pixel_env, 2, {"factors": {"observation_delay": 1.0}})  # 2 steps
    for t in range(2, len(nominal)):
        assert _same(delayed[t], nominal[t - 2])
    assert _same(delayed[1], nominal[0])
    half = _run(pixel_env, 2, {"factors": {"observation_delay": 0.25}})  # half a step
    for t in range(1, len(nominal)):
        assert np.array_equal(half[t]["image_front"], nominal[t - 1]["image_front"])
        mid = 0.5 * nominal[t]["proprio"] + 0.5 * nominal[t - 1]["proprio"]
        np.testing.assert_allclose(half[t]["proprio"], mid, atol=1e-6)


def test_action_delay_executes_late():
    env = envs.make("pick-place", obs_mode="state")
    hold = np.array([[0, 0, 0, 0, -1.0]])
    nominal = _run(env, 4, actions=np.concatenate([hold, ACTIONS]))
    late = _run(env, 4, {"factors": {"action_delay": 1.0}}, actions=ACTIONS)  # 1 step
    for t in range(1, len(late)):
        assert np.array_equal(late[t]["proprio"], nominal[t]["proprio"])
    # half a step: the executed command is halfway between this one and the last
    blended = np.concatenate([0.5 * (hold + ACTIONS[:1]), 0.5 * (ACTIONS[1:] + ACTIONS[:-1])])
    nominal = _run(env, 4, actions=blended)
    half = _run(env, 4, {"factors": {"action_delay": 0.5}}, actions=ACTIONS)
    for t in range(1, len(half)):
        np.testing.assert_allclose(half[t]["proprio"], nominal[t]["proprio"], atol=1e-5)
    env.close()


def test_dropped_frames_repeat_the_scene_not_the_arm(pixel_env):
    obs = _run(pixel_env, 9, {"factors": {"dropped_frames": 1.0}}, actions=ACTIONS[:10])
    repeats = sum(np.array_equal(a["image_front"], b["image_front"]) for a, b in pairwise(obs))
    assert 1 <= repeats <= 9
    assert all(not np.array_equal(a["proprio"], b["proprio"]) for a, b in pairwise(obs))


def test_factors_are_seeded_and_combine_as_a_union(pixel_env):
    a = _run(pixel_env, 11, {"factors": {"camera_pose": 0.5, "image_noise": 0.5}})
    b = _run(pixel_env, 11, {"factors": {"camera_pose": 0.5, "image_noise": 0.5}})
    assert all(_same(x, y) for x, y in zip(a, b))
    pixel_env.reset(seed=11, options={"factors": {"camera_pose": 0.5}})
    alone = _model_state(pixel_env)
    pixel_env.reset(seed=11, options={"factors": {"camera_pose": 0.5, "light_intensity": 0.5}})
    both = _model_state(pixel_env)
    assert np.array_equal(alone["cam_pos"], both["cam_pos"])


@pytest.mark.parametrize("name", sorted(FACTORS))
def test_no_factor_leaves_the_simulation_silently_unstable(name):
    task = "pick-place" if FACTORS[name].applies_to("pick-place") else FACTORS[name].tasks[0]
    env = envs.make(task, obs_mode="state", factors={name: 1.0})
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(40):
        obs, _, terminated, _, info = env.step(rng.uniform(-1, 1, 5))
        assert info["unstable"] or (
            np.isfinite(env.data.qpos).all() and np.isfinite(obs["proprio"]).all()
        )
        if terminated:
            break
    env.close()


def test_bad_factors_and_events_are_clear_errors():
    with pytest.raises(ValueError, match="unknown factor 'fog'.*known factors"):
        envs.make("reach", factors={"fog": 0.5})
    with pytest.raises(ValueError, match=r"magnitude must be in \[0, 1\]"):
        envs.make("reach", factors={"light_intensity": 1.5})
    with pytest.raises(ValueError, match="does not apply to 'sort'"):
        envs.make("sort", factors={"counterfactual": 1.0})
    with pytest.raises(ValueError, match="unknown factor famil"):
        envs.make("reach", randomize=("weather",))
    with pytest.raises(ValueError, match="unknown world event"):
        envs.make("reach", events=("earthquake",))
    env = envs.make("reach", obs_mode="state")
    with pytest.raises(ValueError, match="unknown reset option.*accepted: factors, events"):
        env.reset(seed=0, options={"variation": 1})
    env.close()


def test_domain_randomisation_draws_training_magnitudes_per_episode():
    env = envs.make("pick-place", obs_mode="state", randomize=("physical", "language"),
                    randomize_magnitude=0.5)  # fmt: skip
    seen = []
    for seed in range(6):
        _, info = env.reset(seed=seed)
        assert "paraphrase" not in info["factors"]  # never trained on held-out words
        assert set(info["factors"]) <= {
            n for n, f in FACTORS.items() if f.family in ("physical", "language")
        }
        for m in info["factors"].values():
            assert m <= 0.5 and any(lo <= m <= hi for lo, hi in TRAIN_BANDS)
        seen.append(info["factors"])
    assert seen[0] != seen[1]
    env.close()


def test_joint_randomisation_shares_one_magnitude_in_its_share_of_episodes():
    from envs.factors import randomized_factors

    families = ("physical", "sensing")
    joint, independent = 0, 0
    for i in range(200):
        drawn = randomized_factors(np.random.default_rng(i), families, 0.5, "pick-place", 0.5)
        assert all(any(lo <= m <= hi for lo, hi in TRAIN_BANDS) for m in drawn.values())
        if len(set(drawn.values())) == 1:
            joint += 1
        else:
            independent += 1
    assert 70 <= joint <= 130 and independent == 200 - joint
    # joint=0 draws exactly what the draws without the option drew (recorded datasets replay)
    plain = randomized_factors(np.random.default_rng(7), families, 0.5, "pick-place")
    assert randomized_factors(np.random.default_rng(7), families, 0.5, "pick-place", 0.0) == plain
    with pytest.raises(ValueError, match=r"randomize_joint .* must be in \[0, 1\], got 1.5"):
        envs.make("reach", randomize=("physical",), randomize_joint=1.5)


def test_counterfactual_keeps_the_scene_and_changes_the_goal():
    env = envs.make("pick-place", obs_mode="state")
    obs0, info0 = env.reset(seed=21)
    plan0 = list(env.plan)
    obs, info = env.reset(seed=21, options={"factors": {"counterfactual": 1.0}})
    assert info["counterfactual"] and env.plan != plan0
    assert info["instruction"] != info0["instruction"]
    assert np.array_equal(obs["object_state"], obs0["object_state"])
    env.close()
    env = envs.make("pick-place", obs_mode="state", factors={"counterfactual": 1.0})
    rollout = run_episode(env, ExpertAgent(env, seed=0), 21)
    assert rollout.instruction == info["instruction"]
    assert rollout.success and rollout.counterfactual and not rollout.original_goal_reached
    env.close()


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_world_events_fire_and_the_expert_recovers(event):
    task = "pick-place"
    env = envs.make(task, obs_mode="state", events=(event,))
    env.reset(seed=3)
    plan0 = [s.label for s in env.plan]
    rollout = run_episode(env, ExpertAgent(env, seed=0), 3, keep_infos=True)
    assert rollout.events_fired == event
    assert rollout.success  # the privileged expert re-reads the world every step
    fired_at = next(i for i, info in enumerate(rollout.infos) if info["events_fired"])
    if event == "change-instruction":
        assert rollout.infos[fired_at]["instruction"] != rollout.infos[0]["instruction"]
        assert [s.label for s in env.plan] != plan0
    env.close()


def test_move_target_moves_the_destination():
    env = envs.make("pick-place", obs_mode="state", events=("move-target",))
    env.reset(seed=3)
    dest = env.plan[1].dest
    start = env.object_pos(dest)
    agent = ExpertAgent(env, seed=0)
    obs, info = env.reset(seed=3)
    agent.reset(info["instruction"])
    while not info.get("events_fired"):
        obs, _, _, _, info = env.step(agent.act(obs))
    assert np.linalg.norm(env.object_pos(dest)[:2] - start[:2]) > 0.1
    env.close()


def test_run_suite_writes_the_table_and_resumes(tmp_path):
    from embodied.evaluation.harness import evaluate, expert_factory
    from embodied.evaluation.robustness import SUITES, run_suite

    calls = []

    def cell(extra):
        calls.append(extra)
        return evaluate(expert_factory(), "pick-place", 2, seed=0, obs_mode="state", **extra)

    meta = {"agent": "expert", "episodes": 2, "seed": 0}
    report = run_suite(cell, SUITES["quick"], "pick-place", tmp_path, meta)
    rows = report["rows"]
    assert rows[0]["factor"] == "nominal" and rows[-1]["family"] == "combined"
    assert {"family", "factor", "magnitude", "success_rate", "ci95", "relative_drop"} <= set(
        rows[1]
    )
    on_disk = json.loads((tmp_path / "robustness.json").read_text())
    assert on_disk["rows"] == rows
    assert (tmp_path / "robustness.md").exists() and (tmp_path / "robustness.png").exists()
    n = len(calls)
    run_suite(cell, SUITES["quick"], "pick-place", tmp_path, meta)
    assert len(calls) == n  # every cell read back
    events = run_suite(cell, SUITES["events"], "pick-place", tmp_path / "ev", meta)
    assert all(r["fired"] >= 1 and r["recovery_rate"] == 1.0 for r in events["rows"][1:])


def test_families_suite_combines_each_family_and_summarises_them_apart():
    from embodied.evaluation.robustness import SUITES, suite_cells, summarize

    cells = suite_cells(SUITES["families"], "pick-place")
    assert [c.key for c in cells[1:]] == [f"combined/{f}/0.5" for f in (*FAMILIES, "all")]
    for c in cells[1:-1]:  # a family's factors, all of them, nothing else
        assert set(c.factors) == {
            n for n, f in FACTORS.items() if f.family == c.factor and f.applies_to("pick-place")
        }
    assert set(cells[-1].factors) == {n for n, f in FACTORS.items() if f.applies_to("pick-place")}
    rows = [{"family": c.family, "factor": c.factor, "magnitude": c.magnitude,
             "success_rate": 1.0 - i / 10, "relative_drop": i / 10 or None}
            for i, c in enumerate(cells)]  # fmt: skip
    s = summarize(rows)
    assert s["combined_relative_drop"] == {"0.5": 0.6}
    assert s["family_combined_relative_drop"]["visual"] == {"0.5": 0.1}
    assert s["mean_relative_drop_middle"] is None  # no single-factor cell


def test_cli_suites_eval_suite_and_randomised_collection(tmp_path, capsys):
    from embodied.cli import main
    from embodied.data.dataset import EpisodeDataset

    assert main(["suites"]) == 0 and "all " in capsys.readouterr().out
    assert main(["suites", "--factors"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in [*FACTORS, *EVENTS])
    out = tmp_path / "suite"
    argv = ["eval", "--agent", "expert", "--task", "reach", "--episodes", "1", "--out", str(out)]
    assert main([*argv, "--suite", "quick", "--obs-mode", "state", "--quiet"]) == 0
    rows = json.loads((out / "robustness.json").read_text())["rows"]
    assert [r["factor"] for r in rows][:2] == ["nominal", "light_intensity"]
    assert main([*argv, "--suite", "fog"]) == 2
    assert "unknown suite 'fog'; known suites: all" in capsys.readouterr().err
    assert main([*argv, "--factors", "light_intensity=2"]) == 2
    assert "magnitude must be in [0, 1]" in capsys.readouterr().err
    data = tmp_path / "dr"
    argv = ["collect", "--task", "reach", "--episodes", "2", "--out", str(data), "--quiet"]
    assert (
        main([*argv, "--obs-mode", "state", "--randomize", "physical", "--magnitude", "0.5"]) == 0
    )
    metas = [episode.meta for episode in EpisodeDataset(data)]
    assert all(
        set(m["factors"]) == {n for n, f in FACTORS.items() if f.family == "physical"}
        for m in metas
    )
    assert all(0 < v <= 0.5 for m in metas for v in m["factors"].values())


def test_middle_suite_and_bench_robustness_checks_before_any_work(tmp_path):
    from embodied.bench.robustness import bench_robustness, default_randomize
    from embodied.evaluation.robustness import SUITES, suite_cells

    cells = suite_cells(SUITES["middle"], "pick-place")
    assert {c.magnitude for c in cells[1:]} == {MAGNITUDES["middle"]}
    assert len(cells) == 1 + len(FACTORS) + 1 and cells[-1].factor == "all"
    assert "visual" not in default_randomize("bc-state")
    assert "visual" in default_randomize("bc-keypoints")
    for bad, message in (
        ({"kind": "vla"}, "unknown kind 'vla'; bench robustness trains one of bc-state"),
        ({"randomize": ("weather",)}, "unknown factor famil(ies) ['weather']"),
        ({"language": "klingon"}, "language must be one of"),
        ({"suite": "fog"}, "unknown suite 'fog'"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            bench_robustness(tmp_path / "b", **bad)
    assert not (tmp_path / "b").exists()  # nothing collected or trained


def test_factor_groups_expand_families_and_all_for_a_task():
    from embodied.cli.common import factor_groups

    every = factor_groups("all=0.5", "pick-place")
    assert every == {n: 0.5 for n, f in FACTORS.items() if f.applies_to("pick-place")}
    visual = factor_groups("visual=1,action_delay=0.25", "pick-place")
    assert visual.pop("action_delay") == 0.25
    assert set(visual) == {n for n, f in FACTORS.items() if f.family == "visual"}
    assert "counterfactual" not in factor_groups("language=0.5", "sort")  # not a sort factor
    assert "counterfactual" in factor_groups("language=0.5", "pick-place")
    assert factor_groups("", "pick-place") == {}
