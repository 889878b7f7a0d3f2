"""LeRobotDataset v3.0 export and import: layout, round trips on collected episodes, errors."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import embodied.data.lerobot as lerobot_module
from embodied.data.collect import collect
from embodied.data.dataset import DatasetError, EpisodeDataset, episode_path
from embodied.data.lerobot import export_lerobot, import_lerobot
from embodied.media.video import read_video

CAMERAS = ["observation.images.front", "observation.images.wrist"]


@pytest.fixture(scope="module")
def pixels(tmp_path_factory):
    """Three pick-place episodes with two 32 px cameras, exported with two episodes per file."""
    root = tmp_path_factory.mktemp("lerobot_pixels")
    collect("pick-place", 3, root / "data", seed=100, noise=0.1, progress=False, image_size=32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lerobot_module, "FRAMES_PER_FILE", 70)  # episodes last 31 to 34 steps
        summary = export_lerobot(root / "data", root / "export")
    return root, summary


@pytest.fixture(scope="module")
def state_only(tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot_state")
    collect("stack", 2, root / "data", seed=7, noise=0.05, progress=False, obs_mode="state")
    return root, export_lerobot(root / "data", root / "export", repo_id="me/stack")


def _assert_round_trip(original, back):
    a, b = EpisodeDataset(original), EpisodeDataset(back)
    assert a.meta == b.meta and len(a) == len(b)
    assert json.loads((original / "summary.json").read_text()) == json.loads(
        (back / "summary.json").read_text()
    )
    for x, y in zip(a, b, strict=True):
        assert x.meta == y.meta and sorted(x.steps) == sorted(y.steps)
        for key, value in x.steps.items():
            assert y.steps[key].dtype == value.dtype, key
            np.testing.assert_array_equal(y.steps[key], value, err_msg=key)
        for key, value in x.obs.items():
            assert y.obs[key].dtype == value.dtype and y.obs[key].shape == value.shape, key
            if key.startswith("image_"):  # mp4: near-lossless; the final frame is stored raw
                error = np.abs(y.obs[key].astype(np.int16) - value)
                assert error.mean() < 1.0 and error.max() <= 8, (key, error.mean(), error.max())
                np.testing.assert_array_equal(y.obs[key][-1], value[-1])
            else:
                np.testing.assert_array_equal(y.obs[key], value, err_msg=key)


def test_round_trip_pixels(pixels, tmp_path):
    root, _ = pixels
    summary = import_lerobot(root / "export", tmp_path / "back")
    assert summary["episodes"] == 3
    _assert_round_trip(root / "data", tmp_path / "back")


def test_round_trip_state_only(state_only, tmp_path):
    root, summary = state_only
    assert summary["repo_id"] == "me/stack"
    assert not (root / "export" / "videos").exists()
    import_lerobot(root / "export", tmp_path / "back")
    _assert_round_trip(root / "data", tmp_path / "back")


def test_info_json(pixels, state_only):
    (root, summary), (state_root, _) = pixels, state_only
    episodes = EpisodeDataset(root / "data")
    info = json.loads((root / "export/meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 20 == summary["fps"]
    assert info["total_episodes"] == 3 and info["total_frames"] == sum(map(len, episodes))
    assert info["total_tasks"] == len({ep.instruction for ep in episodes}) == summary["tasks"]
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == (
        "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    )
    features = info["features"]
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert features[name]["shape"] == [1]
    assert features["observation.state"]["shape"] == [19]
    assert len(features["observation.state"]["names"]) == 19
    assert features["action"] == {
        "dtype": "float32",
        "shape": [5],
        "names": ["dx", "dy", "dz", "dyaw", "gripper"],
    }
    assert {"observation.environment_state", "next.reward", "next.done"} <= set(features)
    for camera in CAMERAS:
        assert features[camera]["dtype"] == "video" and features[camera]["shape"] == [32, 32, 3]
        assert features[camera]["names"] == ["height", "width", "channels"]
        assert features[camera]["info"]["video.fps"] == 20
    state_info = json.loads((state_root / "export/meta/info.json").read_text())
    assert state_info["video_path"] is None
    assert not any(f["dtype"] == "video" for f in state_info["features"].values())


def test_parquet_files_readable(pixels):
    root, _ = pixels
    export = root / "export"
    info = json.loads((export / "meta/info.json").read_text())
    files = sorted((export / "data").glob("chunk-*/file-*.parquet"))
    assert [f.name for f in files] == ["file-000.parquet", "file-001.parquet"]
    data = pa.concat_tables([pq.read_table(f) for f in files])
    assert data.num_rows == info["total_frames"]
    non_video = {k for k, f in info["features"].items() if f["dtype"] != "video"}
    assert set(data.column_names) == non_video
    assert data["index"].to_pylist() == list(range(info["total_frames"]))
    episodes = pq.read_table(export / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["episode_index"] for e in episodes] == [0, 1, 2]
    for ep in episodes:
        rows = data.filter(pa.compute.equal(data["episode_index"], ep["episode_index"]))
        assert rows.num_rows == ep["length"] == ep["dataset_to_index"] - ep["dataset_from_index"]
        assert rows["frame_index"].to_pylist() == list(range(ep["length"]))
        np.testing.assert_allclose(rows["timestamp"].to_numpy(), np.arange(ep["length"]) / 20)
    tasks = pq.read_table(export / "meta/tasks.parquet").to_pydict()
    assert tasks["task"] == list(dict.fromkeys(e["tasks"][0] for e in episodes))
    assert tasks["task_index"] == list(range(info["total_tasks"]))
    stats = json.loads((export / "meta/stats.json").read_text())
    assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert len(stats["action"]["std"]) == 5 and stats["index"]["count"] == [info["total_frames"]]


def test_videos_decodable_with_the_right_frame_counts(pixels):
    root, _ = pixels
    episodes = pq.read_table(root / "export/meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert any(e[f"videos/{CAMERAS[0]}/from_timestamp"] > 0 for e in episodes)  # shared files
    for camera in CAMERAS:
        for number in (0, 1):
            frames = read_video(root / f"export/videos/{camera}/chunk-000/file-{number:03d}.mp4")
            in_file = [e for e in episodes if e[f"videos/{camera}/file_index"] == number]
            assert frames.shape == (sum(e["length"] for e in in_file), 32, 32, 3)
            assert in_file[-1][f"videos/{camera}/to_timestamp"] == pytest.approx(len(frames) / 20)


def test_export_errors(pixels, tmp_path):
    root, _ = pixels
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(DatasetError, match="already exists"):
        export_lerobot(root / "data", tmp_path / "full")
    (tmp_path / "empty").mkdir()
    shutil.copy(root / "data/meta.json", tmp_path / "empty/meta.json")
    with pytest.raises(DatasetError, match="no episodes"):
        export_lerobot(tmp_path / "empty", tmp_path / "out")
    shutil.copytree(root / "data", tmp_path / "corrupt")
    episode_path(tmp_path / "corrupt", 1).write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="corrupt"):
        export_lerobot(tmp_path / "corrupt", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written is left behind


def test_import_errors(state_only, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(state_only[0] / "export", export)
    with pytest.raises(DatasetError, match="already exists"):
        import_lerobot(export, state_only[0] / "data")
    info = json.loads((export / "meta/info.json").read_text())
    (export / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match=r"codebase_version 'v2.1'.*'v3.0'"):
        import_lerobot(export, tmp_path / "out")
    (export / "meta/info.json").write_text(json.dumps(info))
    (export / "data/chunk-000/file-000.parquet").unlink()
    with pytest.raises(DatasetError, match="file-000.parquet: file is missing"):
        import_lerobot(export, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    episodes_file = export / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(episodes_file)
    pq.write_table(table.slice(0, 0), episodes_file)
    with pytest.raises(DatasetError, match="no episodes"):
        import_lerobot(export, tmp_path / "out")
    episodes_file.unlink()
    with pytest.raises(DatasetError, match="no parquet files under meta/episodes"):
        import_lerobot(export, tmp_path / "out")
    with pytest.raises(DatasetError, match="not a LeRobot dataset"):
        import_lerobot(tmp_path, tmp_path / "out")
    (export / "meta/wm_sandbox.json").unlink()
    with pytest.raises(DatasetError, match="only LeRobot datasets exported by wm-sandbox"):
        import_lerobot(export, tmp_path / "out")


def _lerobot_dataset_class():
    try:  # lerobot cannot be installed beside torch==2.13.0 (see docs/DATASETS.md)
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except Exception as exc:  # noqa: BLE001 (a broken torchvision raises RuntimeError)
        pytest.skip(f"lerobot is not importable here ({type(exc).__name__})")
    return LeRobotDataset


def test_lerobot_loads_the_export(pixels):
    dataset_class = _lerobot_dataset_class()
    root, summary = pixels
    dataset = dataset_class(summary["repo_id"], root=root / "export")
    source = EpisodeDataset(root / "data")
    assert len(dataset) == sum(map(len, source)) and dataset.num_episodes == 3
    first = len(source[0])
    item = dataset[first + 2]  # episode 1, step 2: in the middle of the first video file
    episode = source[1]
    assert item["task"] == episode.instruction
    np.testing.assert_array_equal(item["observation.state"].numpy(), episode.obs["proprio"][2])
    np.testing.assert_array_equal(item["action"].numpy(), episode.steps["action"][2])
    image = item["observation.images.front"].permute(1, 2, 0).numpy() * 255
    assert np.abs(image - episode.obs["image_front"][2]).mean() < 1.0


def test_cli_exports_and_imports(tmp_path, capsys):
    from embodied.cli import main

    data = tmp_path / "d"
    collect("reach", 2, data, seed=100, noise=0.1, progress=False, obs_mode="state")
    assert (
        main(["export", "--data", str(data), "--format", "lerobot", "--out", str(tmp_path / "lr")])
        == 0
    )
    assert (
        main(
            [
                "import",
                "--data",
                str(tmp_path / "lr"),
                "--format",
                "lerobot",
                "--out",
                str(tmp_path / "back"),
            ]
        )
        == 0
    )
    back = EpisodeDataset(tmp_path / "back")
    assert len(back) == 2
    np.testing.assert_array_equal(back[1].steps["action"], EpisodeDataset(data)[1].steps["action"])
    assert (
        main(["export", "--data", str(data), "--format", "lerobot", "--out", str(tmp_path / "lr")])
        == 2
    )
    assert "output already exists" in capsys.readouterr().err
