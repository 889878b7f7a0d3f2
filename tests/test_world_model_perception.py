"""The world model's objects from an agent's perception: the causal presence vote, the errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import envs
from embodied.cli import main
from embodied.data.collect import collect
from embodied.training.world_model import (
    PERCEIVED_OBJECTS,
    load_object_perception,
    perceived_objects,
    train_world_model,
)
from world_models import CheckpointError, load_world_model


class ScriptedPerception:
    """Reports fixed tables ``(T, K, 4)`` (presence logit, x, y, z), one per frame given."""

    cameras = ("front",)

    def __init__(self, tables: np.ndarray) -> None:
        self.tables = tables

    def __call__(self, images: dict[str, torch.Tensor], proprio: np.ndarray) -> np.ndarray:
        assert set(images) == {"front"} and len(proprio) == len(self.tables)
        return self.tables


def test_presence_is_a_vote_over_the_frames_so_far_and_places_are_the_last_seen():
    T = 5
    tables = np.zeros((T, 3, 4), np.float32)
    tables[:, 0] = [4.0, 0.1, 0.2, 0.0]  # seen every frame at one place
    tables[3:, 0, 0] = -1.0  # then hidden (the arm in the way): still there, where last seen
    tables[:, 1] = [-6.0, 0.3, 0.3, 0.0]  # absent ...
    tables[2, 1, 0] = 2.0  # ... but for a one-frame phantom
    tables[:, 2] = [-0.5, 0.5, 0.5, 0.0]  # never quite seen
    tables[1:, 2, 0] = 3.0  # from frame 1 on, clearly
    obs = {"image_front": np.zeros((T, 8, 8, 3), np.uint8), "proprio": np.zeros((T, 4))}
    out = perceived_objects(ScriptedPerception(tables), obs).reshape(T, 3, 4)
    assert out.shape == (T, 3, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], np.tile([1.0, 0.1, 0.2, 0.0], (T, 1)))
    np.testing.assert_array_equal(out[:, 1], 0.0)  # the phantom never outvotes five misses
    np.testing.assert_array_equal(out[0, 2], 0.0)
    np.testing.assert_allclose(out[1:, 2], np.tile([1.0, 0.5, 0.5, 0.0], (T - 1, 1)))


def test_an_object_seen_long_enough_stays_present_while_the_hand_hides_it():
    from policies.perceived_scene import PRESENCE_LATCH, PresenceVote

    T = 40
    tables = np.zeros((T, 2, 4), np.float32)
    tables[:, :, 1:] = [0.2, 0.1, 0.05]
    tables[:, 0, 0] = -4.0  # carried in a closed hand: unseen ...
    tables[:PRESENCE_LATCH, 0, 0] = 3.0  # ... after PRESENCE_LATCH frames in sight
    tables[:, 1, 0] = -0.25  # a phantom: its vote stays positive one frame short of the latch
    tables[0, 1, 0] = 0.25 * (PRESENCE_LATCH - 2) + 0.125
    obs = {"image_front": np.zeros((T, 8, 8, 3), np.uint8), "proprio": np.zeros((T, 4))}
    out = perceived_objects(ScriptedPerception(tables), obs).reshape(T, 2, 4)
    np.testing.assert_array_equal(out[:, 0, 0], 1.0)  # the vote alone lost it mid-carry
    assert out[: PRESENCE_LATCH - 1, 1, 0].all() and not out[-1, 1].any()
    live = PresenceVote()  # the runtime scene's vote, frame by frame: the same answer
    present = np.stack([live.update(table[:, 0]) for table in tables])
    np.testing.assert_array_equal(present, out[..., 0] > 0)
    with pytest.raises(RuntimeError, match="before the first update"):
        _ = PresenceVote().present


def test_perception_sources_that_are_not_keypoint_agents_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist; give a bc-keypoints"):
        load_object_perception(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=f"{PERCEIVED_OBJECTS!r} needs the agent"):
        train_world_model(  # refused before any data is read
            tmp_path / "data",
            tmp_path / "run",
            preset_name="debug",
            progress=False,
            object_slot_size=4,
            object_input_key=PERCEIVED_OBJECTS,
        )


SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "agents" / "bc-keypoints-pick-place"


def test_cli_world_model_on_a_shipped_agents_perception_trains_and_imagines(tmp_path, capsys):
    """The slots start where the shipped pick-place agent perceives the objects; the run records
    which perception, and ``imagine`` finds it there."""
    data = tmp_path / "data"
    collect("pick-place", 3, data, seed=5, noise=0.2, progress=False, max_steps=20,
            terminate_on_success=False)  # fmt: skip
    run = tmp_path / "wm"
    argv = ["train", "world-model", "--data", str(data), "--out", str(run), "--preset", "debug"]
    assert main([*argv, "--perception", str(SHIPPED), "--quiet"]) == 0
    model, record = load_world_model(run / "checkpoint.pt")
    assert model.config.object_input_key == PERCEIVED_OBJECTS
    assert record["data"]["perception"] == str(SHIPPED)
    result = json.loads((run / "eval.json").read_text())
    assert result["horizons"]["1"]["objects/model"] >= 0
    video = tmp_path / "imagined.mp4"
    argv = ["imagine", "--world-model", str(run), "--task", "pick-place", "--seed", "3"]
    assert main([*argv, "--out", str(video), "--size", "64"]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[out.rindex("\n{") + 1 :])
    errors = printed["object_error_cm_by_step"]
    # after 6 updates the dynamics drift, but one step from where perception put them is close
    assert len(errors) == printed["steps"] and errors[0] < 10.0


LAYERED = SHIPPED.parent / "hierarchical-keypoints-pick-place"


def test_distance_to_goal_reads_the_instructions_links():
    from envs.task_features import TaskFeatures
    from policies.imagined_progress import UNDONE_COST, distance_to_goal

    env = envs.make("pick-place", obs_mode="state")
    obs, info = env.reset(seed=1)
    kinds = tuple(o.kind for o in env.objects)
    features = TaskFeatures(kinds)
    object_state = obs["object_state"].copy()
    bound = features.bind(info["instruction"], object_state)
    link = features.links(bound)[0]
    cube, pad = features.slices[link.obj][1], features.slices[link.dest][1]
    hand = object_state[cube : cube + 3] + np.array([0.0, 0.0, 0.1], np.float32)
    proprio = obs["proprio"].copy()
    proprio[:3] = hand

    def distance(cube_at, hand_at):
        s, p = object_state.copy(), proprio.copy()
        s[cube : cube + 3], p[:3] = cube_at, hand_at
        x = features.state_features(p[None], s[None], object_state, bound, "instruction")
        return float(distance_to_goal(x)[0])

    start = object_state[cube : cube + 3]
    on_pad = object_state[pad : pad + 3].copy()
    on_pad[2] = start[2]
    halfway = (start + on_pad) / 2
    far = distance(start, hand)
    assert far == pytest.approx(np.linalg.norm(on_pad - start) + UNDONE_COST + 0.1, abs=0.01)
    assert distance(halfway, halfway + [0, 0, 0.02]) < far - 0.05  # carried toward the pad
    assert distance(on_pad, on_pad + [0, 0, 0.1]) < 0.01  # placed: nothing left
    assert distance(start, start + [0, 0, 0.3]) > far  # the hand moved away from the cube
    env.close()


def test_system2_thinks_with_a_world_model_of_the_perceived_objects(tmp_path):
    """A world model started from the shipped hierarchical agent's perception: its System 2
    imagines candidates when it deliberates, or chooses by imagination alone; refused for
    agents and world models that cannot."""
    from embodied.cli.common import PLANNER_CHOICES
    from embodied.evaluation.harness import evaluate
    from embodied.saved_agents import agent_factory_from_run
    from policies.two_systems import PLANNERS

    assert PLANNER_CHOICES == PLANNERS  # the CLI's choices, spelled out to keep torch out of it

    data = tmp_path / "data"
    collect("pick-place", 2, data, seed=5, noise=0.2, progress=False, max_steps=20,
            terminate_on_success=False)  # fmt: skip
    run = tmp_path / "wm"
    argv = ["train", "world-model", "--data", str(data), "--out", str(run), "--preset", "debug"]
    assert main([*argv, "--perception", str(LAYERED), "--quiet"]) == 0
    for planner in ("learned", "imagined"):
        make, overrides = agent_factory_from_run(
            LAYERED, "pick-place", planner=planner, world_model=run
        )
        result = evaluate(make, "pick-place", 1, seed=0, max_steps=24, **overrides)
        assert result.episodes == 1 and result.latency_ms["system2_mean"] > 0
    agent = make(None, 0)
    assert type(agent).__name__ == "ImaginedPlanAgent"
    rollouts = tmp_path / "rollouts"  # its own episodes, for a world model to learn from
    argv = ["collect", "--task", "pick-place", "--episodes", "1", "--seed", "3", "--out",
            str(rollouts), "--agent", str(LAYERED), "--planner", "imagined", "--world-model",
            str(run), "--set", "max_steps=12", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((rollouts / "meta.json").read_text())["source"]["planner"] == "imagined"
    assert len(np.load(rollouts / "episode_000000.npz")["action"]) == 12
    with pytest.raises(ValueError, match="needs a world model"):
        agent_factory_from_run(LAYERED, "pick-place", planner="imagined")
    with pytest.raises(ValueError, match="--world-model is for hierarchical-keypoints"):
        agent_factory_from_run(SHIPPED, "pick-place", world_model=run)
    own = tmp_path / "wm-own-slots"
    assert main(["train", "world-model", "--data", str(data), "--out", str(own), "--preset", "debug",
                 "--steps", "2", "--quiet"]) == 0  # fmt: skip
    make, _ = agent_factory_from_run(LAYERED, "pick-place", world_model=own)
    with pytest.raises(ValueError, match="cannot imagine a keypoint agent's scene"):
        make(None, 0)
