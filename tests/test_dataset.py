"""Crash-safe datasets: round trip, loader shapes, resume after a crash, corrupt files."""

import json
import os

import numpy as np
import pytest

import embodied.data.collect as collect_module
from embodied.data.collect import collect
from embodied.data.dataset import (
    DatasetError,
    EpisodeDataset,
    FrameStack,
    SequenceLoader,
    episode_path,
    load_episode,
    read_json,
)
from envs.language import SUBTASK_VOCAB

SMALL = {"image_size": 32, "cameras": ("front", "wrist")}


@pytest.fixture(scope="module")
def reach_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("reach")
    summary = collect("reach", 3, root, seed=5, noise=0.05, progress=False, **SMALL)
    return root, summary


def test_collect_writes_episodes_and_summary(reach_dataset):
    root, summary = reach_dataset
    assert summary["task"] == "reach" and summary["episodes"] == 3
    assert (
        json.loads((root / "summary.json").read_text())["success_rate"]
        == summary["success_rate"]
        == 1.0
    )
    ds = EpisodeDataset(root)
    assert len(ds) == 3
    ep = ds[1]
    assert ep.meta["seed"] == 6 and ep.meta["task"] == "reach" and ep.meta["env_version"]
    assert ep.instruction and ep.meta["plan"] == [
        SUBTASK_VOCAB[i] for i in ep.steps["subtask_id"][:1]
    ]
    T = len(ep)
    assert (
        ep.obs["image_front"].shape == (T + 1, 32, 32, 3)
        and ep.obs["image_front"].dtype == np.uint8
    )
    assert ep.obs["proprio"].shape == (T + 1, 19)
    assert ep.steps["action"].shape == (T, 5) and ep.steps["success"][-1]
    assert not np.array_equal(ep.steps["action"], ep.steps["expert_action"])  # noise was added


def test_read_and_length_do_not_fill_the_cache(reach_dataset):
    ds = EpisodeDataset(reach_dataset[0])
    lengths = [ds.length(i) for i in range(len(ds))]  # from the metadata alone
    episodes = [ds.read(i) for i in range(len(ds))]
    assert lengths == [len(ep) for ep in episodes] and not ds._cache
    assert [ds.meta_of(i) for i in range(len(ds))] == [ep.meta for ep in episodes]
    assert not ds._cache
    assert np.array_equal(ds.read(1).obs["image_wrist"], ds[1].obs["image_wrist"])
    pairs = [(0, 2), (0, 0)]
    frames = FrameStack([ds], pairs, ["image_front", "image_wrist"])
    for _, e in pairs:
        frames.add(ds.read(e))
    for key in ("image_front", "image_wrist"):
        whole = np.concatenate([episodes[e].obs[key] for _, e in pairs])
        assert frames.arrays[key].dtype == np.uint8 and np.array_equal(frames.arrays[key], whole)


def test_sequence_loader_shapes_and_seed(reach_dataset):
    ds = EpisodeDataset(reach_dataset[0])
    a = SequenceLoader(ds, seq_len=4, batch_size=5, seed=1).sample()
    b = SequenceLoader(ds, seq_len=4, batch_size=5, seed=1).sample()
    assert a["obs/image_wrist"].shape == (5, 5, 32, 32, 3)
    assert a["action"].shape == (5, 4, 5) and a["subtask_id"].shape == (5, 4)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    with pytest.raises(DatasetError, match="no episode has at least"):
        SequenceLoader(ds, seq_len=10_000, batch_size=2)
    with pytest.raises(DatasetError, match="no observation keys"):
        SequenceLoader(ds, seq_len=2, batch_size=2, obs_keys=["depth"])


def test_interrupted_collection_resumes_to_the_same_files(tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    collect("push", 3, reference, seed=2, noise=0.1, progress=False, obs_mode="state")

    crashed = tmp_path / "crashed"
    real_write = collect_module.write_episode
    calls = {"n": 0}

    def crash_on_second(root, index, arrays, meta):
        calls["n"] += 1
        if calls["n"] == 2:  # die half-way through writing episode 1: a temp file is left behind
            (root / f".episode_{index:06d}.npz.tmp").write_bytes(b"partial")
            raise KeyboardInterrupt
        return real_write(root, index, arrays, meta)

    monkeypatch.setattr(collect_module, "write_episode", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        collect("push", 3, crashed, seed=2, noise=0.1, progress=False, obs_mode="state")
    assert episode_path(crashed, 0).exists() and not episode_path(crashed, 1).exists()
    monkeypatch.setattr(collect_module, "write_episode", real_write)

    summary = collect("push", 3, crashed, seed=2, noise=0.1, progress=False, obs_mode="state")
    assert summary["newly_collected"] == 2
    assert not [n for n in os.listdir(crashed) if n.endswith(".npz.tmp")]
    for i in range(3):
        a, b = load_episode(episode_path(reference, i)), load_episode(episode_path(crashed, i))
        assert a.meta == b.meta
        for key in a.steps:
            np.testing.assert_array_equal(a.steps[key], b.steps[key])
        for key in a.obs:
            np.testing.assert_array_equal(a.obs[key], b.obs[key])


def test_resume_with_other_settings_is_refused(tmp_path):
    collect("reach", 1, tmp_path, seed=0, progress=False, obs_mode="state")
    with pytest.raises(DatasetError, match="noise: on disk 0.0, asked 0.2"):
        collect("reach", 2, tmp_path, seed=0, noise=0.2, progress=False, obs_mode="state")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_corrupt_episode_is_reported_by_name(tmp_path, damage):
    collect("reach", 2, tmp_path, seed=0, progress=False, obs_mode="state")
    path = episode_path(tmp_path, 1)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"not a zip file at all")
    else:  # flip bytes inside a compressed member: the CRC check must catch it
        middle = len(data) // 3
        data[middle : middle + 8] = bytes(255 - x for x in data[middle : middle + 8])
    path.write_bytes(bytes(data))
    ds = EpisodeDataset(tmp_path)
    with pytest.raises(DatasetError, match="episode_000001.npz"):
        ds[1]
    with pytest.raises(DatasetError, match="episode_000001.npz"):
        collect("reach", 2, tmp_path, seed=0, progress=False, obs_mode="state")


def test_missing_episode_is_reported(tmp_path):
    collect("reach", 3, tmp_path, seed=0, progress=False, obs_mode="state")
    episode_path(tmp_path, 1).unlink()
    with pytest.raises(DatasetError, match="episode 000001 is missing"):
        EpisodeDataset(tmp_path)


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="meta.json: missing"):
        EpisodeDataset(tmp_path)


def test_parallel_collection_matches_serial(tmp_path):
    serial = collect("reach", 4, tmp_path / "serial", seed=9, progress=False, obs_mode="state")
    parallel = collect(
        "reach", 4, tmp_path / "parallel", seed=9, workers=2, progress=False, obs_mode="state"
    )
    assert serial["success_rate"] == parallel["success_rate"]
    for i in range(4):
        a = load_episode(episode_path(tmp_path / "serial", i))
        b = load_episode(episode_path(tmp_path / "parallel", i))
        np.testing.assert_array_equal(a.steps["action"], b.steps["action"])
        np.testing.assert_array_equal(a.obs["object_state"], b.obs["object_state"])


def test_a_collection_made_with_the_retired_gripper_flips_is_not_resumed(tmp_path):
    """`collect --gripper-flip` (retired) wrote its rate to meta.json when set: such a
    collection still loads but cannot be extended; a rate of 0 is what every collection has."""
    root = tmp_path / "a"
    collect("reach", 1, root, seed=0, progress=False, obs_mode="state")
    meta = read_json(root / "meta.json")
    assert "gripper_flip" not in meta
    (root / "meta.json").write_text(json.dumps(meta | {"gripper_flip": 0.0}))
    assert collect("reach", 2, root, seed=0, progress=False, obs_mode="state")["episodes"] == 2
    (root / "meta.json").write_text(json.dumps(meta | {"gripper_flip": 0.1}))
    retired = "gripper_flip: on disk 0.1, made with collect --gripper-flip, retired 2026-12-08"
    with pytest.raises(DatasetError, match=retired):
        collect("reach", 3, root, seed=0, progress=False, obs_mode="state")
    assert len(EpisodeDataset(root)) == 2  # its episodes still load
