"""Crash-safe episode datasets on disk, and a loader of fixed-length training sequences.

Layout of a dataset directory::

    DIR/
      meta.json             task, env version, env config, collection settings, observation keys
      episode_000000.npz    one compressed episode each (written to a temp file, then renamed)
      episode_000001.npz
      summary.json          written when a collection finishes

An episode file is a NumPy ``.npz`` (a zip of ``.npy`` arrays, deflate-compressed, each member
CRC-checked on read) holding, for an episode of ``T`` steps:

    obs/<key>        (T + 1, ...)  every observation key but the instruction (images uint8)
    action           (T, 5)        the executed action
    expert_action    (T, 5)        the expert's clean action (differs when noise was added)
    reward           (T,)          the env's reward (its configured type)
    reward_dense     (T,)  reward_sparse (T,)
    success          (T,) bool     after each step
    terminated       (T,) bool     truncated (T,) bool
    subtask_id       (T,) int16    the executed subtask, an index into envs.language.SUBTASK_VOCAB
    subtask_index    (T,) int16    the env's plan pointer after each step
    links_completed  (T,) int16
    meta_json        ()            JSON: instruction, seed, plan, success, length, task, env version

One file per episode is the chunk: it lands whole or not at all, so a crash loses at most the
episode in flight; a collection resumes at the first missing index. A file that cannot be read
completely raises :class:`DatasetError` naming it; nothing is skipped silently.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sandbox_common.atomic import atomic_write
from sandbox_common.errors import InputError

FORMAT_VERSION = 1
META_FILE = "meta.json"
SUMMARY_FILE = "summary.json"
EPISODE_PATTERN = re.compile(r"^episode_(\d{6})\.npz$")
OBS_PREFIX = "obs/"
STEP_KEYS = (
    "action",
    "expert_action",
    "reward",
    "reward_dense",
    "reward_sparse",
    "success",
    "terminated",
    "truncated",
    "subtask_id",
    "subtask_index",
    "links_completed",
)


class DatasetError(InputError):
    """A dataset on disk is missing, corrupt, truncated or does not match what was asked."""


def episode_path(root: Path, index: int) -> Path:
    return Path(root) / f"episode_{index:06d}.npz"


def read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DatasetError(
            f"{path}: missing; is this a dataset directory written by `collect`?"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: corrupt JSON ({exc})") from None


def write_episode(
    root: Path, index: int, arrays: dict[str, np.ndarray], meta: dict[str, Any]
) -> Path:
    """Write one episode atomically: a temp file in the same directory, fsync, then rename."""
    payload = dict(arrays)
    payload["meta_json"] = np.array(json.dumps(meta, sort_keys=True))
    return atomic_write(episode_path(root, index), lambda fh: np.savez_compressed(fh, **payload))


@dataclass
class Episode:
    """One episode in memory: ``obs[key]`` has one more step than ``action``."""

    path: Path
    obs: dict[str, np.ndarray]
    steps: dict[str, np.ndarray]
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.steps["action"])

    @property
    def instruction(self) -> str:
        return self.meta["instruction"]


_UNREADABLE = (
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    EOFError,
    ValueError,
    OSError,
    KeyError,
)
"""What reading a corrupt or truncated ``.npz`` raises."""


def load_episode(path: str | os.PathLike) -> Episode:
    """Read and fully verify one episode file (every member's CRC, shapes, lengths)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise DatasetError(f"{path}: episode file is missing") from None
    except _UNREADABLE as exc:
        raise DatasetError(
            f"{path}: corrupt or truncated episode file ({type(exc).__name__}: {exc}); "
            "delete it and run `collect` again with the same arguments to regenerate it"
        ) from None
    if "meta_json" not in arrays:
        raise DatasetError(f"{path}: not an episode file (no meta_json member)")
    try:
        meta = json.loads(str(arrays.pop("meta_json")))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: corrupt episode metadata ({exc})") from None
    missing = [k for k in STEP_KEYS if k not in arrays]
    if missing:
        raise DatasetError(f"{path}: episode file lacks arrays {missing}")
    obs = {k[len(OBS_PREFIX) :]: v for k, v in arrays.items() if k.startswith(OBS_PREFIX)}
    steps = {k: arrays[k] for k in STEP_KEYS}
    # derived: a subtask was completed by step t (the plan pointer moved forward)
    steps["subtask_done"] = np.diff(steps["subtask_index"].astype(np.int64), prepend=0) > 0
    length = len(steps["action"])
    bad = {
        k: len(v) for k, v in steps.items() if len(v) != length
    }  # (subtask_done is derived: same length)
    bad |= {f"obs/{k}": len(v) for k, v in obs.items() if len(v) != length + 1}
    if bad or length != meta.get("length", length):
        raise DatasetError(f"{path}: inconsistent lengths (actions: {length}, mismatching: {bad})")
    return Episode(path=path, obs=obs, steps=steps, meta=meta)


def list_episode_files(root: Path) -> list[Path]:
    """Episode files in index order; raises if indices have a gap (a file was lost)."""
    found = sorted(
        (int(m.group(1)), root / name)
        for name in os.listdir(root)
        if (m := EPISODE_PATTERN.match(name))
    )
    for expected, (index, path) in enumerate(found):
        if index != expected:
            raise DatasetError(
                f"{root}: episode {expected:06d} is missing (next file is {path.name})"
            )
    return [path for _, path in found]


class EpisodeDataset:
    """A dataset directory: its metadata and its verified episodes (loaded lazily, then cached)."""

    def __init__(self, root: str | os.PathLike, preload: bool = False) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset directory")
        self.meta = read_json(self.root / META_FILE)
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise DatasetError(
                f"{self.root / META_FILE}: format_version {self.meta.get('format_version')!r}, "
                f"this code reads {FORMAT_VERSION}"
            )
        self.paths = list_episode_files(self.root)
        self._cache: dict[int, Episode] = {}
        self._derived: dict = {}
        if preload:
            for i in range(len(self)):
                self[i]

    def __len__(self) -> int:
        return len(self.paths)

    def add_derived_obs(self, name: str, fn) -> None:
        """Add an observation key computed from an episode's observations (e.g. a re-indexed state).

        ``fn(obs: dict[str, array]) -> array (T + 1, ...)`` runs once per episode as it is loaded.
        """
        self._derived[name] = fn
        for episode in self._cache.values():
            episode.obs[name] = fn(episode.obs)
        if name not in self.meta["obs_keys"]:
            self.meta = {**self.meta, "obs_keys": [*self.meta["obs_keys"], name]}

    def __getitem__(self, index: int) -> Episode:
        if index not in self._cache:
            self._cache[index] = self.read(index)
        return self._cache[index]

    def meta_of(self, index: int) -> dict[str, Any]:
        """Episode ``index``'s metadata (instruction, length, plan, ...) without reading its
        arrays; an unreadable member falls back to the full, verifying read (which says what
        is wrong)."""
        if index in self._cache:
            return self._cache[index].meta
        try:
            with np.load(self.paths[index], allow_pickle=False) as data:
                return json.loads(str(data["meta_json"]))
        except _UNREADABLE:
            return self.read(index).meta

    def length(self, index: int) -> int:
        """Episode ``index``'s number of actions, from its metadata (for sizing arrays before the
        episodes are read; ``read`` verifies it)."""
        length = self.meta_of(index).get("length")
        return int(length) if length is not None else len(self.read(index))

    def read(self, index: int) -> Episode:
        """Episode ``index``, verified, without keeping it in the cache: for one pass over a
        dataset that is copied into training arrays (cached, its images would be held twice)."""
        if index in self._cache:
            return self._cache[index]
        episode = load_episode(self.paths[index])
        for name, fn in self._derived.items():
            episode.obs[name] = fn(episode.obs)
        keys = sorted(episode.obs)
        if keys != sorted(self.meta["obs_keys"]):
            raise DatasetError(
                f"{self.paths[index]}: observation keys {keys} differ from the dataset's {self.meta['obs_keys']}"
            )
        return episode

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self)):
            yield self[i]

    @property
    def obs_keys(self) -> list[str]:
        return list(self.meta["obs_keys"])


class FrameStack:
    """The frames of many episodes, one array per observation key, sized from the episodes'
    metadata and filled episode by episode with :meth:`add` (concatenating per-episode arrays
    would hold every frame twice at the peak: GBs for a few thousand pixel demos)."""

    def __init__(
        self, datasets: list[EpisodeDataset], pairs: list[tuple[int, int]], keys: list[str]
    ) -> None:
        self.keys = tuple(keys)
        self.total = sum(datasets[d].length(e) + 1 for d, e in pairs) if self.keys else 0
        self.arrays: dict[str, np.ndarray] = {}
        self.row = 0

    def add(self, episode: Episode) -> None:
        rows = slice(self.row, self.row + len(episode) + 1)
        for k in self.keys:
            frames = episode.obs[k]
            if k not in self.arrays:
                self.arrays[k] = np.empty((self.total, *frames.shape[1:]), frames.dtype)
            self.arrays[k][rows] = frames
        self.row = rows.stop


class SequenceLoader:
    """Random batches of fixed-length windows from a dataset, seeded.

    Each batch is a dict of arrays shaped ``(B, T + 1, ...)`` for ``obs/<key>`` and ``(B, T, ...)``
    for per-step keys: ``obs[:, t + 1]`` is what followed ``action[:, t]``. Windows are drawn
    uniformly over every valid start in every episode at least ``T`` steps long.
    """

    def __init__(
        self,
        dataset: EpisodeDataset,
        seq_len: int,
        batch_size: int,
        seed: int = 0,
        obs_keys: list[str] | None = None,
        step_keys: tuple[str, ...] = STEP_KEYS + ("subtask_done",),
        episodes: list[int] | None = None,
    ) -> None:
        if seq_len < 1 or batch_size < 1:
            raise ValueError(f"seq_len and batch_size must be >= 1, got {seq_len}, {batch_size}")
        self.dataset = dataset
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.obs_keys = list(obs_keys) if obs_keys is not None else dataset.obs_keys
        unknown = sorted(set(self.obs_keys) - set(dataset.obs_keys))
        if unknown:
            raise DatasetError(
                f"{dataset.root}: no observation keys {unknown}; it has {dataset.obs_keys}"
            )
        self.step_keys = step_keys
        self.rng = np.random.default_rng(seed)
        indices = range(len(dataset)) if episodes is None else episodes
        self.episodes = [i for i in indices if len(dataset[i]) >= seq_len]
        if not self.episodes:
            raise DatasetError(f"{dataset.root}: no episode has at least seq_len={seq_len} steps")
        starts = np.array([len(dataset[i]) - seq_len + 1 for i in self.episodes], dtype=np.float64)
        self._weights = starts / starts.sum()

    def sample(self, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """One batch, drawn with ``rng`` (default: the loader's own seeded generator)."""
        rng = rng if rng is not None else self.rng
        chosen = rng.choice(len(self.episodes), size=self.batch_size, p=self._weights)
        out: dict[str, list[np.ndarray]] = {OBS_PREFIX + k: [] for k in self.obs_keys}
        out |= {k: [] for k in self.step_keys}
        T = self.seq_len
        for c in chosen:
            episode = self.dataset[self.episodes[c]]
            s = int(rng.integers(0, len(episode) - T + 1))
            for k in self.obs_keys:
                out[OBS_PREFIX + k].append(episode.obs[k][s : s + T + 1])
            for k in self.step_keys:
                out[k].append(episode.steps[k][s : s + T])
        return {k: np.stack(v) for k, v in out.items()}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while True:
            yield self.sample()
