"""The one evaluation harness."""

import json

import numpy as np
import pytest

from embodied.agent import ExpertAgent
from embodied.evaluation import harness as evaluation
from embodied.evaluation.harness import evaluate, expert_factory, wilson_interval, write_metrics
from envs.base import ManipulationEnv


class Still:
    """An agent that never moves: a floor for success."""

    subtask = "none"

    def reset(self, instruction: str) -> None:
        self.instruction = instruction

    def act(self, obs):
        return np.zeros(5, dtype=np.float32)


class Chaser:
    """A deterministic proportional controller on state observations: it heads for one of the
    two reach markers, chosen from the observation, so some episodes succeed and some do not."""

    subtask = "chase"

    def reset(self, instruction: str) -> None:
        self.target = None

    def act(self, obs):
        state = obs["object_state"]
        if self.target is None:  # target0 (the named one) or target1, by the first marker's side
            self.target = state[0:3] if state[1] > 0 else state[9:12]
        delta = (self.target - obs["proprio"][0:3]) * 20.0
        return np.clip(np.concatenate([delta, [0.0, -1.0]]), -1.0, 1.0)


class TwoSystems(Still):
    """A fake hierarchical agent: System 1 every step (1 ms), System 2 every 5th step (10 ms)."""

    def reset(self, instruction: str) -> None:
        self.steps = 0
        self.timings = {"system1": [], "system2": []}

    def act(self, obs):
        if self.steps % 5 == 0:
            self.timings["system2"].append(10.0)
        self.timings["system1"].append(1.0)
        self.steps += 1
        return super().act(obs)

    def pop_timings(self):
        out, self.timings = self.timings, {"system1": [], "system2": []}
        return out


def comparable(result):
    """The result without what depends on wall time or on how it was run."""
    return {
        k: v
        for k, v in result.to_dict().items()
        if k not in ("latency_ms", "seconds", "num_envs", "videos")
    }


def test_same_seeds_for_every_agent_and_success_ordering():
    expert = evaluate(lambda env, s: ExpertAgent(env, seed=s), "push", 3, seed=10, obs_mode="state")
    still = evaluate(lambda env, s: Still(), "push", 3, seed=10, obs_mode="state", max_steps=20)
    assert expert.seeds == still.seeds == [10, 11, 12]
    assert expert.success_rate == 1.0 and still.success_rate == 0.0
    assert still.failed_seeds == [10, 11, 12] and still.mean_length == 20
    # latency is measured and reported; how it compares to itself depends on the machine's load
    # (one stalled step can lift the mean above the 95th percentile), so only its presence is checked
    assert all(np.isfinite(v) and v > 0 for v in expert.latency_ms.values())


def test_episodes_that_start_as_a_success_are_skipped(monkeypatch):
    original = ManipulationEnv._check_success

    def already_done_for_seed_4(self):
        return (self._seed == 4 and self._step_count == 0) or original(self)

    monkeypatch.setattr(ManipulationEnv, "_check_success", already_done_for_seed_4)
    result = evaluate(lambda env, s: ExpertAgent(env, seed=s), "reach", 2, seed=4, obs_mode="state")
    assert result.skipped_seeds == [4] and result.seeds == [5, 6]


def test_vector_path_matches_serial_with_video_episodes_in_process(tmp_path):
    kwargs = {"obs_mode": "state", "max_steps": 25}
    serial = evaluate(lambda env, s: Chaser(), "reach", 5, seed=0, **kwargs)
    made_with = []

    def make(env, s):
        made_with.append((s, env is None))
        return Chaser()

    vector = evaluate(
        make,
        "reach",
        5,
        seed=0,
        num_envs=2,
        video_episodes=1,
        video_dir=tmp_path,
        video_size=48,
        **kwargs,
    )
    assert comparable(vector) == comparable(serial)
    assert vector.seeds == [0, 1, 2, 3, 4] and 0 < vector.success_rate < 1
    assert made_with[0] == (0, False) and all(none for _, none in made_with[1:])
    assert sorted(s for s, _ in made_with) == [0, 1, 2, 3, 4]
    assert vector.num_envs == 2 and [p.endswith("reach-seed0.mp4") for p in vector.videos] == [True]


def test_vector_path_skips_the_same_seeds(monkeypatch):
    original = ManipulationEnv._check_success

    def already_done_for_seeds_4_and_6(self):
        return (self._seed in (4, 6) and self._step_count == 0) or original(self)

    monkeypatch.setattr(ManipulationEnv, "_check_success", already_done_for_seeds_4_and_6)
    monkeypatch.setattr(evaluation, "MP_CONTEXT", "fork")  # workers inherit the patch
    kwargs = {"obs_mode": "state", "max_steps": 15}
    serial = evaluate(lambda env, s: Chaser(), "reach", 3, seed=4, **kwargs)
    vector = evaluate(lambda env, s: Chaser(), "reach", 3, seed=4, num_envs=2, **kwargs)
    assert vector.skipped_seeds == serial.skipped_seeds == [4, 6]
    assert vector.seeds == serial.seeds == [5, 7, 8]
    assert comparable(vector) == comparable(serial)


@pytest.mark.parametrize("num_envs", [1, 2])
def test_agent_timings_are_reported_per_part(num_envs):
    result = evaluate(
        lambda env, s: TwoSystems(),
        "reach",
        2,
        num_envs=num_envs,
        obs_mode="state",
        max_steps=10,
    )
    latency = result.latency_ms
    assert latency["system1_mean"] == latency["system1_p95"] == 1.0
    assert latency["system2_mean"] == latency["system2_p95"] == 10.0
    assert latency["system1_calls_per_episode"] == 10 and latency["system2_calls_per_episode"] == 2
    plain = evaluate(lambda env, s: Still(), "reach", 1, obs_mode="state", max_steps=2)
    assert latency["act_mean"] > 0 and set(plain.latency_ms) == {"act_mean", "act_p95"}


def test_metrics_json(tmp_path):
    result = evaluate(lambda env, s: Still(), "reach", 2, seed=3, obs_mode="state", max_steps=3)
    metrics = json.loads(write_metrics(result, tmp_path).read_text())
    for key in ("success_rate", "ci95", "episodes", "seeds", "mean_chain_length", "latency_ms"):
        assert key in metrics
    assert metrics["num_envs"] == 1 and metrics["seeds"] == [3, 4]
    assert [e["length"] for e in metrics["per_episode"]] == [3, 3]


def test_wilson_interval():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.404, abs=1e-3) and hi == pytest.approx(0.596, abs=1e-3)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 10)[0] == 0.0


def test_bad_requests():
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        evaluate(lambda env, s: Still(), "reach", 0)
    with pytest.raises(ValueError, match="needs a video_dir"):
        evaluate(lambda env, s: Still(), "reach", 1, video_episodes=1)
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
            evaluate(lambda env, s: Still(), "reach", 1, num_envs=bad)
    with pytest.raises(ValueError, match="reads the in-process env.*num_envs=1"):
        evaluate(expert_factory(), "reach", 1, num_envs=2)
