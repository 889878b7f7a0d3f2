"""The System 2 rules every parsed-language hierarchical agent shares (advance, step back, give
up, deliberate, the oracle), with fakes; the chunk queue; the registries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embodied.evaluation.harness import evaluate
from envs.language import SUBTASK_VOCAB
from envs.task_features import subtasks_named_by
from policies.bundles import AGENTS
from policies.chunking import ActionChunkQueue
from policies.config import POLICIES
from policies.two_systems import HierarchicalAgent, PlanRules, PlanView


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_registries_list_every_policy_and_agent():
    assert POLICIES.names() == [
        "bc-keypoints",
        "bc-pixels",
        "bc-state",
        "end-to-end",
        "hierarchical",
        "hierarchical-keypoints",
    ]
    assert AGENTS.names() == [
        "bc-keypoints",
        "bc-pixels",
        "bc-state",
        "dream",
        "end-to-end",
        "hierarchical",
        "hierarchical-keypoints",
        "residual",
        "rl",
    ]
    with pytest.raises(KeyError, match="known agents: bc-keypoints, bc-pixels, bc-state, dream"):
        AGENTS.get("telepathic")


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

    def assess(self, obs, index):
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

    def reset(self, text: str) -> None:
        self.texts = [text]

    def set_text(self, text: str) -> None:
        if not self.texts or self.texts[-1] != text:
            self.texts.append(text)

    def act(self, obs):
        self.acts += 1
        return np.zeros(5, np.float32)


class ParsedHierarchical(HierarchicalAgent):
    """The System 2 rules over a planner that reads the instruction through the parser."""

    def _prepare(self, instruction: str) -> None:
        self._allowed = subtasks_named_by(instruction, self.subtasks)

    def _assess(self, obs):
        return self.planner.assess(obs, self.index)

    def _imagined_progress(self, candidates):
        return self.check.progress(candidates)


def _hierarchical(config: PlanRules, check=None, planner=None):
    planner, system1 = planner or FakePlanner(), FakeSystem1()
    agent = ParsedHierarchical(planner, system1, SUBTASK_VOCAB, config, check)
    agent.reset(INSTRUCTION)
    return agent, planner, system1


def test_system2_runs_every_n_steps_and_advances_on_completion():
    config = PlanRules(decide_every=4, patience=100)
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
    config = PlanRules(decide_every=1, patience=100, step_back_after=3)
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


def test_system2_replans_when_a_subtask_does_not_progress():
    config = PlanRules(decide_every=2, patience=6)
    agent, _planner, _ = _hierarchical(config)
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

        def progress(self, candidates):
            FavourRunnerUp.calls += 1
            assert len(candidates) == 3
            return np.array([0.0, 1.0, 0.0])  # the second candidate makes progress

    config = PlanRules(decide_every=2, patience=100, wm_weight=2.0)
    agent, planner, _ = _hierarchical(config, check=FavourRunnerUp())
    obs = {"proprio": np.zeros(19, np.float32)}
    for _ in range(8):
        agent.act(obs)
    assert planner.calls == 4 and FavourRunnerUp.calls == 1 and agent.calls["imagined"] == 1
    assert agent.subtask == SUBTASK_VOCAB[NAMED[1]]  # log p -1 + 2 * 1 beats 0 + 0


def test_system2_proposes_only_subtasks_about_what_the_instruction_names():
    class PrefersAbsentCube(FakePlanner):
        def assess(self, obs, index):
            view = super().assess(obs, index)
            view.log_probs[:, SUBTASK_VOCAB.index("pick(green_cube)")] = 5.0  # green is a pad
            return view

    config = PlanRules(decide_every=2, patience=100)
    agent, _, _ = _hierarchical(config, planner=PrefersAbsentCube())
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
    from policies.two_systems import OracleHierarchicalAgent

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


@pytest.mark.parametrize(
    ("option", "date"),
    [("weighted_rays", "removed 2026-12-07"), ("hand_reference", "retired 2026-12-08")],
)
def test_a_retired_option_loads_at_its_default_and_is_refused_otherwise(option, date):
    from policies.bc_config import BCKeypointsConfig, HierarchicalKeypointsConfig

    for config in (BCKeypointsConfig, HierarchicalKeypointsConfig):
        stored = config().to_dict()
        assert option not in stored
        assert config.from_dict(stored | {option: False}) == config()
        with pytest.raises(ValueError, match=f"option '{option}', {date}"):
            config.from_dict(stored | {option: True})


def test_a_checkpoint_saved_with_the_retired_hand_reference_off_acts_as_before(tmp_path):
    """A bc-keypoints checkpoint written while ``hand_reference`` existed (its config holds
    ``hand_reference: false``) loads and acts as the same agent without the key; one trained with
    the hand reference on is refused, naming the option."""
    import envs
    from embodied.demo import SHIPPED_AGENTS
    from policies.bundles import env_overrides, load_agent
    from policies.two_systems import KIND
    from world_models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    shipped = SHIPPED_AGENTS / "bc-keypoints-pick-place" / "agent.pt"
    record = load_checkpoint(shipped, KIND)
    header = ("format_version", "kind", "code_version")  # save_checkpoint writes them again
    payload = {k: v for k, v in record.items() if k not in header}
    for value in (False, True):
        config = {**record["config"], "hand_reference": value}
        save_checkpoint(tmp_path / f"{value}.pt", KIND, payload | {"config": config})
    with pytest.raises(CheckpointError, match="option 'hand_reference', retired 2026-12-08"):
        load_agent(tmp_path / "True.pt")
    actions = []
    for path in (shipped, tmp_path / "False.pt"):
        bundle = load_agent(path)
        env = envs.make("pick-place", **env_overrides(bundle))
        try:
            obs, info = env.reset(seed=3)
            agent = bundle.make(task="pick-place")
            agent.reset(info["instruction"])
            rows = []
            for _ in range(3):
                rows.append(agent.act(obs))
                obs, *_ = env.step(rows[-1])
            actions.append(np.stack(rows))
        finally:
            env.close()
    np.testing.assert_array_equal(*actions)
