"""The one evaluation harness."""

import numpy as np
import pytest

from embodied.agent import ExpertAgent
from embodied.evaluation import evaluate, wilson_interval
from envs.base import ManipulationEnv


class Still:
    """An agent that never moves: a floor for success."""

    subtask = "none"

    def reset(self, instruction: str) -> None:
        self.instruction = instruction

    def act(self, obs):
        return np.zeros(5, dtype=np.float32)


def test_same_seeds_for_every_agent_and_success_ordering():
    expert = evaluate(lambda env, s: ExpertAgent(env, seed=s), "push", 3, seed=10, obs_mode="state")
    still = evaluate(lambda env, s: Still(), "push", 3, seed=10, obs_mode="state", max_steps=20)
    assert expert.seeds == still.seeds == [10, 11, 12]
    assert expert.success_rate == 1.0 and still.success_rate == 0.0
    assert still.failed_seeds == [10, 11, 12] and still.mean_length == 20
    assert (
        expert.latency_ms["act_mean"] > 0
        and expert.latency_ms["act_p95"] >= expert.latency_ms["act_mean"] * 0.5
    )


def test_episodes_that_start_as_a_success_are_skipped(monkeypatch):
    original = ManipulationEnv._check_success

    def already_done_for_seed_4(self):
        return (self._seed == 4 and self._step_count == 0) or original(self)

    monkeypatch.setattr(ManipulationEnv, "_check_success", already_done_for_seed_4)
    result = evaluate(lambda env, s: ExpertAgent(env, seed=s), "reach", 2, seed=4, obs_mode="state")
    assert result.skipped_seeds == [4] and result.seeds == [5, 6]


def test_wilson_interval():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.404, abs=1e-3) and hi == pytest.approx(0.596, abs=1e-3)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 10)[0] == 0.0


def test_bad_requests():
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        evaluate(lambda env, s: Still(), "reach", 0)
    with pytest.raises(ValueError, match="needs a video_dir"):
        evaluate(lambda env, s: Still(), "reach", 1, video_episodes=1)
