"""Export a dataset to the LeRobotDataset v3.0 layout, and import such an export back.

Layout written by :func:`export_lerobot` (the one ``lerobot`` v3.0 readers expect)::

    OUT/
      meta/info.json                         codebase_version "v3.0", fps, features, totals, paths
      meta/stats.json                        per feature: min, max, mean, std, count
      meta/tasks.parquet                     task (the instruction, the pandas index), task_index
      meta/episodes/chunk-000/file-000.parquet   one row per episode: episode_index, tasks,
                                             length, dataset_from/to_index, data/ and videos/
                                             chunk and file indices, video from/to_timestamp
      meta/wm_sandbox.json                   the project's meta.json and summary.json, key mapping
      data/chunk-000/file-000.parquet        one row per step, consecutive episodes per file
      videos/observation.images.<cam>/chunk-000/file-000.mp4   the same episodes, back to back

A row of ``data/`` is step ``t``: the observation before the action (``observation.*``), the
``action`` taken, and what followed it (``next.*``), plus ``timestamp``, ``frame_index``,
``episode_index``, ``index`` and ``task_index``. A project episode has ``T + 1`` observations and
``T`` steps; the final observation of each episode goes into its row of ``meta/episodes`` as raw
bytes (``wm_sandbox/final/<feature>``), with the episode's ``meta_json``, so a round trip is
lossless except for the camera frames of the first ``T`` steps, which are mp4 (H.264, yuv444p,
crf 0: mean absolute error about 0.4 of 255, at most 2). LeRobot readers ignore the extra columns
and the side file. Episodes are grouped into files of about ``FRAMES_PER_FILE`` frames.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import envs
from embodied.data.dataset import (
    META_FILE,
    OBS_PREFIX,
    SUMMARY_FILE,
    DatasetError,
    Episode,
    EpisodeDataset,
    load_episode,
    read_json,
    write_episode,
)
from embodied.media.video import read_video
from envs.base import IMAGE_PREFIX, OBJECT_STATE, PROPRIO
from sandbox_common.atomic import write_json_atomic

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
SANDBOX_PATH = "meta/wm_sandbox.json"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
CHUNKS_SIZE = 1000
FRAMES_PER_FILE = 20_000
VIDEO_PIX_FMT = "yuv444p"
VIDEO_CRF = 0
VIDEO = {"codec": "libx264", "pixelformat": VIDEO_PIX_FMT, "quality": None, "macro_block_size": 1}
VIDEO |= {"ffmpeg_log_level": "error"}
"""imageio writer options: H.264 with full-resolution colour, lossless mode (crf 0), any size."""
FINAL_PREFIX = "wm_sandbox/final/"
META_COLUMN = "wm_sandbox/meta_json"

STEP_FEATURES = {
    "action": "action",
    "expert_action": "expert_action",
    "next.reward": "reward",
    "next.reward_dense": "reward_dense",
    "next.reward_sparse": "reward_sparse",
    "next.success": "success",
    "next.terminated": "terminated",
    "next.truncated": "truncated",
    "subtask_id": "subtask_id",
    "next.subtask_index": "subtask_index",
    "next.links_completed": "links_completed",
}
"""LeRobot feature -> project step key (``next.*``: the value after the step's action)."""
ACTION_NAMES = ["dx", "dy", "dz", "dyaw", "gripper"]
STATE_NAMES = ["ee_x", "ee_y", "ee_z", "yaw_sin", "yaw_cos", "gripper", "ee_vx", "ee_vy", "ee_vz"]
STATE_NAMES += [f"joint_{i}_{kind}" for kind in ("pos", "vel") for i in range(5)]
NAMES = {"observation.state": STATE_NAMES, "action": ACTION_NAMES, "expert_action": ACTION_NAMES}


def obs_feature(key: str) -> str:
    """The LeRobot feature name of a project observation key."""
    if key.startswith(IMAGE_PREFIX):
        return "observation.images." + key[len(IMAGE_PREFIX) :]
    return {PROPRIO: "observation.state", OBJECT_STATE: "observation.environment_state"}.get(
        key, "observation." + key
    )


def _location(number: int) -> dict[str, int]:
    """Chunk and file index of the ``number``-th file of a kind."""
    return {"chunk_index": number // CHUNKS_SIZE, "file_index": number % CHUNKS_SIZE}


def _fresh_output(out: str | os.PathLike) -> Path:
    """``out`` as a path, refused when it already holds files."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        held = sorted(p.name for p in out.iterdir())[:3] if out.is_dir() else []
        raise DatasetError(
            f"{out}: output already exists and is not an empty directory {held}; "
            "choose a new directory"
        )
    return out


@contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A temp directory beside ``out`` that becomes ``out`` on success and is removed on failure."""
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _arrow(values: np.ndarray) -> pa.Array:
    """A column: scalars as they are, vectors ``(N, D)`` as fixed-size lists."""
    if values.ndim == 1:
        return pa.array(values)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _numpy(column: pa.ChunkedArray, dtype: str) -> np.ndarray:
    """The inverse of :func:`_arrow`, cast to ``dtype``."""
    array = column.combine_chunks()
    if pa.types.is_fixed_size_list(array.type) or pa.types.is_list(array.type):
        flat = array.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(array), -1).astype(dtype)
    return array.to_numpy(zero_copy_only=False).astype(dtype)


def _write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{path}: unreadable parquet file ({exc})") from None


def _episode_columns(
    episode: Episode, index: int, first: int, task_index: int, fps: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The per-step columns of one episode, and its camera frames (both without the final obs)."""
    length = len(episode)
    videos = {obs_feature(k): v[:-1] for k, v in episode.obs.items() if k.startswith(IMAGE_PREFIX)}
    columns = {
        obs_feature(k): v[:-1] for k, v in episode.obs.items() if obs_feature(k) not in videos
    }
    columns |= {name: episode.steps[key] for name, key in STEP_FEATURES.items()}
    columns["next.done"] = episode.steps["terminated"] | episode.steps["truncated"]
    columns |= {
        "timestamp": (np.arange(length) / fps).astype(np.float32),
        "frame_index": np.arange(length, dtype=np.int64),
        "episode_index": np.full(length, index, dtype=np.int64),
        "index": np.arange(first, first + length, dtype=np.int64),
        "task_index": np.full(length, task_index, dtype=np.int64),
    }
    return columns, videos


def _feature(values: np.ndarray, name: str) -> dict[str, Any]:
    """The info.json entry of a per-step column."""
    shape = [1] if values.ndim == 1 else list(values.shape[1:])
    return {"dtype": str(values.dtype), "shape": shape, "names": NAMES.get(name)}


def _video_feature(frames: np.ndarray, fps: int) -> dict[str, Any]:
    """The info.json entry of a camera, with the ``video.*`` fields lerobot reads from the file."""
    h, w, c = frames.shape[1:]
    info = {"video.height": h, "video.width": w, "video.codec": "h264", "video.fps": fps}
    info |= {"video.pix_fmt": VIDEO_PIX_FMT, "video.is_depth_map": False, "video.channels": c}
    info["has_audio"] = False
    names = ["height", "width", "channels"]
    return {"dtype": "video", "shape": [h, w, c], "names": names, "info": info}


class _Stats:
    """Running min / max / mean / std / count per feature (images per channel, scaled to [0, 1])."""

    def __init__(self) -> None:
        self.acc: dict[str, list[np.ndarray]] = {}

    def add(self, name: str, values: np.ndarray, image: bool = False) -> None:
        flat = values.reshape(-1, values.shape[-1] if image else values[0].size).astype(np.float64)
        flat = flat / 255.0 if image else flat
        parts = [flat.min(0), flat.max(0), flat.sum(0), (flat**2).sum(0), np.array(len(flat))]
        if name not in self.acc:
            self.acc[name] = parts
            return
        old = self.acc[name]
        self.acc[name] = [np.minimum(old[0], parts[0]), np.maximum(old[1], parts[1])]
        self.acc[name] += [a + b for a, b in zip(old[2:], parts[2:], strict=True)]

    def to_json(self, image_keys: list[str]) -> dict[str, dict[str, list]]:
        out = {}
        for name, (low, high, total, squares, count) in self.acc.items():
            mean = total / count
            std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
            shape = (-1, 1, 1) if name in image_keys else (-1,)
            stats = {"min": low, "max": high, "mean": mean, "std": std}
            out[name] = {k: v.reshape(shape).tolist() for k, v in stats.items()}
            out[name]["count"] = [int(count)]
        return out


class _Shard:
    """One data parquet file and one mp4 per camera, holding consecutive episodes."""

    def __init__(self, root: Path, number: int, fps: int) -> None:
        self.root, self.number, self.location, self.fps = root, number, _location(number), fps
        self.tables: list[pa.Table] = []
        self.writers: dict[str, Any] = {}
        self.frames = 0

    def add(self, columns: dict[str, np.ndarray], videos: dict[str, np.ndarray]) -> dict[str, Any]:
        """Append one episode; returns its file and timestamp columns for meta/episodes."""
        self.tables.append(pa.table({k: _arrow(v) for k, v in columns.items()}))
        length = len(columns["index"])
        row: dict[str, Any] = {f"data/{k}": v for k, v in self.location.items()}
        for key, frames in videos.items():
            writer = self.writers.get(key) or self._open(key)
            for frame in frames:
                writer.append_data(frame)
            row |= {f"videos/{key}/{k}": v for k, v in self.location.items()}
            row[f"videos/{key}/from_timestamp"] = self.frames / self.fps
            row[f"videos/{key}/to_timestamp"] = (self.frames + length) / self.fps
        self.frames += length
        return row

    def _open(self, key: str) -> Any:
        path = self.root / VIDEO_PATH.format(video_key=key, **self.location)
        path.parent.mkdir(parents=True, exist_ok=True)
        params = ["-crf", str(VIDEO_CRF), "-g", str(self.fps)]
        self.writers[key] = imageio.get_writer(path, fps=self.fps, output_params=params, **VIDEO)
        return self.writers[key]

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        if self.tables:
            _write_parquet(
                self.root / DATA_PATH.format(**self.location), pa.concat_tables(self.tables)
            )


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet as pandas writes it: ``task`` is the index, ``task_index`` a column."""
    kinds = {"task_index": ("int64", "int64"), "task": ("unicode", "object")}
    columns = [
        {"name": k, "field_name": k, "pandas_type": t, "numpy_type": n, "metadata": None}
        for k, (t, n) in kinds.items()
    ]
    pandas = {"index_columns": ["task"], "column_indexes": [], "columns": columns}
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": tasks})
    _write_parquet(path, table.replace_schema_metadata({"pandas": json.dumps(pandas)}))


def _fps(meta: dict[str, Any]) -> int:
    """The control rate of the dataset's env (one frame per step)."""
    env = envs.make(meta["task"], **{**meta["env_config"], "obs_mode": "state"})
    try:
        return int(env.metadata["render_fps"])
    finally:
        env.close()


def export_lerobot(
    data: str | os.PathLike, out: str | os.PathLike, repo_id: str | None = None
) -> dict[str, Any]:
    """Write dataset ``data`` to ``out`` as a LeRobotDataset v3.0; returns a summary.

    ``repo_id`` (default ``wm-sandbox/<task>``) is the name to give ``LeRobotDataset``; it is
    recorded in ``meta/wm_sandbox.json``. ``out`` must be new or empty; it appears only when
    complete (written beside it, then renamed).
    """
    dataset = EpisodeDataset(data)
    if not len(dataset):
        raise DatasetError(f"{dataset.root}: no episodes to export")
    out = _fresh_output(out)
    meta = dataset.meta
    repo_id = repo_id or f"wm-sandbox/{meta['task']}"
    fps = _fps(meta)
    tasks: dict[str, int] = {}
    features: dict[str, dict[str, Any]] = {}
    stats, rows, frames = _Stats(), [], 0
    with _staged(out) as root:
        shard = _Shard(root, 0, fps)
        try:
            for index, path in enumerate(dataset.paths):
                episode = load_episode(path)
                task_index = tasks.setdefault(episode.instruction, len(tasks))
                columns, videos = _episode_columns(episode, index, frames, task_index, fps)
                for name, values in videos.items():
                    features.setdefault(name, _video_feature(values, fps))
                    stats.add(name, values, image=True)
                for name, values in columns.items():
                    features.setdefault(name, _feature(values, name))
                    stats.add(name, values)
                if shard.frames and shard.frames + len(episode) > FRAMES_PER_FILE:
                    shard.close()
                    shard = _Shard(root, shard.number + 1, fps)
                rows.append(_episode_row(episode, index, frames) | shard.add(columns, videos))
                frames += len(episode)
        finally:
            shard.close()  # also stops the encoders when an episode fails
        video_keys = [k for k, f in features.items() if f["dtype"] == "video"]
        _write_parquet(root / EPISODES_PATH.format(**_location(0)), pa.Table.from_pylist(rows))
        _write_tasks(root / TASKS_PATH, list(tasks))
        write_json_atomic(root / STATS_PATH, stats.to_json(video_keys))
        info = {"codebase_version": CODEBASE_VERSION, "robot_type": "wm_sandbox_arm", "fps": fps}
        info |= {"total_episodes": len(rows), "total_frames": frames, "total_tasks": len(tasks)}
        info |= {"chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": 100}
        info |= {"video_files_size_in_mb": 200, "splits": {"train": f"0:{len(rows)}"}}
        info |= {"data_path": DATA_PATH, "video_path": VIDEO_PATH if video_keys else None}
        write_json_atomic(root / INFO_PATH, info | {"features": features})
        summary = dataset.root / SUMMARY_FILE
        side = {
            "format_version": 1,
            "repo_id": repo_id,
            "meta": meta,
            "step_features": STEP_FEATURES,
        }
        side["summary"] = read_json(summary) if summary.exists() else None
        side["obs_features"] = {obs_feature(k): k for k in meta["obs_keys"]}
        side["video"] = {"codec": "libx264", "pix_fmt": VIDEO_PIX_FMT, "crf": VIDEO_CRF, "gop": fps}
        write_json_atomic(root / SANDBOX_PATH, side)
    counts = {"episodes": len(rows), "frames": frames, "tasks": len(tasks), "fps": fps}
    return {"format": "lerobot", "repo_id": repo_id, "out": str(out), **counts}


def _episode_row(episode: Episode, index: int, first: int) -> dict[str, Any]:
    """The meta/episodes row of an episode, less its file columns (see :meth:`_Shard.add`)."""
    row = {"episode_index": index, "tasks": [episode.instruction], "length": len(episode)}
    row |= {"dataset_from_index": first, "dataset_to_index": first + len(episode)}
    row |= {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
    row[META_COLUMN] = json.dumps(episode.meta, sort_keys=True)
    return row | {FINAL_PREFIX + obs_feature(k): v[-1].tobytes() for k, v in episode.obs.items()}


def read_info(src: Path) -> dict[str, Any]:
    """``meta/info.json`` of a LeRobot dataset, refused unless it is of version v3.0."""
    path = src / INFO_PATH
    if not path.exists():
        raise DatasetError(f"{src}: no {INFO_PATH}; not a LeRobot dataset")
    info = read_json(path)
    found = info.get("codebase_version")
    if found != CODEBASE_VERSION:
        raise DatasetError(
            f"{path}: codebase_version {found!r}; this code reads LeRobot datasets of version "
            f"{CODEBASE_VERSION!r} (convert older ones with lerobot's v3.0 converter)"
        )
    return info


class _Reader:
    """Reads episodes of an export in order, keeping the current data file and videos decoded."""

    def __init__(self, src: Path, info: dict[str, Any], side: dict[str, Any]) -> None:
        self.src, self.info, self.side = src, info, side
        self.loaded: dict[str, tuple[Path, Any]] = {}

    def _load(self, kind: str, path: Path) -> Any:
        """The table or frames of ``path``, read unless it is the last file of ``kind`` read."""
        if kind not in self.loaded or self.loaded[kind][0] != path:
            if not path.exists():
                raise DatasetError(f"{path}: file is missing")
            self.loaded[kind] = (path, _read_parquet(path) if kind == "data" else read_video(path))
        return self.loaded[kind][1]

    def _file(self, row: dict[str, Any], prefix: str, template: str, **keys: str) -> Path:
        where = {k: row[f"{prefix}/{k}"] for k in ("chunk_index", "file_index")}
        return self.src / template.format(**where, **keys)

    def arrays(self, row: dict[str, Any]) -> dict[str, np.ndarray]:
        """The project arrays (``obs/<key>`` with the final observation, step keys) of one episode."""
        path = self._file(row, "data", self.info["data_path"])
        table = self._load("data", path)
        table = table.filter(pc.equal(table["episode_index"], row["episode_index"]))
        length, features = row["length"], self.info["features"]
        if table.num_rows != length:
            raise DatasetError(
                f"{path}: episode {row['episode_index']} has {table.num_rows} rows, not {length}"
            )
        arrays = {
            key: _numpy(table[name], features[name]["dtype"])
            for name, key in self.side["step_features"].items()
        }
        for name, key in self.side["obs_features"].items():
            if features[name]["dtype"] == "video":
                video = self._file(row, f"videos/{name}", self.info["video_path"], video_key=name)
                start = round(row[f"videos/{name}/from_timestamp"] * self.info["fps"])
                head = self._load(name, video)[start : start + length]
                if len(head) != length:
                    raise DatasetError(
                        f"{video}: too few frames for episode {row['episode_index']}"
                    )
            else:
                head = _numpy(table[name], features[name]["dtype"])
            final = np.frombuffer(row[FINAL_PREFIX + name], dtype=head.dtype).reshape(
                head.shape[1:]
            )
            arrays[OBS_PREFIX + key] = np.concatenate([head, final[None]])
        return arrays


def import_lerobot(src: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Read a LeRobot v3.0 dataset exported by :func:`export_lerobot` into dataset ``out``.

    Every array comes back as it was but the camera frames before the last (mp4, near-lossless).
    """
    src = Path(src)
    info = read_info(src)
    if not (src / SANDBOX_PATH).exists():
        raise DatasetError(
            f"{src}: no {SANDBOX_PATH}; only LeRobot datasets exported by wm-sandbox can be "
            "imported (the project's format needs its env config, expert actions and rewards)"
        )
    side = read_json(src / SANDBOX_PATH)
    episode_files = sorted((src / "meta/episodes").glob("*/*.parquet"))
    if not episode_files:
        raise DatasetError(f"{src}: no parquet files under meta/episodes/")
    episodes = pa.concat_tables([_read_parquet(p) for p in episode_files]).to_pylist()
    if not episodes:
        raise DatasetError(f"{src}: the dataset has no episodes")
    episodes.sort(key=lambda r: r["episode_index"])
    out = _fresh_output(out)
    reader = _Reader(src, info, side)
    with _staged(out) as root:
        write_json_atomic(root / META_FILE, side["meta"])
        for number, row in enumerate(episodes):
            write_episode(root, number, reader.arrays(row), json.loads(row[META_COLUMN]))
        if side.get("summary") is not None:
            write_json_atomic(root / SUMMARY_FILE, side["summary"])
    counts = {"episodes": len(episodes), "frames": sum(r["length"] for r in episodes)}
    return {"format": "lerobot", "src": str(src), "out": str(out), **counts}
