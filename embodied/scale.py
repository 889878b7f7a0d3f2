"""Fan collection, evaluation and training seed sweeps out over a Ray cluster (optional extra).

``pip install -e .[ray]``, then ``collect ... --ray``, ``eval ... --ray`` or
``train agent ... --seeds 0 1 2 --ray`` (``--ray ADDRESS`` joins a running cluster; ``--ray``
alone starts a local Ray with 2 CPUs). The results are those of the local runners for the same
seeds:

- :func:`collect_ray`: remote tasks record contiguous blocks of episodes (episode ``i`` uses
  seed ``seed + i``) and *return* them; this process writes every file, ``meta.json`` and
  ``summary.json`` exactly as :func:`embodied.data.collect.collect` does, and resumes the same way.
  No shared filesystem is needed.
- :func:`evaluate_ray`: this process picks the seeds as :func:`embodied.evaluation.harness.evaluate` does
  (skipping initial states that are already a success); remote workers build the agent (the
  scripted expert, or a run's ``agent.pt``, shipped to them as bytes) and run the episodes. The
  :class:`~embodied.evaluation.harness.EvalResult` equals the local one except for timings.
- :func:`train_sweep_ray`: one remote training per seed into ``OUT/seed_<k>``. Training reads
  its datasets and writes its run from and to paths, so a multi-machine cluster needs them on a
  shared filesystem (a local Ray always has one).

Workers import this project: on a remote cluster it must be installed on every node.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import envs
from embodied.data.collect import finish_collection, open_collection, record_episode
from embodied.data.dataset import write_episode
from embodied.evaluation.harness import (
    EvalResult,
    TimedAgent,
    _Collector,
    aggregate,
    expert_factory,
)
from embodied.rollout import Rollout, run_episode
from sandbox_common.errors import InputError

LOCAL = "local"
"""The ``--ray`` address (also ``None``) that starts a local Ray instead of joining a cluster."""

LOCAL_CPUS = 2
"""CPUs of a local Ray (recent Ray has no ``local_mode``; a 2-CPU local cluster stands in)."""

class RayUnavailableError(InputError):
    """Ray is asked for but not installed."""


# ---------------------------------------------------------------- Ray itself


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`RayUnavailableError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(
            "--ray needs Ray, an optional extra: pip install -e .[ray] (or pip install 'ray>=2.9')"
        ) from None
    return ray


def init_ray(address: str | None, num_cpus: int = LOCAL_CPUS) -> bool:
    """Connect to Ray: ``None`` or ``"local"`` starts a local Ray with ``num_cpus`` CPUs, any
    other address (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) joins that cluster.

    Reuses a Ray already initialised in this process (whatever its address). Returns whether
    this call started it (then the caller shuts it down, see :func:`ray_session`).
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address is None or address == LOCAL:
        ray.init(num_cpus=num_cpus, include_dashboard=False)
    else:
        ray.init(address=address)
    return True


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """``with ray_session(address) as ray:`` Ray initialised by :func:`init_ray`, shut down at
    the end only if this block started it."""
    started = init_ray(address)
    ray = import_ray()
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def cluster_cpus(ray: Any) -> int:
    """Whole CPUs of the cluster (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _as_completed(
    ray: Any, submit: Callable[[Any], Any], jobs: Iterable[Any], max_in_flight: int
) -> Iterator[tuple[Any, Any]]:
    """``(job, result)`` for every job as its remote call ``submit(job)`` finishes, with at most
    ``max_in_flight`` calls (and their results) held at once; cancels the rest on an error."""
    todo = iter(jobs)
    pending: dict[Any, Any] = {}
    try:
        while True:
            for job in itertools.islice(todo, max(0, max_in_flight - len(pending))):
                pending[submit(job)] = job
            if not pending:
                return
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                yield job, ray.get(ref)
    finally:
        for ref in pending:
            ray.cancel(ref)


# ---------------------------------------------------------------- collection


def _record_block(
    task: str,
    overrides: dict[str, Any],
    seed: int,
    noise: float,
    indices: list[int],
) -> list[tuple[int, dict[str, np.ndarray], dict[str, Any]]]:
    """(Remote) record episodes ``indices`` (seeds ``seed + i``) in one env; return their arrays
    and metadata instead of writing them."""
    env = envs.make(task, **overrides)
    try:
        return [(i, *record_episode(env, seed + i, noise)) for i in indices]
    finally:
        env.close()


def contiguous_blocks(indices: list[int], size: int) -> list[list[int]]:
    """Split sorted ``indices`` into runs of consecutive integers of at most ``size`` each."""
    blocks: list[list[int]] = []
    for i in indices:
        if blocks and blocks[-1][-1] == i - 1 and len(blocks[-1]) < size:
            blocks[-1].append(i)
        else:
            blocks.append([i])
    return blocks


def collect_ray(
    task: str,
    episodes: int,
    out: str | Path,
    seed: int = 0,
    noise: float = 0.0,
    address: str | None = None,
    block: int | None = None,
    progress: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """:func:`embodied.data.collect.collect` on Ray: the same files, ``meta.json`` and summary.

    Remote tasks each record ``block`` consecutive episodes (default: enough blocks for two per
    cluster CPU, at most 16 episodes each) and return them; this process writes them as they
    arrive, so a run that dies leaves whole episodes that the next run skips.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if block is not None and block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    import_ray()  # say so before touching the directory
    _, root, done, todo = open_collection(task, out, episodes, seed, noise, overrides)

    start = time.perf_counter()
    if todo:
        with ray_session(address) as ray:
            cpus = cluster_cpus(ray)
            size = block or min(16, math.ceil(len(todo) / (2 * cpus)))
            remote = ray.remote(num_cpus=1)(_record_block)
            bar = tqdm(
                total=episodes,
                initial=len(done),
                desc=f"collect {task} (ray)",
                unit="ep",
                disable=not progress,
            )
            jobs = contiguous_blocks(todo, size)
            submit = lambda indices: remote.remote(task, overrides, seed, noise, indices)
            try:
                for _, records in _as_completed(ray, submit, jobs, 2 * cpus):
                    for index, arrays, meta in records:
                        write_episode(root, index, arrays, meta)
                        done[index] = meta
                        bar.update(1)
            finally:
                bar.close()

    return finish_collection(root, task, done, episodes, seed, noise, len(todo), start)


# ---------------------------------------------------------------- evaluation


def evaluation_seeds(
    task: str, episodes: int, seed: int, **overrides: Any
) -> tuple[list[int], list[int]]:
    """(seeds, skipped): the first ``episodes`` seeds from ``seed`` on whose initial state is not
    already a success, and the ones skipped on the way, exactly as ``evaluate`` draws them."""
    env = envs.make(task, **overrides)
    seeds: list[int] = []
    skipped: list[int] = []
    try:
        for candidate in itertools.count(seed):
            if len(seeds) == episodes:
                break
            _, info = env.reset(seed=candidate)
            (skipped if info["success"] else seeds).append(candidate)
    finally:
        env.close()
    return seeds, skipped


@dataclass
class _AgentSpec:
    """How a worker builds the agent besides the checkpoint: the expert's noise, and whether
    a hierarchical agent's System 2 checks its plans with the world model."""

    noise: float = 0.0
    world_model_check: bool = True
    planner: str = "learned"


@dataclass
class _Episode:
    """One finished episode with the agent's timings, as a worker returns it."""

    rollout: Rollout
    act_ms: list[float]
    timings: dict[str, list[float]]

    def pop_timings(self) -> dict[str, list[float]]:
        return self.timings


def _evaluate_block(
    spec: _AgentSpec,
    checkpoint: bytes | None,
    task: str,
    overrides: dict[str, Any],
    seeds: list[int],
) -> list[_Episode]:
    """(Remote) run one episode per seed in one env with the scripted expert (``checkpoint``
    ``None``) or the agent in ``checkpoint`` (the bytes of an ``agent.pt``)."""
    if checkpoint is None:
        return _run_episodes(expert_factory(noise=spec.noise), task, overrides, seeds)
    import torch

    from embodied.saved_agents import agent_factory_from_run
    from embodied.training.data_split import AGENT_FILE

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="wm-sandbox-agent-") as tmp:
        (Path(tmp) / AGENT_FILE).write_bytes(checkpoint)
        factory, _ = agent_factory_from_run(
            tmp, task, world_model_check=spec.world_model_check, planner=spec.planner
        )
    return _run_episodes(factory, task, overrides, seeds)


def _run_episodes(
    factory: Callable[[Any, int], Any], task: str, overrides: dict[str, Any], seeds: list[int]
) -> list[_Episode]:
    env = envs.make(task, **overrides)
    out: list[_Episode] = []
    try:
        for s in seeds:
            agent = TimedAgent(factory(env, s))
            rollout = run_episode(env, agent, s)
            out.append(_Episode(rollout, agent.act_ms, agent.pop_timings()))
    finally:
        env.close()
    return out


def _eval_result(
    task: str,
    episodes: list[_Episode],
    skipped: list[int],
    seconds: float,
    num_envs: int,
) -> EvalResult:
    """The :class:`EvalResult` ``evaluate`` would assemble from these episodes."""
    collector = _Collector(tqdm(disable=True))
    for episode in episodes:
        collector.finish(episode.rollout, episode)
    collector.skipped = list(skipped)
    return aggregate(task, collector, [], seconds, num_envs)


def evaluate_ray(
    run_or_expert: str | Path,
    task: str,
    episodes: int,
    seed: int = 0,
    address: str | None = None,
    num_workers: int | None = None,
    *,
    noise: float = 0.0,
    world_model_check: bool = True,
    planner: str = "learned",
    progress: bool = False,
    **overrides: Any,
) -> EvalResult:
    """:func:`embodied.evaluation.harness.evaluate` on Ray for ``"expert"`` (the scripted expert with
    ``noise``) or a trained run (directory or ``agent.pt``).

    The seeds are chosen here; ``num_workers`` remote tasks (default: the cluster's CPUs) each
    run a contiguous share of them. A run's env settings come first, then ``overrides``, as in
    ``eval``. The result equals the local harness's (``num_envs`` is the number of workers,
    ``latency_ms`` and ``seconds`` are measured); no videos.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    import_ray()
    start = time.perf_counter()
    spec = _AgentSpec(noise=noise, world_model_check=world_model_check, planner=planner)
    checkpoint: bytes | None = None
    if str(run_or_expert) != "expert":
        from embodied.saved_agents import agent_factory_from_run, agent_file

        path = Path(run_or_expert)
        if not path.exists():
            raise ValueError(
                f"unknown agent {str(run_or_expert)!r}; accepted: expert or a trained run directory"
            )
        _, agent_overrides = agent_factory_from_run(path, task, world_model_check, planner=planner)
        overrides = {**agent_overrides, **overrides}
        checkpoint = agent_file(path).read_bytes()
    seeds, skipped = evaluation_seeds(task, episodes, seed, **overrides)

    with ray_session(address) as ray:
        workers = min(num_workers or cluster_cpus(ray), len(seeds))
        shares = [list(map(int, s)) for s in np.array_split(seeds, workers)]
        blob = ray.put(checkpoint)
        remote = ray.remote(num_cpus=1)(_evaluate_block)
        bar = tqdm(total=len(seeds), desc=f"eval {task} (ray)", disable=not progress)
        finished: list[_Episode] = []
        submit = lambda share: remote.remote(spec, blob, task, overrides, share)
        try:
            for _, results in _as_completed(ray, submit, shares, workers):
                finished.extend(results)
                bar.update(len(results))
        finally:
            bar.close()
    return _eval_result(task, finished, skipped, round(time.perf_counter() - start, 2), workers)


# ---------------------------------------------------------------- training seed sweeps


def _absolute(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Paths among the training options made absolute (workers may start elsewhere)."""
    out = dict(kwargs)
    if out.get("world_model"):
        out["world_model"] = str(Path(out["world_model"]).resolve())
    if out.get("teacher") not in (None, "expert"):
        out["teacher"] = str(Path(out["teacher"]).resolve())
    return out


def train_one(
    kind: str, data: list[str], out: str, seed: int, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """One training run (``train_bc``; an unknown kind is refused there)."""
    from embodied.training.baselines import train_bc

    return train_bc(kind, data, out, seed=seed, **kwargs)


def _train_remote(
    kind: str, data: list[str], out: str, seed: int, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """(Remote) :func:`train_one` with one torch thread."""
    import torch

    torch.set_num_threads(1)
    return train_one(kind, data, out, seed, kwargs)


def sweep_dir(out_root: str | Path, seed: int) -> Path:
    """The run directory of ``seed`` in a sweep: ``OUT/seed_<k>``."""
    return Path(out_root) / f"seed_{seed}"


def _check_seeds(seeds: list[int]) -> None:
    if not seeds:
        raise ValueError("a seed sweep needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must differ, got {seeds}")


def train_sweep(
    kind: str, data: list[str | Path], out_root: str | Path, seeds: list[int], **kwargs: Any
) -> dict[int, dict[str, Any]]:
    """The seeds one after another in this process, into ``OUT/seed_<k>``; their reports."""
    _check_seeds(seeds)
    return {
        s: train_one(kind, [str(d) for d in data], str(sweep_dir(out_root, s)), s, kwargs)
        for s in seeds
    }


def train_sweep_ray(
    kind: str,
    data: list[str | Path],
    out_root: str | Path,
    seeds: list[int],
    address: str | None = None,
    **kwargs: Any,
) -> dict[int, dict[str, Any]]:
    """One remote training per seed into ``OUT/seed_<k>`` (each with one torch thread, one CPU,
    one GPU when ``device="cuda"``); their reports by seed. ``kwargs`` go to ``train_bc`` /
    ``train_bc`` (``progress`` is off in workers). Each run resumes as a local one does."""
    _check_seeds(seeds)
    import_ray()
    files = [str(Path(d).resolve()) for d in data]
    root = Path(out_root).resolve()
    options = _absolute(kwargs) | {"progress": False}
    with ray_session(address) as ray:
        remote = ray.remote(num_cpus=1, num_gpus=1 if kwargs.get("device") == "cuda" else 0)(
            _train_remote
        )
        submit = lambda s: remote.remote(kind, files, str(sweep_dir(root, s)), s, options)
        reports = dict(_as_completed(ray, submit, seeds, len(seeds)))
    return {s: reports[s] for s in seeds}
