"""The reference baselines (bc-state, bc-pixels), their features, DAgger and their CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import envs
from embodied.cli import main
from embodied.data.collect import collect
from embodied.data.dataset import EpisodeDataset
from embodied.evaluation.harness import evaluate
from embodied.saved_agents import agent_factory_from_run, load_bundle
from embodied.training.baselines import load_demos, open_datasets, sampler, train_bc
from envs.scene import CUBE_HALF
from envs.task_features import (
    INSTRUCTION_DIM,
    LINK_DIM,
    MAX_LINKS,
    PROPRIO_USED,
    SLOT_ORDERS,
    STATE_DIM,
    Mention,
    TaskFeatures,
    instruction_vector,
    parse_mentions,
)
from policies.bc import BC_KINDS
from policies.bc_config import HierarchicalKeypointsConfig, bc_preset
from policies.bundles import env_overrides
from tests.conftest import check_remembers_previous_action, train_with_previous_action
from world_models.checkpoint import CheckpointError, load_checkpoint


@pytest.fixture(scope="module")
def state_demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos") / "pick-place-state"
    collect("pick-place", 6, root, seed=100, noise=0.1, progress=False, obs_mode="state")
    return root


@pytest.fixture(scope="module")
def pixel_demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos") / "reach-pixels"
    collect("reach", 3, root, seed=100, noise=0.1, progress=False, image_size=32)
    return root


@pytest.fixture(scope="module")
def state_run(trained_bc):
    return trained_bc("bc-state").out


# ---------------------------------------------------------------------- features


def test_mentions_follow_the_words_in_any_paraphrase():
    assert parse_mentions("put the red cube on the green pad") == [
        Mention("red", "cube"),
        Mention("green", "pad"),
    ]
    assert parse_mentions(
        "Slide the Blue cube left, then place the red cube onto the yellow pad"
    ) == [
        Mention("blue", "cube", "left", pushed=True),
        Mention("red", "cube"),
        Mention("yellow", "pad"),
    ]
    assert parse_mentions("sort the cubes onto the pads of their colour") == []
    code = instruction_vector("put the red cube on the green pad")
    assert code.shape == (INSTRUCTION_DIM,) and code.sum() == 4.0
    assert not np.array_equal(code, instruction_vector("put the green cube on the red pad"))


def test_push_and_pick_place_instructions_differ_only_by_the_pushed_bit():
    """The same two objects, pushed or carried: the words tell which, clause by clause."""
    pushed = "push the red cube onto the green pad, then put the blue cube on the yellow pad"
    assert [m.pushed for m in parse_mentions(pushed)] == [True, False, False, False]
    assert [m.pushed for m in parse_mentions("give the red cube a push left")] == [True]
    carried, slid = "put the red cube on the green pad", "slide the red cube to the green pad"
    assert instruction_vector(carried).sum() + 1 == instruction_vector(slid).sum()
    env = envs.make("pick-place", obs_mode="state")
    obs, _ = env.reset(seed=0)
    tf = TaskFeatures(tuple(o.kind for o in env.objects))
    colors = tf.colors(obs["object_state"])
    cube = next(c for c, o in zip(colors, env.objects) if o.kind == "cube")
    pad = next(c for c, o in zip(colors, env.objects) if o.kind == "pad")
    feats = []
    for text in (
        f"put the {cube} cube on the {pad} pad",
        f"push the {cube} cube onto the {pad} pad",
    ):
        bound = tf.bind(text, obs["object_state"])
        args = (obs["proprio"], obs["object_state"], obs["object_state"], bound)
        feats.append(tf.state_features(*args))
    env.close()
    assert np.flatnonzero(feats[0] != feats[1]).tolist() == [len(PROPRIO_USED) + 1 + LINK_DIM - 1]


def test_features_bind_the_named_objects_in_every_task(task):
    env = envs.make(task, obs_mode="state")
    obs, _ = env.reset(seed=5)
    features = TaskFeatures(tuple(o.kind for o in env.objects))
    bound = features.bind(obs["instruction"], obs["object_state"])
    names = {body: sem for sem, body in env.names.items()}
    named = [names[env.objects[i].name] for i, _ in bound]
    plan_objects = []
    for s in env.plan:
        for name in (s.obj, s.dest):
            if name in names.values() and name not in plan_objects:
                plan_objects.append(name)
    assert named == plan_objects  # the roles are the plan's objects, in the plan's order
    f = features.state_features(obs["proprio"], obs["object_state"], obs["object_state"], bound)
    assert f.shape == (STATE_DIM,) and np.isfinite(f).all()
    env.close()


def test_slot_order_keeps_the_instruction_order_where_active_rotates():
    """Once a chain's first link is done, ``active`` moves link 1 into slot 0; ``instruction``
    leaves every link in the slot of its place in the instruction (System 2's plan positions)."""
    env = envs.make("chain", obs_mode="state")
    obs, _ = env.reset(seed=3)
    features = TaskFeatures(tuple(o.kind for o in env.objects))
    bound = features.bind(obs["instruction"], obs["object_state"])
    first = features.links(bound)[0]
    done = np.array(obs["object_state"], dtype=np.float32)  # link 0's cube set on its destination
    obj, dest = (features.slices[i][1] for i in (first.obj, first.dest))
    done[obj : obj + 2] = done[dest : dest + 2]
    on_cube = features.slices[first.dest][0] == "cube"
    done[obj + 2] = done[dest + 2] + 2 * CUBE_HALF if on_cube else CUBE_HALF
    head = len(PROPRIO_USED) + 1
    slots = {}
    for order in SLOT_ORDERS:
        args = (obs["proprio"], done, obs["object_state"], bound, order)
        slots[order] = features.state_features(*args)[head:].reshape(MAX_LINKS, LINK_DIM)
    env.close()
    assert slots["instruction"][0, 28] == 1.0 and slots["instruction"][1, 28] == 0.0
    assert slots["active"][0, 28] == 0.0  # the active (undone) link comes first
    np.testing.assert_array_equal(slots["active"][0], slots["instruction"][1])
    with pytest.raises(ValueError, match="unknown slot_order 'random'; accepted"):
        features.state_features(obs["proprio"], done, done, bound, "random")
    with pytest.raises(ValueError, match="planner_slots must be one of"):
        HierarchicalKeypointsConfig(planner_slots="random")


def test_features_reject_another_layout():
    features = TaskFeatures(("cube", "pad"))
    with pytest.raises(ValueError, match="object_state has 3 entries"):
        features.colors(np.zeros(3))
    with pytest.raises(ValueError, match="unknown object kind"):
        TaskFeatures(("ball",))


# ---------------------------------------------------------------------- networks


@pytest.mark.parametrize("kind", ["bc-state", "bc-pixels"])
def test_loss_falls_when_overfitting_one_batch(kind, state_demos, pixel_demos):
    torch.manual_seed(0)
    root = state_demos if kind == "bc-state" else pixel_demos
    datasets, _ = open_datasets([root], kind)
    demos = load_demos(datasets, kind, [(0, e) for e in range(len(datasets[0]))])
    config = bc_preset(kind, "debug")
    if kind == "bc-state":
        policy = config.build()
        policy.normalizer.fit(demos.features)
        batch = sampler(demos, kind, 32)(np.random.default_rng(0))
    else:
        keys = tuple(sorted(demos.images))
        policy = config.build(keys, 32)
        batch = sampler(demos, kind, 8, config.chunk)(np.random.default_rng(0))
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss, metrics = policy.loss(batch, torch.Generator().manual_seed(0))
        first = first if first is not None else float(loss.detach())
        optimizer.zero_grad()
        loss.backward()
        for p in policy.parameters():
            assert p.grad is None or torch.isfinite(p.grad).all()
        optimizer.step()
    assert float(loss.detach()) < 0.3 * first
    assert 0.0 <= metrics["gripper_accuracy"] <= 1.0


def test_bc_pixels_reads_the_instruction_from_the_first_layer(pixel_demos):
    datasets, _ = open_datasets([pixel_demos], "bc-pixels")
    demos = load_demos(datasets, "bc-pixels", [(0, 0)])
    policy = bc_preset("bc-pixels", "debug").build(tuple(sorted(demos.images)), 32)
    for film in policy.stems["image_front"].films:
        torch.nn.init.normal_(film.weight)
    images = {k: torch.from_numpy(v[:1]) for k, v in demos.images.items()}
    proprio = torch.from_numpy(demos.proprio[:1])
    a = torch.from_numpy(instruction_vector("reach the red target"))[None]
    b = torch.from_numpy(instruction_vector("reach the blue target"))[None]
    stem = policy.stems["image_front"]
    x = images["image_front"].permute(0, 3, 1, 2).float() / 255
    first = [
        stem.convs[0](x) * (1 + g)
        for g in (stem.films[0](policy.instruction(c))[:, :4, None, None] for c in (a, b))
    ]
    assert not torch.allclose(first[0], first[1])
    assert not torch.allclose(policy(images, proprio, a), policy(images, proprio, b))


# ---------------------------------------------------------------------- agents and checkpoints


@pytest.mark.parametrize("kind", BC_KINDS)
def test_the_saved_agent_is_the_one_training_left_in_memory(trained_bc, kind):
    """Save -> load against the agent still in memory (not one file loaded twice): the same
    tensors and the same actions (and subtasks) step by step from a seeded reset; and not a
    fresh network of the same config seeded as training was (what a save of the start holds)."""
    run = trained_bc(kind)
    assert run.report["rounds"][0]["steps"] == bc_preset(kind, "debug").train.steps
    loaded = load_bundle(run.out)
    assert loaded.kind == run.bundle.kind == kind
    trained, state = run.bundle.policy.state_dict(), loaded.policy.state_dict()
    assert trained.keys() == state.keys()
    differ = [k for k in trained if not torch.equal(trained[k], state[k])]
    assert not differ, f"saved otherwise than trained: {differ}"
    torch.manual_seed(run.bundle.info["seed"])  # as _fit_round does before it builds the policy
    shape = () if kind == "bc-state" else (loaded.policy.image_keys, loaded.policy.image_size)
    fresh = dict(bc_preset(kind, "debug").build(*shape).named_parameters())
    unchanged = [k for k, p in loaded.policy.named_parameters() if torch.equal(p, fresh[k])]
    assert fresh and not unchanged, f"never trained: {unchanged}"
    env = envs.make("pick-place", **env_overrides(loaded))
    obs, info = env.reset(seed=3)
    agents = [run.bundle.make(task="pick-place"), loaded.make(task="pick-place")]
    for agent in agents:
        agent.reset(info["instruction"])
    for _ in range(4):
        a, b = (agent.act(obs) for agent in agents)
        np.testing.assert_array_equal(a, b)
        assert agents[0].subtask == agents[1].subtask
        assert a.shape == (5,) and np.all(np.abs(a) <= 1) and a[4] in (-1.0, 1.0)
        obs, *_ = env.step(a)
    env.close()


def test_history_block_sees_only_its_own_episode_and_matches_acting():
    from policies.history import HistoryShape, StepMemory, history_block

    actions = np.arange(10, dtype=np.float32).reshape(5, 2) + 1  # episodes of 2 and 3 steps
    prev = history_block(
        np.zeros((5, 3), np.float32), actions, np.array([2, 3]), HistoryShape(0, 1)
    )
    np.testing.assert_array_equal(prev, [[0, 0], [1, 2], [0, 0], [5, 6], [7, 8]])
    rng = np.random.default_rng(0)
    features = rng.normal(size=(5, 3)).astype(np.float32)
    shape = HistoryShape(2, 2)
    block = history_block(features, actions, np.array([2, 3]), shape)
    assert block.shape == (5, shape.width(3, 2)) == (5, 10)
    for start, n in ((0, 2), (2, 3)):  # acting rebuilds the same rows, step by step
        memory = StepMemory(shape, 2)
        for t in range(start, start + n):
            row = memory.inputs(features[t])
            np.testing.assert_allclose(row, np.concatenate([features[t], block[t]]), atol=1e-6)
            memory.record(features[t], actions[t])
        memory.reset()
        np.testing.assert_array_equal(memory.last_action, 0.0)
    # the third row is an episode's first: its past frames are itself, its past actions zeros
    np.testing.assert_array_equal(block[2], 0.0)
    np.testing.assert_allclose(block[4, :3], features[3] - features[4], atol=1e-6)
    np.testing.assert_allclose(block[4, 3:6], features[2] - features[4], atol=1e-6)
    np.testing.assert_array_equal(block[4, 6:], [7, 8, 5, 6])  # a_{t-1}, a_{t-2}


def test_bc_state_reading_its_previous_action_trains_saves_and_remembers(
    state_demos, tmp_path, monkeypatch
):
    bundle = train_with_previous_action("bc-state", state_demos, tmp_path / "run", monkeypatch)
    assert bundle.policy.normalizer.mean.shape == (STATE_DIM + 5,)
    env = envs.make("pick-place", obs_mode="state")
    obs, info = env.reset(seed=3)
    check_remembers_previous_action(bundle.make(task="pick-place"), obs, info["instruction"])
    env.close()


def test_bc_state_reading_its_last_steps_trains_saves_and_remembers(
    state_demos, tmp_path, monkeypatch
):
    from policies.bc_config import BCStateConfig
    from tests.conftest import check_reads_its_last_steps, train_debug_variant

    train_debug_variant("bc-state", state_demos, tmp_path / "run", monkeypatch, history=2)
    bundle = load_bundle(tmp_path / "run")
    assert bundle.policy.config.history == 2
    assert bundle.policy.normalizer.mean.shape == (
        3 * STATE_DIM + 2 * 5,
    )  # now, 2 diffs, 2 actions
    env = envs.make("pick-place", obs_mode="state")
    check_reads_its_last_steps(bundle, env, "pick-place")
    env.close()
    with pytest.raises(ValueError, match="already includes the previous action"):
        BCStateConfig(history=2, previous_action=True)
    with pytest.raises(ValueError, match="history must be >= 0"):
        BCStateConfig(history=-1)
    assert BCStateConfig(history=1, previous_action_dropout=0.5).history == 1


def test_bc_state_refuses_other_tasks_and_truncated_files(state_run, tmp_path):
    with pytest.raises(CheckpointError, match="trained on tasks"):
        agent_factory_from_run(state_run, "stack")
    data = (state_run / "agent.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_bundle(tmp_path / "cut.pt")


def test_bc_pixels_trains_evaluates_and_resumes(pixel_demos, tmp_path):
    out = tmp_path / "pix"
    stopped = train_bc("bc-pixels", [pixel_demos], out, preset="debug", progress=False,
                       tensorboard=False, stop_after=3)  # fmt: skip
    assert stopped == {"stopped_at": 3, "round": 0}
    saved = load_checkpoint(out / "round_0" / "checkpoint.pt", "bc-pixels-training")
    assert saved["step"] == 2 and saved["train_seconds"] > 0  # time up to the checkpoint
    report = train_bc("bc-pixels", [pixel_demos], out, preset="debug", progress=False,
                      tensorboard=False)  # fmt: skip
    first = report["rounds"][0]
    assert first["resumed"] and first["steps"] == 6
    # the run's training time counts the killed call up to its checkpoint, then this one
    assert first["train_seconds"] >= round(saved["train_seconds"], 1)
    assert first["train_seconds"] >= first["train_seconds_this_call"] - 0.05  # rounding
    make, overrides = agent_factory_from_run(out, "reach")
    assert overrides["image_size"] == 32
    result = evaluate(make, "reach", 2, seed=0, **overrides)
    assert result.episodes == 2 and 0.0 <= result.success_rate <= 1.0


# ---------------------------------------------------------------------- DAgger


def test_dagger_round_writes_an_ordinary_dataset(state_demos, tmp_path):
    out = tmp_path / "dagger"
    report = train_bc("bc-state", [state_demos], out, preset="debug", dagger=1,
                      dagger_episodes=2, dagger_beta=0.0, progress=False, tensorboard=False)  # fmt: skip
    round_data = EpisodeDataset(out / "round_1" / "data" / "pick-place")
    assert len(round_data) == 2
    assert round_data.meta["source"] == {
        "dagger_round": 1,
        "teacher": "expert",
        "teacher_probability": 0.0,
    }
    episode = round_data[0]
    assert episode.meta["dagger_round"] == 1
    # the student acted (its gripper is snapped to +-1); the expert labelled every state
    assert set(np.unique(episode.steps["action"][:, 4])) <= {-1.0, 1.0}
    assert not np.array_equal(episode.steps["action"], episode.steps["expert_action"])
    assert len(report["rounds"]) == 2 and report["rounds"][1]["rollouts"][0]["task"] == "pick-place"
    assert (out / "round_1" / "agent.pt").exists() and (out / "agent.pt").exists()
    # loadable by every trainer: the next round reads it like any demo dataset
    datasets, _ = open_datasets([out / "round_1" / "data" / "pick-place"], "bc-state")
    assert load_demos(datasets, "bc-state", [(0, 0)]).features.shape[1] == STATE_DIM


def test_dagger_mixes_in_the_teacher_with_probability_beta(state_demos, tmp_path):
    out = tmp_path / "mixed"
    train_bc("bc-state", [state_demos], out, preset="debug", dagger=1, dagger_episodes=1,
             dagger_beta=1.0, progress=False, tensorboard=False)  # fmt: skip
    episode = EpisodeDataset(out / "round_1" / "data" / "pick-place")[0]
    np.testing.assert_allclose(episode.steps["action"], episode.steps["expert_action"], atol=1e-6)
    assert episode.meta["success"]  # the expert drove: the episode succeeds


def test_dagger_with_a_trained_teacher(state_demos, state_run, tmp_path):
    out = tmp_path / "student"
    train_bc("bc-state", [state_demos], out, preset="debug", dagger=1, dagger_episodes=1,
             teacher=str(state_run), progress=False, tensorboard=False)  # fmt: skip
    episode = EpisodeDataset(out / "round_1" / "data" / "pick-place")[0]
    assert episode.meta["teacher"] == str(state_run)
    assert np.all(np.abs(episode.steps["expert_action"]) <= 1.0)


# ---------------------------------------------------------------------- CLI


def test_cli_trains_a_baseline_with_dagger_and_evaluates_it(state_demos, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "agent", "--kind", "bc-state", "--data", str(state_demos), "--out",
                 str(run), "--preset", "debug", "--dagger", "1", "--dagger-episodes", "1",
                 "--quiet"])  # fmt: skip
    assert code == 0 and "round 1" in capsys.readouterr().out
    code = main(["eval", "--agent", str(run), "--task", "pick-place", "--episodes", "2",
                 "--out", str(tmp_path / "eval"), "--device", "auto", "--quiet"])  # fmt: skip
    assert code == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["episodes"] == 2


def test_cli_rejects_retired_flags_and_state_data_for_pixel_kinds(state_demos, tmp_path, capsys):
    with pytest.raises(SystemExit):  # --head went with the pixel-fusion family
        main(["train", "agent", "--kind", "bc-state", "--data", str(state_demos), "--out",
              str(tmp_path / "r"), "--head", "flow", "--quiet"])  # fmt: skip
    assert "unrecognized arguments: --head" in capsys.readouterr().err
    code = main(["train", "agent", "--kind", "bc-pixels", "--data", str(state_demos), "--out",
                 str(tmp_path / "r"), "--quiet"])  # fmt: skip
    assert code == 2 and "collect with --obs-mode pixels" in capsys.readouterr().err


def test_device_choice_is_validated():
    from world_models.trainer import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_results_record_portable_paths(tmp_path, monkeypatch):
    from sandbox_common.paths import portable_path

    monkeypatch.chdir(tmp_path)
    assert portable_path(tmp_path / "runs" / "x") == "runs/x"
    assert portable_path("/somewhere/else/data/pp") == "<elsewhere>/data/pp"


def test_rollouts_refuse_to_resume_another_rounds_settings(tmp_path):
    from embodied.agent import ExpertAgent
    from embodied.data.collect import collect_rollouts, expert_teacher
    from embodied.data.dataset import DatasetError

    def run(meta):
        return collect_rollouts(tmp_path / "r", "reach", [7], lambda env, s: ExpertAgent(env),
                                expert_teacher, meta=meta, progress=False, obs_mode="state")  # fmt: skip

    assert run({"dagger_round": 1, "teacher_probability": 0.5})["episodes"] == 1
    with pytest.raises(DatasetError, match="source"):
        run({"dagger_round": 1, "teacher_probability": 0.25})


def test_previous_action_dropout_zeroes_the_action_columns_in_training_only():
    from policies.bc import BCStatePolicy
    from policies.bc_config import BCStateConfig

    with pytest.raises(ValueError, match="needs previous_action"):
        BCStateConfig(previous_action_dropout=0.5)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        BCStateConfig(previous_action=True, previous_action_dropout=1.0)
    config = BCStateConfig(hidden=(16,), previous_action=True, previous_action_dropout=0.999)
    policy = BCStatePolicy(config)
    rng = np.random.default_rng(0)
    state = rng.normal(size=(4, STATE_DIM)).astype(np.float32)
    actions = rng.uniform(-1, 1, (4, 5)).astype(np.float32)
    batch = {"features": np.concatenate([state, np.full((4, 5), 3.0, np.float32)], 1),
             "actions": actions}  # fmt: skip
    zeroed = {"features": np.concatenate([state, np.zeros((4, 5), np.float32)], 1),
              "actions": actions}  # fmt: skip
    policy.train()
    dropped, _ = policy.loss(batch, torch.Generator().manual_seed(0))
    policy.eval()
    assert torch.allclose(dropped, policy.loss(zeroed)[0])
    assert not torch.allclose(policy.loss(batch)[0], policy.loss(zeroed)[0])
