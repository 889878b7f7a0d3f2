"""System 1, System 2, the chunk queue and both agents: shapes, bounds, call counts, save/load,
learning on one batch, seeded reproducibility, resume, and a tiny train + eval run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embodied.agents import agent_factory_from_run, load_bundle
from embodied.cli import main
from embodied.data.collect import collect
from embodied.evaluation.harness import evaluate
from embodied.training.layered import AGENT_FILE, train_agent
from envs.language import SUBTASK_VOCAB
from envs.task_features import subtasks_named_by
from policies.agents import AGENTS, HierarchicalAgent, System1
from policies.chunking import ActionChunkQueue
from policies.config import POLICIES, PlannerConfig, planner_preset, policy_preset
from policies.imagination import WorldModelCheck
from policies.planner import PlanView
from policies.tokenizer import WordTokenizer
from world_models import ObsSpec
from world_models import preset as wm_preset
from world_models.checkpoint import CheckpointError

SPEC = ObsSpec(("image_front", "image_wrist"), 32, ("proprio",), (19,), 5)
TOKENIZER = WordTokenizer.fit(["put the red cube on the green pad", *SUBTASK_VOCAB])
HEADS = ["discrete", "flow"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def fake_obs(batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "image_front": rng.integers(0, 255, (batch, 32, 32, 3), dtype=np.uint8),
        "image_wrist": rng.integers(0, 255, (batch, 32, 32, 3), dtype=np.uint8),
        "proprio": rng.standard_normal((batch, 19)).astype(np.float32),
    }


def s1_batch(batch: int = 8, chunk: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {f"obs/{k}": v for k, v in fake_obs(batch, seed).items()}
    out["tokens"] = TOKENIZER.encode_batch(["put the red cube on the green pad"] * batch, 12)
    out["actions"] = rng.uniform(-1, 1, (batch, chunk, 5)).astype(np.float32)
    out["action_mask"] = np.ones((batch, chunk), np.float32)
    out["action_mask"][0, -1] = 0
    return out


def test_registries_list_every_policy_and_agent():
    assert POLICIES.names() == [
        "bc-keypoints",
        "bc-pixels",
        "bc-state",
        "grounded-vla",
        "hierarchical-keypoints",
        "subtask-planner",
        "vla",
    ]
    assert AGENTS.names() == [
        "bc-keypoints",
        "bc-pixels",
        "bc-state",
        "dream",
        "end-to-end",
        "grounded-vla",
        "hierarchical",
        "hierarchical-keypoints",
        "residual",
        "rl",
    ]
    with pytest.raises(
        KeyError, match="known agents: bc-keypoints, bc-pixels, bc-state, dream, end-to-end"
    ):
        AGENTS.get("telepathic")


@pytest.mark.parametrize("head", HEADS)
def test_system1_chunk_shapes_and_bounds(head):
    policy = policy_preset("debug", head=head).build(SPEC, len(TOKENIZER)).eval()
    tokens = TOKENIZER.encode_batch(["pick red cube", "place it"], 12)
    chunk = policy.predict_chunk(fake_obs(2), tokens, torch.Generator().manual_seed(0))
    assert chunk.shape == (2, policy.config.chunk, 5)
    assert torch.isfinite(chunk).all() and chunk.abs().max() <= 1.0


@pytest.mark.parametrize("head", HEADS)
def test_system1_loss_falls_on_one_batch(head):
    torch.manual_seed(0)
    config = policy_preset("debug", head=head)
    policy = config.build(SPEC, len(TOKENIZER))
    batch = s1_batch(chunk=config.chunk)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        loss, _ = policy.loss(batch, generator=torch.Generator().manual_seed(step % 2))
        optimizer.zero_grad()
        loss.backward()
        for name, p in policy.named_parameters():
            assert p.grad is None or torch.isfinite(p.grad).all(), name
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])


def test_planner_outputs_and_loss_falls():
    torch.manual_seed(0)
    planner = planner_preset("debug").build(SPEC, len(TOKENIZER), len(SUBTASK_VOCAB))
    rng = np.random.default_rng(0)
    batch = {f"obs/{k}": v for k, v in fake_obs(8).items()}
    batch |= {
        "tokens": TOKENIZER.encode_batch(["put the red cube on the green pad"] * 8, 12),
        "plan_index": rng.integers(0, 3, 8),
        "subtask": rng.integers(0, len(SUBTASK_VOCAB), 8),
        "done": rng.integers(0, 2, 8).astype(np.float32),
    }
    optimizer = torch.optim.Adam(planner.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss, metrics = planner.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0] and metrics["subtask_accuracy"] > 0.5
    view = planner.eval().assess(
        {k: torch.from_numpy(v[:1]) for k, v in fake_obs(1).items()}, batch["tokens"][:1], 0
    )
    assert view.log_probs.shape == (3, len(SUBTASK_VOCAB)) and view.done.shape == (3,)
    assert np.allclose(np.exp(view.log_probs).sum(1), 1, atol=1e-4)


def test_chunk_queue_executes_then_asks_again():
    queue = ActionChunkQueue(execute=2)
    assert queue.needs_chunk()
    queue.push(np.arange(8, dtype=np.float32).reshape(4, 2))
    assert not queue.needs_chunk()
    assert queue.pop().tolist() == [0, 1] and queue.pop().tolist() == [2, 3]
    assert queue.needs_chunk()
    queue.push(np.ones((4, 2)))
    queue.clear()
    assert queue.needs_chunk()
    with pytest.raises(RuntimeError, match="empty"):
        queue.pop()
    with pytest.raises(ValueError, match="shape"):
        queue.push(np.zeros(3))


def test_temporal_ensemble_weights_older_chunks_more():
    queue = ActionChunkQueue(execute=1, temporal_ensemble=1.0)
    queue.push(np.zeros((3, 1)))
    assert queue.pop()[0] == 0.0 and queue.needs_chunk()
    queue.push(np.ones((3, 1)))  # second chunk starts at step 1
    expected = (1.0 * 0 + np.exp(-1.0) * 1) / (1 + np.exp(-1.0))
    assert queue.pop()[0] == pytest.approx(expected)


# ---------------------------------------------------------------------- hierarchical agent logic


INSTRUCTION = "put the red cube on the green pad, then push the blue cube to the left"
NAMED = [i for i in np.flatnonzero(subtasks_named_by(INSTRUCTION, SUBTASK_VOCAB)) if i]
"""The subtasks about what INSTRUCTION names: pick(red_cube), place(green_pad), ..."""


class FakePlanner:
    """Subtask ``NAMED[index]`` at every position; done flags set by the test."""

    def __init__(self) -> None:
        self.done_at: dict[int, float] = {}
        self.calls = 0

    def assess(self, obs, tokens, index):
        self.calls += 1
        positions = [max(index - 1, 0), index, index + 1]
        log_probs = np.full((3, len(SUBTASK_VOCAB)), -10.0)
        for row, pos in enumerate(positions):
            log_probs[row, NAMED[pos]] = 0.0
            log_probs[row, NAMED[pos + 1]] = -1.0  # a runner-up
        return PlanView(
            log_probs=log_probs, done=np.array([self.done_at.get(p, 0.0) for p in positions])
        )


class FakeSystem1:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.acts = 0
        self.timings: list[float] = []
        self.keys = ("proprio",)
        self.generator = torch.Generator()
        self.policy = type("P", (), {"config": policy_preset("debug")})()

    def reset(self, text: str) -> None:
        self.texts = [text]

    def set_text(self, text: str) -> None:
        if not self.texts or self.texts[-1] != text:
            self.texts.append(text)

    def act(self, obs):
        self.acts += 1
        return np.zeros(5, np.float32)


def _hierarchical(config: PlannerConfig, check=None):
    planner, system1 = FakePlanner(), FakeSystem1()
    agent = HierarchicalAgent(planner, system1, TOKENIZER, SUBTASK_VOCAB, config, check)
    agent.reset(INSTRUCTION)
    return agent, planner, system1


def test_system2_runs_every_n_steps_and_advances_on_completion():
    config = planner_preset("debug", decide_every=4, patience=100)
    agent, planner, system1 = _hierarchical(config)
    obs = {"proprio": np.zeros(19, np.float32)}
    for _ in range(8):
        agent.act(obs)
    assert planner.calls == 2 and system1.acts == 8
    assert agent.calls["start"] == 1 and agent.subtask == SUBTASK_VOCAB[NAMED[0]]
    planner.done_at[0] = 0.9  # subtask 0 completes
    for _ in range(4):
        agent.act(obs)
    assert (
        agent.calls["advance"] == 1
        and agent.index == 1
        and agent.subtask == SUBTASK_VOCAB[NAMED[1]]
    )
    # reset("none") at the episode's start (nothing queued from the last one), then the subtasks
    assert system1.texts == ["none", SUBTASK_VOCAB[NAMED[0]], SUBTASK_VOCAB[NAMED[1]]]
    planner.done_at[0] = 0.01  # subtask 0 undone again (a dropped cube): step back
    for _ in range(4):
        agent.act(obs)
    assert (
        agent.calls["step_back"] == 1
        and agent.index == 0
        and agent.subtask == SUBTASK_VOCAB[NAMED[0]]
    )
    assert len(agent.pop_timings()["system2"]) == planner.calls


def test_system2_steps_back_only_after_the_previous_subtask_looks_undone_in_a_row():
    config = planner_preset("debug", decide_every=1, patience=100, step_back_after=3)
    agent, planner, _ = _hierarchical(config)
    obs = {"proprio": np.zeros(19, np.float32)}
    planner.done_at[0] = 0.9
    agent.act(obs)
    agent.act(obs)  # start, then advance
    assert agent.index == 1
    planner.done_at[0] = 0.01
    agent.act(obs)
    agent.act(obs)
    planner.done_at[0] = 0.9  # a flicker: done again before the third call
    agent.act(obs)
    planner.done_at[0] = 0.01
    agent.act(obs)
    agent.act(obs)
    assert agent.index == 1 and agent.calls["step_back"] == 0
    agent.act(obs)  # the third undone call in a row
    assert agent.index == 0 and agent.calls["step_back"] == 1
    with pytest.raises(ValueError, match="step_back_after"):
        planner_preset("debug", step_back_after=0)


def test_system2_replans_when_a_subtask_does_not_progress():
    config = planner_preset("debug", decide_every=2, patience=6)
    agent, planner, _ = _hierarchical(config)
    obs = {"proprio": np.zeros(19, np.float32)}
    for _ in range(10):
        agent.act(obs)
    assert agent.calls["failure"] == 1
    assert (
        agent.subtask == SUBTASK_VOCAB[NAMED[1]]
    )  # the runner-up, the failed one is not proposed again
    agent.reset("another instruction")
    assert agent.index == 0 and agent.current is None and not agent.calls


def test_world_model_check_is_asked_on_deliberation_only_and_can_overturn():
    class FavourRunnerUp:
        calls = 0

        def progress(self, batch, tokens, generator):
            FavourRunnerUp.calls += 1
            assert tokens.shape[0] == 3
            return np.array([0.0, 1.0, 0.0])  # the second candidate makes progress

    config = planner_preset("debug", decide_every=2, patience=100, wm_weight=2.0)
    agent, planner, _ = _hierarchical(config, check=FavourRunnerUp())
    obs = {"proprio": np.zeros(19, np.float32)}
    for _ in range(8):
        agent.act(obs)
    assert planner.calls == 4 and FavourRunnerUp.calls == 1 and agent.calls["imagined"] == 1
    assert agent.subtask == SUBTASK_VOCAB[NAMED[1]]  # log p -1 + 2 * 1 beats 0 + 0


def test_system2_proposes_only_subtasks_about_what_the_instruction_names():
    class PrefersAbsentCube(FakePlanner):
        def assess(self, obs, tokens, index):
            view = super().assess(obs, tokens, index)
            view.log_probs[:, SUBTASK_VOCAB.index("pick(green_cube)")] = 5.0  # green is a pad
            return view

    config = planner_preset("debug", decide_every=2, patience=100)
    planner, system1 = PrefersAbsentCube(), FakeSystem1()
    agent = HierarchicalAgent(planner, system1, TOKENIZER, SUBTASK_VOCAB, config)
    agent.reset(INSTRUCTION)
    agent.act({"proprio": np.zeros(19, np.float32)})
    assert agent.subtask == "pick(red_cube)"
    named = subtasks_named_by("sort the cubes onto the pads of their colour", SUBTASK_VOCAB)
    allowed = {label for label, ok in zip(SUBTASK_VOCAB, named) if ok}
    assert "pick(green_cube)" in allowed and "place(green_pad)" in allowed
    assert not any(label.startswith(("push", "reach")) for label in allowed)
    chain = "push the blue cube to the left, then put the red cube on the green pad"
    named = subtasks_named_by(chain, SUBTASK_VOCAB)
    allowed = {label for label, ok in zip(SUBTASK_VOCAB, named) if ok}
    assert {"push(blue_cube, left)", "pick(red_cube)", "place(green_pad)"} <= allowed
    assert "push(blue_cube, right)" not in allowed and "pick(green_cube)" not in allowed
    assert "pick(blue_cube)" not in allowed and "push(red_cube, green_pad)" not in allowed
    pushed = subtasks_named_by("slide the red cube to the green pad", SUBTASK_VOCAB)
    allowed = {label for label, ok in zip(SUBTASK_VOCAB, pushed) if ok}
    assert allowed == {"none", "push(red_cube, green_pad)"}


def test_oracle_system2_follows_the_envs_subtask_on_both_harness_paths():
    from policies.agents import OracleHierarchicalAgent

    agents = []

    def make(env, seed):
        agents.append(OracleHierarchicalAgent(FakeSystem1()))
        return agents[-1]

    for num_envs in (1, 2):
        agents.clear()
        evaluate(make, "pick-place", 2, seed=0, num_envs=num_envs, max_steps=3, obs_mode="state")
        for agent in agents:
            assert agent.system1.texts[0] == "none"  # reset, before the first observation
            assert agent.system1.texts[1].startswith("pick(") and agent.system1.acts == 3
            assert agent.subtask == agent.system1.texts[-1]


def test_world_model_check_imagines_every_candidate():
    wm = wm_preset("debug").build(
        ObsSpec(("image_front", "image_wrist"), 32, ("object_state", "proprio"), (10, 19), 5)
    )
    policy = policy_preset("debug").build(SPEC, len(TOKENIZER)).eval()
    check = WorldModelCheck(wm.eval(), policy, chunks=2)
    obs = {k: torch.from_numpy(v) for k, v in fake_obs(1).items()}
    tokens = TOKENIZER.encode_batch(list(SUBTASK_VOCAB[1:4]), 12)
    progress = check.progress(obs, tokens, torch.Generator().manual_seed(0))
    assert progress.shape == (3,) and ((progress >= 0) & (progress <= 1)).all()


def test_unknown_words_map_to_unk_and_do_not_crash():
    policy = policy_preset("debug").build(SPEC, len(TOKENIZER))
    system1 = System1(policy, TOKENIZER, seed=0)
    system1.reset("fetch the glittering chartreuse widget")
    obs = {k: v[0] for k, v in fake_obs(1).items()}
    action = system1.act(obs)
    assert action.shape == (5,) and action.dtype == np.float32
    assert TOKENIZER.encode("glittering", 3)[0] == TOKENIZER.unk_id


# ---------------------------------------------------------------------- training and the harness


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos") / "pick-place"
    collect("pick-place", 3, root, seed=0, noise=0.1, progress=False, image_size=32)
    return root


@pytest.fixture(scope="module")
def trained(demos, tmp_path_factory):
    runs = {}
    for kind in ("end-to-end", "hierarchical"):
        out = tmp_path_factory.mktemp(kind)
        train_agent(kind, [demos], out, preset="debug", seed=0, progress=False, tensorboard=False)
        runs[kind] = out
    return runs


@pytest.mark.parametrize("kind", ["end-to-end", "hierarchical"])
def test_save_load_gives_identical_actions(trained, kind):
    bundle = load_bundle(trained[kind])
    again = load_bundle(trained[kind] / AGENT_FILE)
    assert bundle.kind == kind and bundle.tasks == ("pick-place",)
    obs = {k: v[0] for k, v in fake_obs(1, seed=3).items()}
    a, b = bundle.make(seed=5), again.make(seed=5)
    a.reset("put the red cube on the green pad")
    b.reset("put the red cube on the green pad")
    for _ in range(5):
        assert np.array_equal(a.act(obs), b.act(obs))


def test_seeded_training_is_reproducible_and_resumes(demos, trained, tmp_path):
    first = load_bundle(trained["end-to-end"]).system1.state_dict()
    out = tmp_path / "again"
    partial = train_agent(
        "end-to-end",
        [demos],
        out,
        preset="debug",
        seed=0,
        progress=False,
        stop_after=5,
        tensorboard=False,
    )
    assert partial == {"stopped_at": 5} and not (out / AGENT_FILE).exists()
    report = train_agent(
        "end-to-end", [demos], out, preset="debug", seed=0, progress=False, tensorboard=False
    )
    assert report["system1"]["resumed"]
    second = load_bundle(out).system1.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_checkpoint_refuses_other_tasks_layouts_and_corruption(trained, tmp_path):
    with pytest.raises(CheckpointError, match=r"trained on tasks \['pick-place'\], not 'stack'"):
        agent_factory_from_run(trained["end-to-end"], "stack")
    bundle = load_bundle(trained["end-to-end"])
    import envs

    env = envs.make("pick-place", image_size=48, cameras=("front",))
    try:
        with pytest.raises(CheckpointError, match="no observation 'image_wrist'.*48 px"):
            bundle.check_env("pick-place", env.observation_space)
    finally:
        env.close()
    (tmp_path / "empty-run").mkdir()
    broken = tmp_path / "broken.pt"
    broken.write_bytes((trained["end-to-end"] / AGENT_FILE).read_bytes()[:300])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_bundle(broken)
    with pytest.raises(CheckpointError, match="no agent.pt"):
        load_bundle(tmp_path / "empty-run")


@pytest.mark.parametrize("kind", ["end-to-end", "hierarchical"])
def test_tiny_train_then_evaluate_in_process(trained, kind):
    make, overrides = agent_factory_from_run(trained[kind], "pick-place")
    result = evaluate(make, "pick-place", 2, seed=0, max_steps=12, **overrides)
    assert result.episodes == 2 and result.mean_length == 12
    assert result.latency_ms["system1_mean"] > 0
    if kind == "hierarchical":
        assert result.latency_ms["system2_mean"] > 0
        make, overrides = agent_factory_from_run(trained[kind], "pick-place", planner="oracle")
        oracle = evaluate(make, "pick-place", 2, seed=0, max_steps=12, **overrides)
        assert oracle.episodes == 2 and "system2_mean" not in oracle.latency_ms
    else:
        with pytest.raises(ValueError, match="planner 'oracle' replaces the System 2"):
            agent_factory_from_run(trained[kind], "pick-place", planner="oracle")


def test_cli_train_agent_then_eval_writes_metrics_and_videos(demos, tmp_path, capsys):
    import json

    run = tmp_path / "hier"
    argv = ["train", "agent", "--kind", "hierarchical", "--data", str(demos), "--out", str(run)]
    assert main([*argv, "--preset", "debug", "--seed", "1", "--quiet"]) == 0
    assert (run / AGENT_FILE).exists() and (run / "system1" / "tensorboard").is_dir()
    out = tmp_path / "eval"
    code = main(
        ["eval", "--agent", str(run), "--task", "pick-place", "--episodes", "2", "--seed", "0"]
        + ["--out", str(out), "--video", "1", "--no-world-model", "--set", "max_steps=8", "--quiet"]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("success_rate", "ci95", "episodes", "mean_chain_length", "latency_ms"):
        assert key in metrics
    assert metrics["episodes"] == 2 and metrics["latency_ms"]["system2_mean"] > 0
    assert len(list((out / "videos").glob("*.mp4"))) == 1
    assert "System 1" in capsys.readouterr().out
    assert (
        main(["eval", "--agent", str(run), "--task", "sort", "--episodes", "1", "--out", str(out)])
        == 2
    )
    assert "trained on tasks ['pick-place'], not 'sort'" in capsys.readouterr().err


def test_bench_agents_has_four_rows_and_held_out_language(demos, tmp_path):
    from embodied.bench.agents import bench_agents, format_table

    results = bench_agents(
        [demos], tmp_path / "bench", seeds=(0,), heads=("discrete",), episodes=1,
        preset="debug", num_envs=1, progress=False,
    )  # fmt: skip
    table = results["summary"]["table"]
    for row in ("end-to-end-discrete", "hierarchical-discrete", "hierarchical-discrete-oracle"):
        assert "pick-place" in table[row]
    assert "pick-place" in table["bc-pixels"]
    for row in ("hierarchical-discrete-unseen-paraphrase", "bc-pixels-unseen-composition"):
        assert "pick-place" in table[row]
    runs = results["runs"]
    assert (
        runs["bc-pixels-s0"]["updates"]["policy"] > 0 and runs["bc-pixels-s0"]["train_seconds"] > 0
    )
    assert "system1_chunk_ms_median" in results["latency"]["hierarchical-discrete"]
    assert "| hierarchical-discrete-oracle |" in format_table(results)
    again = bench_agents(
        [demos],
        tmp_path / "bench",
        seeds=(0,),
        heads=("discrete",),
        episodes=1,
        preset="debug",
        num_envs=1,
        progress=False,
    )  # fmt: skip  (resumes: nothing is trained or evaluated twice)
    assert again["runs"] == results["runs"]
