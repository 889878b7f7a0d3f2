"""The hand as a reference mark (policies.hand_reference): the correction's geometry, the
per-episode cameras its labels come from, and an agent trained with it."""

import numpy as np
import pytest

import envs
from embodied.data.collect import collect
from embodied.data.dataset import EpisodeDataset
from embodied.saved_agents import load_bundle
from embodied.training.keypoints import episode_rigs
from policies.bc_config import bc_preset
from policies.hand_reference import (
    FAR,
    NEAR,
    SMOOTHING,
    HandReference,
    hand_offsets,
    reference_weight,
)
from policies.perception_geometry import camera_poses, camera_rig, project, rays
from tests.conftest import train_debug_variant

CAMERAS = ("front", "wrist")


def _on_height(u, v, pos, rot, fovy, z):
    d = rays(np.array([[u]]), np.array([[v]]), pos, rot, fovy, 64)[0, 0]
    return pos[0] + (z - pos[0, 2]) / d[2] * d


def test_the_weight_is_whole_near_the_hand_and_none_far_from_it():
    proprio = np.zeros((1, 19))
    points = np.array([[[0.0, 0.0, NEAR], [0.0, 0.1, 0.0], [FAR, 0.0, 0.0], [0.5, 0.0, 0.0]]])
    np.testing.assert_allclose(reference_weight(points, proprio), [[1.0, 0.5, 0.0, 0.0]])


def test_the_reference_averages_each_cameras_offsets_over_the_frames_it_saw_the_hand():
    reference = HandReference()
    offsets = np.array([[[2.0, 0.0], [4.0, 0.0], [9.0, 9.0]], [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]])
    valid = np.array([[True, True, False], [False, True, True]])
    out = reference.update(offsets, valid)
    np.testing.assert_allclose(out[0], [[2, 0], [3, 0], [3, 0]])  # a mean; frame 3 unseen
    np.testing.assert_allclose(out[1], [[0, 0], [1, 1], [1, 1]])  # nothing until seen
    for _ in range(10):  # then an exponential average: a new offset weighs SMOOTHING
        reference.update(offsets[:, :1], np.ones((2, 1), bool))
    before = reference.offsets.copy()
    after = reference.update(np.full((2, 1, 2), 10.0), np.ones((2, 1), bool))[:, 0]
    np.testing.assert_allclose(after, before + SMOOTHING * (10.0 - before))


def test_the_hands_offset_cancels_a_zoomed_and_moved_camera_near_the_hand():
    """Exact pixels in a perturbed camera, read through the nominal one: a cube by the hand is
    off by about a centimetre; with the hand's offset subtracted, by under a millimetre."""
    env = envs.make("pick-place", obs_mode="state")
    try:
        env.reset(seed=0)
        nominal = camera_rig(env, CAMERAS)
        obs, _ = env.reset(seed=4, options={"factors": {"camera_fov": 0.5, "camera_pose": 0.5}})
        actual = camera_rig(env, CAMERAS)
        cube = obs["object_state"][:3].astype(np.float64)
        hand = cube + np.array([0.01, -0.005, 0.01])  # the hand closing on the cube
        proprio = obs["proprio"][None].astype(np.float64).copy()
        proprio[0, :3] = hand
        for c in range(len(CAMERAS)):
            pa, ra = camera_poses(actual[c], proprio)
            pn, rn = camera_poses(nominal[c], proprio)
            u, v, _ = project(np.stack([cube, hand])[None], pa, ra, actual[c, 13], 64)
            raw = _on_height(u[0, 0], v[0, 0], pn, rn, nominal[c, 13], cube[2])
            offset = hand_offsets(
                np.ones((1, 1)), u[None, :, 1], v[None, :, 1], nominal[c : c + 1], proprio, 64
            )[0][0, 0]
            fixed = _on_height(u[0, 0] - offset[0], v[0, 0] - offset[1], pn, rn, nominal[c, 13], cube[2])  # fmt: skip
            assert np.linalg.norm(raw - cube) > 0.004, CAMERAS[c]
            assert np.linalg.norm(fixed - cube) < 0.3 * np.linalg.norm(raw - cube), CAMERAS[c]
        unseen, valid = hand_offsets(-np.ones((1, 1)), u[None, :, 1], v[None, :, 1], nominal[:1], proprio, 64)  # fmt: skip
        assert not unseen.any() and not valid.any()  # a camera not seeing the hand corrects nothing
    finally:
        env.close()


@pytest.fixture(scope="module")
def randomized_demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos") / "pick-place-visual-dr"
    collect("pick-place", 3, root, seed=200, noise=0.1, progress=False, image_size=32,
            randomize=("visual",), randomize_magnitude=0.45)  # fmt: skip
    return root


def test_episode_rigs_replay_each_episodes_own_cameras(randomized_demos):
    dataset = EpisodeDataset(randomized_demos)
    env = envs.make("pick-place", obs_mode="state")
    try:
        env.reset(seed=0)
        nominal = camera_rig(env, CAMERAS)
        rigs = episode_rigs([dataset], [(0, e) for e in range(len(dataset))], CAMERAS, nominal)
        for e in range(len(dataset)):
            meta = dataset.meta_of(e)
            env.reset(seed=meta["seed"], options={"factors": meta["factors"]})
            np.testing.assert_allclose(rigs[e], camera_rig(env, CAMERAS))
            moved = meta["factors"].get("camera_fov", 0) or meta["factors"].get("camera_pose", 0)
            assert bool(moved) == (not np.allclose(rigs[e], nominal))
    finally:
        env.close()


def test_a_hand_referenced_agent_trains_finds_the_hand_and_reloads_to_the_same_actions(
    randomized_demos, tmp_path, monkeypatch
):
    out = tmp_path / "kp-hand"
    report = train_debug_variant(
        "bc-keypoints", randomized_demos, out, monkeypatch, hand_reference=True
    )
    assert "val_front_hand_heatmap_ce" in report["rounds"][0]["final"]
    assert bc_preset("bc-keypoints", "hand-reference").hand_reference
    env = envs.make("pick-place", cameras=CAMERAS, image_size=32)
    try:
        obs, info = env.reset(seed=9, options={"factors": {"camera_fov": 0.5}})
        actions = []
        for _ in range(2):  # two loads of the checkpoint act alike
            agent = load_bundle(out).make(task="pick-place")
            agent.reset(info["instruction"])
            assert agent.policy.perception.hand_reference
            actions.append(agent.act({k: v for k, v in obs.items() if k != "object_state"}))
        np.testing.assert_array_equal(*actions)
        assert np.isfinite(actions[0]).all()
    finally:
        env.close()
