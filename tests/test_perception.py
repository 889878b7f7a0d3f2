"""Object perception (policies.perception) and the bc-keypoints agent: the cameras' geometry is
right, the labels round-trip into the state policy's features, triangulation recovers a point,
the heatmaps learn, and the agent acts from pixels without reading the object state."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import envs
from embodied.data.collect import collect
from embodied.evaluation.harness import evaluate
from embodied.saved_agents import agent_factory_from_run, load_bundle
from embodied.training import keypoints
from embodied.training.baselines import load_demos, open_datasets, train_bc
from envs.task_features import TaskFeatures
from policies.bc_config import bc_preset
from policies.bc_keypoints import slot_identities, table_features
from policies.perception import (
    FLOATING,
    NUM_IDENTITIES,
    ObjectPerception,
    decode,
    fuse,
    identity,
    identity_table,
    object_state_from_table,
    one_per_place,
)
from policies.perception_geometry import camera_poses, camera_rig, project, rays

CAMERAS = ("front", "wrist")


@pytest.fixture(scope="module")
def keypoint_demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos") / "pick-place-pixels"
    collect("pick-place", 3, root, seed=100, noise=0.1, progress=False, image_size=32)
    return root


@pytest.fixture(scope="module")
def scene():
    env = envs.make("pick-place", cameras=CAMERAS, image_size=64)
    obs, info = env.reset(seed=3)
    for _ in range(3):  # move the hand, so the wrist camera is off its reset pose
        obs, *_ = env.step(np.array([0.5, -0.3, -0.2, 0.4, 1.0], dtype=np.float32))
    rig = camera_rig(env, CAMERAS)
    table = identity_table(obs["object_state"], tuple(o.kind for o in env.objects))[0]
    yield env, obs, info, rig, table
    env.close()


def test_each_object_projects_onto_its_own_colour(scene):
    env, obs, _, rig, _table = scene
    colours = {}
    for o in env.objects:
        geom = env.model.body_geomadr[env._body[o.name]]
        colours[o.name] = env.model.geom_rgba[geom][:3] * 255
    for c, cam in enumerate(CAMERAS):
        pos, rot = camera_poses(rig[c], obs["proprio"][None])
        image = obs[f"image_{cam}"]
        for o in env.objects:
            point = env.data.xpos[env._body[o.name]][None, None]
            u, v, depth = project(point, pos, rot, rig[c, 13], 64)
            if not (0 <= u[0, 0] < 64 and 0 <= v[0, 0] < 64) or depth[0, 0] <= 0:
                continue
            pixel = image[int(v[0, 0]), int(u[0, 0])].astype(float)
            # shading changes brightness, not the hue: compare directions in RGB
            cos = (
                pixel @ colours[o.name] / (np.linalg.norm(pixel) * np.linalg.norm(colours[o.name]))
            )
            assert cos > 0.95, (cam, o.name, pixel, colours[o.name])


def test_rays_pass_through_the_points_they_come_from(scene):
    _, obs, _, rig, table = scene
    points = table[None, table[:, 0] > 0, 1:4].astype(np.float64)
    for c in range(len(CAMERAS)):
        pos, rot = camera_poses(rig[c], obs["proprio"][None])
        u, v, _depth = project(points, pos, rot, rig[c, 13], 64)
        d = rays(u, v, pos, rot, rig[c, 13], 64)[0]
        to_points = points[0] - pos
        to_points /= np.linalg.norm(to_points, axis=-1, keepdims=True)
        np.testing.assert_allclose(d, to_points, atol=1e-9)


def test_fuse_triangulates_two_seeing_cameras_and_uses_the_height_for_one():
    target = np.array([0.1, -0.2, 0.07])
    origins = np.array([[0.5, 0.0, 0.6], [0.0, 0.0, 0.3]])
    directions = target - origins
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    shape = (2, 1, NUM_IDENTITIES)
    o = np.broadcast_to(origins[:, None, None], shape + (3,)).copy()
    d = np.broadcast_to(directions[:, None, None], shape + (3,)).copy()
    heights = np.full(shape, 0.05)
    confs = np.full(shape, 2.0)
    table = fuse(o, d, confs, heights)[0]
    np.testing.assert_allclose(
        table[:, 1:4], np.broadcast_to(target, (NUM_IDENTITIES, 3)), atol=1e-5
    )
    t = (0.05 - origins[0, 2]) / directions[0, 2]
    on_height = origins[0] + t * directions[0]
    confs[1] = -1.0  # the second camera doubts; its ray meets the first's
    table = fuse(o, d, confs, heights)[0]
    assert FLOATING.any() and not FLOATING.all() and np.allclose(table[:, 0], 2.0)
    # a floating target is triangulated; what rests on the table takes the seeing ray's height
    np.testing.assert_allclose(
        table[FLOATING, 1:4], np.broadcast_to(target, (FLOATING.sum(), 3)), atol=1e-5
    )
    np.testing.assert_allclose(
        table[~FLOATING, 1:4], np.broadcast_to(on_height, ((~FLOATING).sum(), 3)), atol=1e-5
    )
    normal = np.cross(directions[0], directions[1])
    near = target + 0.03 * normal / np.linalg.norm(normal) - origins[1]  # 3 cm from the first
    d[1] = near / np.linalg.norm(near)  # ray: near enough for a seeing camera, not a doubtful one
    table = fuse(o, d, confs, heights)[0]
    np.testing.assert_allclose(
        table[:, 1:4], np.broadcast_to(on_height, (NUM_IDENTITIES, 3)), atol=1e-5
    )
    confs[1] = 1.0
    assert np.linalg.norm(fuse(o, d, confs, heights)[0][:, 1:4] - target, axis=-1).max() < 0.02
    confs[1] = -1.0
    elsewhere = np.array([0.3, 0.2, 0.0]) - origins[1]  # a doubtful ray that misses: the height
    d[1] = elsewhere / np.linalg.norm(elsewhere)
    table = fuse(o, d, confs, heights)[0]
    np.testing.assert_allclose(
        table[:, 1:4], np.broadcast_to(on_height, (NUM_IDENTITIES, 3)), atol=1e-5
    )
    confs[:] = -1.0  # no camera sees it: the most confident camera's guess, negative logit kept
    confs[0] = -0.5
    table = fuse(o, d, confs, heights)[0]
    assert np.allclose(table[:, 0], -0.5)
    np.testing.assert_allclose(
        table[:, 1:4], np.broadcast_to(on_height, (NUM_IDENTITIES, 3)), atol=1e-5
    )


def test_grouped_cameras_give_each_cameras_own_maps_and_follow_training():
    torch.manual_seed(0)
    perception = ObjectPerception(CAMERAS, 32, 8).eval()
    images = {c: torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8) for c in CAMERAS}

    def check():
        heat, height = perception.heatmaps(images)
        assert heat.shape == (2, 3, NUM_IDENTITIES, 16, 16) and height.shape == (2, 3, 1, 16, 16)
        for c, cam in enumerate(CAMERAS):
            with torch.no_grad():
                own_heat, own_height = perception.nets[cam](images[cam])
            np.testing.assert_allclose(heat[c], own_heat.numpy(), atol=1e-5)
            np.testing.assert_allclose(height[c], own_height.numpy(), atol=1e-5)

    check()
    for optimizer in (  # the trainer's fused AdamW steps without bumping parameter versions
        torch.optim.AdamW(perception.parameters(), lr=0.01, fused=True),
        torch.optim.SGD(perception.parameters(), lr=0.5),
    ):
        perception.zero_grad()
        loss = sum(sum(o.square().mean() for o in perception.nets[c](images[c])) for c in CAMERAS)
        loss.backward()
        optimizer.step()  # the grouped weights are rebuilt from the stepped ones
        check()
    perception.load_state_dict(ObjectPerception(CAMERAS, 32, 8).state_dict())  # and after a load
    check()


def test_decode_finds_a_peak_to_a_fraction_of_a_cell():
    grid = 16
    ys, xs = np.mgrid[0:grid, 0:grid]
    heat = np.full((1, NUM_IDENTITIES, grid, grid), -20.0, dtype=np.float32)
    heat[0, 0] = -((xs - 5.3) ** 2 + (ys - 9.0) ** 2)  # a peak between cells 5 and 6
    heat[0, 1] = -((xs - 0.0) ** 2 + (ys - 15.0) ** 2)  # on the border: the window is padded
    height = np.zeros((1, 1, grid, grid), dtype=np.float32)
    height[0, 0, 9, 5] = 2.0
    conf, u, v, z = decode(heat, height)
    assert conf[0, 0] == heat[0, 0].max() and conf[0, 1] == 0.0
    assert 5.0 < (u[0, 0] / 2 - 0.5) < 6.0 and abs(v[0, 0] / 2 - 0.5 - 9.0) < 1e-6
    assert u[0, 1] / 2 - 0.5 > -0.5 and v[0, 1] / 2 - 0.5 < 15.5
    assert z[0, 0] == pytest.approx(0.1)
    # a batch decodes each frame as alone: its own maps, its own height map
    rng = np.random.default_rng(0)
    other = (
        rng.normal(size=heat.shape).astype(np.float32),
        rng.normal(size=height.shape).astype(np.float32),
    )
    both = decode(np.concatenate([other[0], heat]), np.concatenate([other[1], height]))
    for alone, pair in zip(
        (*decode(*other), conf, u, v, z), (*(a[:1] for a in both), *(a[1:] for a in both))
    ):
        np.testing.assert_array_equal(alone, pair)


def test_one_object_per_place_among_identities_of_one_kind():
    conf = np.full((1, NUM_IDENTITIES), -3.0)
    u = np.arange(NUM_IDENTITIES, dtype=np.float64)[None] * 10.0
    v = np.zeros((1, NUM_IDENTITIES))
    blue, purple, red_pad = (
        identity("blue", "cube"),
        identity("purple", "cube"),
        identity("red", "pad"),
    )
    conf[0, blue], conf[0, purple], conf[0, red_pad] = 0.5, 2.0, 1.0
    u[0, blue] = u[0, purple] + 1.0  # the blue cube's peak on the purple cube, 1 px away
    u[0, red_pad] = u[0, purple]  # a pad under the purple cube: another kind, left alone
    out = one_per_place(conf, u, v)
    assert out[0, blue] < 0 and out[0, purple] == 2.0 and out[0, red_pad] == 1.0
    u[0, blue] = u[0, purple] + 3.0  # apart: both seen
    assert np.array_equal(one_per_place(conf, u, v), conf)
    conf[0, purple] = -1.0  # a more confident identity that is not seen takes nothing
    u[0, blue] = u[0, purple]
    assert np.array_equal(one_per_place(conf, u, v), conf)


def test_a_table_of_identities_gives_the_same_features_as_the_object_state(scene):
    env, obs, info, _, table = scene
    kinds = tuple(o.kind for o in env.objects)
    yaw = float(np.arctan2(obs["proprio"][3], obs["proprio"][4]))
    slots = slot_identities(table, kinds, info["instruction"])
    rebuilt = object_state_from_table(table, kinds, slots, yaw)
    features = TaskFeatures(kinds)
    bound_a = features.bind(info["instruction"], obs["object_state"])
    bound_b = features.bind(info["instruction"], rebuilt)
    a = features.state_features(obs["proprio"], obs["object_state"], obs["object_state"], bound_a)
    b = features.state_features(obs["proprio"], rebuilt, rebuilt, bound_b)
    # positions, distances and destinations agree; only the cube's yaw is the hand's
    assert np.abs(a - b).max() < 1.0 and np.allclose(table[:, 0].sum(), len(kinds))
    named = [m for _, m in bound_a]
    assert [m for _, m in bound_b] == named
    for _, m in bound_a:
        i = identity(m.color, m.kind)
        assert table[i, 0] == 1.0


def test_the_slots_keep_their_objects_when_a_named_cube_is_half_hidden():
    """Two named cubes: when the hand half hides the first (its presence falls below the
    second's, still seen), its link must still read it, not the other cube."""
    kinds = ("cube", "cube", "pad", "pad")
    text = "put the red cube on the green pad, then put the blue cube on the orange pad"
    red, blue = identity("red", "cube"), identity("blue", "cube")
    green, orange = identity("green", "pad"), identity("orange", "pad")
    tables = np.zeros((2, NUM_IDENTITIES, 4), np.float32)
    for i, xyz in [(red, (0.06, -0.12, 0.02)), (blue, (-0.05, -0.15, 0.02)),
                   (green, (0.0, 0.1, 0.0)), (orange, (-0.1, 0.1, 0.0))]:  # fmt: skip
        tables[:, i] = (5.0, *xyz)
    tables[1, red, 0] = 0.5  # seen, less surely than blue
    assert list(slot_identities(tables[0], kinds, text)) == [red, blue, green, orange]
    proprio = np.zeros((2, 6), np.float32)
    proprio[:, 4] = 1.0  # hand yaw 0
    x = table_features(tables, proprio, text, kinds, "instruction")
    link0_position = slice(7 + 4, 7 + 7)  # proprio (6), progress, then link 0's position
    np.testing.assert_allclose(x[:, link0_position], tables[:, red, 1:4])
    # named objects take their slots in the order the instruction names them, however sure
    assert list(slot_identities(tables[1], kinds, text))[:2] == [red, blue]


def test_heatmap_loss_falls_when_overfitting_one_batch(keypoint_demos):
    torch.manual_seed(0)
    datasets, _ = open_datasets([keypoint_demos], "bc-keypoints")
    demos = load_demos(datasets, "bc-keypoints", [(0, e) for e in range(len(datasets[0]))])
    env = envs.make("pick-place", obs_mode="state")
    env.reset(seed=0)
    rig = camera_rig(env, CAMERAS)
    env.close()
    keypoints.label_cells(demos, rig)
    arrays = keypoints.decision_arrays("bc-keypoints", demos, demos.tables)
    config = replace(bc_preset("bc-keypoints", "debug"), width=16)
    policy = config.build(("image_front", "image_wrist"), 32)
    policy.perception.rig.copy_(torch.from_numpy(rig))
    policy.fit_normalizers(arrays)
    batch = keypoints.sampler("bc-keypoints", demos, arrays, 8, 16)(np.random.default_rng(0))
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    first = None
    for _ in range(100):
        loss, metrics = policy.loss(batch)
        first = first if first is not None else float(loss.detach())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.5 * first
    policy.eval()
    _, metrics = policy.loss(batch)
    assert metrics["position_error_cm"] >= 0 and 0 <= metrics["presence_accuracy"] <= 1


def test_bc_keypoints_trains_resumes_and_acts_without_the_object_state(keypoint_demos, tmp_path):
    out = tmp_path / "kp"
    stopped = train_bc("bc-keypoints", [keypoint_demos], out, preset="debug", progress=False,
                       tensorboard=False, stop_after=3)  # fmt: skip
    assert stopped == {"stopped_at": 3, "round": 0}
    report = train_bc("bc-keypoints", [keypoint_demos], out, preset="debug", progress=False,
                      tensorboard=False)  # fmt: skip
    assert (
        report["rounds"][0]["resumed"] and "val_position_error_cm" in report["rounds"][0]["final"]
    )
    bundle = load_bundle(out)
    assert bundle.kind == "bc-keypoints" and bundle.policy.perception.rig.abs().sum() > 0
    env = envs.make("pick-place", cameras=CAMERAS, image_size=32)
    obs, info = env.reset(seed=7)
    agent = bundle.make(task="pick-place")
    agent.reset(info["instruction"])
    blind = {k: v for k, v in obs.items() if k != "object_state"}
    action = agent.act(blind)
    assert action.shape == (5,) and np.isfinite(action).all() and abs(action[4]) == 1.0
    env.close()
    make, overrides = agent_factory_from_run(out, "pick-place")
    result = evaluate(make, "pick-place", 2, seed=0, **overrides)
    assert result.episodes == 2 and 0.0 <= result.success_rate <= 1.0


def test_bc_keypoints_reading_its_previous_action_trains_and_remembers(
    keypoint_demos, tmp_path, monkeypatch
):
    from envs.task_features import STATE_DIM
    from tests.conftest import check_remembers_previous_action, train_with_previous_action

    out = tmp_path / "kp-previous"
    bundle = train_with_previous_action("bc-keypoints", keypoint_demos, out, monkeypatch)
    assert bundle.policy.state.normalizer.mean.shape == (STATE_DIM + 5,)
    env = envs.make("pick-place", cameras=CAMERAS, image_size=32)
    obs, info = env.reset(seed=7)
    agent = bundle.make(task="pick-place")
    check_remembers_previous_action(agent, obs, info["instruction"])
    assert agent.embed(obs).shape == (bundle.policy.config.state_hidden[-1],)
    env.close()


def test_keypoint_agents_reading_their_last_steps_train_and_remember(
    keypoint_demos, tmp_path, monkeypatch
):
    from envs.task_features import STATE_DIM
    from policies.hierarchical_keypoints import SYSTEM1_DIM
    from tests.conftest import check_reads_its_last_steps, train_debug_variant

    env = envs.make("pick-place", cameras=CAMERAS, image_size=32)
    train_debug_variant("bc-keypoints", keypoint_demos, tmp_path / "e2e", monkeypatch, history=2)
    bundle = load_bundle(tmp_path / "e2e")
    assert bundle.policy.state.normalizer.mean.shape == (3 * STATE_DIM + 2 * 5,)
    check_reads_its_last_steps(bundle, env, "pick-place")
    # the hierarchical agent's System 1 reads its past steps across subtasks
    kind = "hierarchical-keypoints"
    train_debug_variant(kind, keypoint_demos, tmp_path / "hier", monkeypatch, history=2)
    bundle = load_bundle(tmp_path / "hier")
    assert bundle.policy.heads.system1.normalizer.mean.shape == (3 * SYSTEM1_DIM + 2 * 5,)
    obs, info = env.reset(seed=3)
    agent = bundle.make(task="pick-place")
    agent.reset(info["instruction"])
    system1 = agent.system1
    action = agent.act(obs)
    first = system1.embed(obs)
    np.testing.assert_array_equal(system1.previous, action)
    later, *_ = env.step(action)
    later, *_ = env.step(agent.act(later))
    assert len(system1.memory.actions) == 2 and len(system1.memory.features) == 2
    assert not np.allclose(system1.embed(later), first)
    agent.reset(info["instruction"])
    np.testing.assert_array_equal(system1.previous, 0.0)
    env.close()
