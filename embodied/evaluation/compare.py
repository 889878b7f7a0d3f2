"""``compare RUN_A RUN_B ...``: trained agents side by side on the same seeded episodes.

Every run is evaluated by the one harness on every task it was trained on (or ``tasks``), from
the same first seed, so the same initial states meet every agent; the first ``video_episodes``
of each are recorded, which puts the same episodes side by side in the report. A hierarchical
run also gets a row under the oracle System 2 (the env's own subtask sequence), and every run
is evaluated on held-out language (unseen paraphrases, unseen colour/destination compositions).

Each evaluation is written to ``OUT/evals/<row>/<task>/<variant>/metrics.json`` as it finishes,
and found there again on a rerun: a killed comparison resumes. The report itself is rendered
by :mod:`embodied.media.report`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embodied.evaluation.harness import evaluate, write_metrics
from embodied.saved_agents import agent_factory_from_run, load_bundle
from envs.language import HELDOUT_SPLITS, LANGUAGE_SPLITS, has_split
from policies.two_systems import HIERARCHICAL_KINDS

READS = {
    "end-to-end": "learned language",
    "hierarchical": "learned language",
    "bc-keypoints": "parsed language",
    "hierarchical-keypoints": "parsed language",
    "bc-state": "privileged state, parsed language",
    "bc-pixels": "parsed language (instruction code), pixels",
    "rl": "privileged state",
    "residual": "its base agent's inputs",
}
"""What each kind reads of the instruction and the scene, shown beside its row: what learning
the language costs, against parsing it or reading privileged state."""
from sandbox_common.atomic import write_json_atomic


@dataclass
class Row:
    """One line of the comparison: a trained run, under its own or the oracle System 2."""

    name: str
    run: Path
    kind: str
    tasks: tuple[str, ...]
    planner: str = "learned"
    training: dict[str, Any] = field(default_factory=dict)


def _seconds(part: dict[str, Any]) -> float:
    """A trained part's wall time: across every call of a resumed run (``train_seconds``), or,
    in reports written before it was recorded, the last call's; a keypoint agent's second stage
    adds perceiving the demos."""
    own = part.get("train_seconds", part.get("train_seconds_this_call", 0.0))
    return float(own) + float(part.get("perceive_seconds", 0.0))


def training_cost(run: Path) -> dict[str, Any]:
    """Demos, updates (in all and per network) and training seconds, from the run's own
    ``train.json`` (imitation runs; an RL run reports its env steps and seconds)."""
    path = run / "train.json" if run.is_dir() else run.parent / "train.json"
    if not path.exists():
        return {}
    report = json.loads(path.read_text())
    if "env_steps" in report:  # an RL run
        return {"env_steps": report["env_steps"], "train_seconds": report["train_seconds"]}
    if "rounds" in report:  # a baseline, with its DAgger rounds
        rounds = report["rounds"]
        first = rounds[0].get("data", {})
        by_part = {"policy": sum(r.get("steps", 0) for r in rounds)}
        seconds = sum(_seconds(r) + _seconds(r.get("decision_on_perception", {})) for r in rounds)
        extra = {"dagger_rounds": len(rounds) - 1}
    else:
        first = report.get("data", {})
        by_part = {p: report[p]["steps"] for p in ("system1", "system2") if p in report}
        seconds = sum(_seconds(report[p]) for p in ("system1", "system2") if p in report)
        extra = {}
    return {
        "demos": first.get("episodes_train", 0) + first.get("episodes_val", 0),
        "updates": sum(by_part.values()),
        "updates_by_part": by_part,
        "train_seconds": seconds,
        **extra,
    }


def rows_for(runs: list[str | Path], oracle: bool = True) -> list[Row]:
    """The comparison's rows: one per run (named by its directory), plus an oracle-System 2 row
    for each hierarchical run."""
    rows: list[Row] = []
    taken: set[str] = set()
    for run in runs:
        path = Path(run)
        if not path.exists():
            raise FileNotFoundError(
                f"no run {str(run)!r}: give the directories `train agent` wrote"
            )
        bundle = load_bundle(path)
        name = _unique(re.sub(r"[^A-Za-z0-9_.-]+", "-", path.resolve().name), taken)
        cost = training_cost(path)
        rows.append(Row(name, path, bundle.kind, tuple(bundle.tasks), training=cost))
        if oracle and bundle.kind in HIERARCHICAL_KINDS:
            rows.append(
                Row(f"{name}+oracle", path, bundle.kind, tuple(bundle.tasks), "oracle", cost)
            )
    return rows


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    taken.add(out)
    return out


def compare_runs(
    runs: list[str | Path],
    out: str | Path,
    tasks: tuple[str, ...] | None = None,
    episodes: int = 50,
    seed: int = 10_000,
    video_episodes: int = 2,
    language: tuple[str, ...] = HELDOUT_SPLITS,
    oracle: bool = True,
    num_envs: int = 2,
    progress: bool = True,
    suite: str | None = None,
    **env_overrides: Any,
) -> dict[str, Any]:
    """Evaluate every row on every task (in distribution, then each held-out language split) and
    return the comparison (also written to ``OUT/comparison.json`` by the report).
    ``env_overrides`` apply to every evaluation (after each run's own env settings). With a
    robustness ``suite`` every row also runs it on every task (``OUT/robustness/<row>/<task>/``);
    the report then shows the agents x factors heatmap."""
    bad = [s for s in language if s not in LANGUAGE_SPLITS or s in ("all", "train")]
    if bad:
        raise ValueError(f"unknown held-out language split(s) {bad}; accepted: {HELDOUT_SPLITS}")
    if video_episodes > episodes:
        raise ValueError(f"video_episodes ({video_episodes}) exceeds episodes ({episodes})")
    out = Path(out)
    rows = rows_for(runs, oracle)
    all_tasks = tasks or tuple(dict.fromkeys(t for row in rows for t in row.tasks))
    results: dict[str, Any] = {
        "settings": {
            "episodes": episodes,
            "first_seed": seed,
            "video_episodes": video_episodes,
            "language": list(language),
            "tasks": list(all_tasks),
            "env_overrides": {k: str(v) for k, v in env_overrides.items()},
        },
        "rows": [],
    }
    for row in rows:
        entry: dict[str, Any] = {
            "name": row.name,
            "kind": row.kind,
            "reads": READS.get(row.kind, "-"),
            "planner": row.planner,
            "training": row.training,
            "tasks": {},
        }
        for task in all_tasks:
            if task not in row.tasks:
                continue
            cells = {}
            for split in ("all", *language):
                if not has_split(task, split):
                    continue
                videos = video_episodes if split == "all" else 0
                cells[split] = _evaluation(out, row, task, split, episodes, seed, videos,
                                           num_envs, progress, env_overrides)  # fmt: skip
            entry["tasks"][task] = cells
        results["rows"].append(entry)
    if suite is not None:
        results["robustness"] = {
            f"{row.name} / {task}": _suite(
                out, row, task, suite, episodes, seed, num_envs, env_overrides
            )  # fmt: skip
            for row in rows
            for task in all_tasks
            if task in row.tasks
        }
    return results


def _suite(
    out: Path,
    row: Row,
    task: str,
    suite: str,
    episodes: int,
    seed: int,
    num_envs: int,
    env_overrides: dict[str, Any],
) -> dict[str, Any]:
    """One row's robustness suite on one task (resumed cell by cell)."""
    from embodied.evaluation.robustness import check_suite, run_agent_suite

    make, overrides = agent_factory_from_run(row.run, task, planner=row.planner)
    return run_agent_suite(make, f"{row.run.resolve()} ({row.planner})", check_suite(suite), task,
                           out / "robustness" / row.name / task, episodes, seed, num_envs,
                           **{**overrides, **env_overrides})  # fmt: skip


def _evaluation(
    out: Path,
    row: Row,
    task: str,
    split: str,
    episodes: int,
    seed: int,
    video_episodes: int,
    num_envs: int,
    progress: bool,
    env_overrides: dict[str, Any],
) -> dict[str, Any]:
    """One (row, task, language split) evaluation, read back when it already exists."""
    where = out / "evals" / row.name / task / split
    metrics, request = where / "metrics.json", where / "request.json"
    asked = {"run": str(row.run.resolve()), "episodes": episodes, "seed": seed,
             "video_episodes": video_episodes,
             "env": {k: str(v) for k, v in env_overrides.items()}}  # fmt: skip
    if metrics.exists() and request.exists() and json.loads(request.read_text()) == asked:
        return _summary(json.loads(metrics.read_text()), out)
    make, overrides = agent_factory_from_run(row.run, task, planner=row.planner)
    overrides = {**overrides, **env_overrides}
    if split != "all":
        overrides["language"] = split
    result = evaluate(
        make,
        task,
        episodes,
        seed=seed,
        video_episodes=video_episodes,
        video_dir=where / "videos",
        num_envs=num_envs,
        progress=progress,
        **overrides,
    )
    write_metrics(result, where)
    write_json_atomic(request, asked)
    return _summary(result.to_dict(), out)


def _summary(metrics: dict[str, Any], out: Path) -> dict[str, Any]:
    """What the report shows of one evaluation (video paths relative to ``out``)."""
    return {
        "episodes": metrics["episodes"],
        "success_rate": metrics["success_rate"],
        "ci95": list(metrics["ci95"]),
        "mean_chain_length": metrics["mean_chain_length"],
        "mean_links_fraction": metrics["mean_links_fraction"],
        "latency_ms": metrics["latency_ms"],
        "seeds": metrics["seeds"],
        "videos": [_relative(v, out) for v in metrics.get("videos", [])],
    }


def _relative(path: str, out: Path) -> str:
    p = Path(path)
    try:
        return p.resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        return p.as_posix()
