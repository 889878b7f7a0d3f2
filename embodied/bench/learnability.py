"""Can a learner imitate the experts? Collect demos, train the reference baselines (with and
without DAgger), evaluate them on held-out seeds through the one harness.

``bc-state`` (privileged task-relative state, the expert as DAgger teacher) runs on every task
and demo count; ``bc-pixels`` (cameras + proprioception + instruction) on the tasks and demo
counts named for it, with the ``bc-state`` run of the same demos as its DAgger teacher
(learning by cheating). Everything lands in ``OUT/`` and is resumed when rerun:

    OUT/data/<task>-<state|pixels>-<N>/   demos (seeds 100000 + i, noise 0.1)
    OUT/runs/<task>-<kind>-<N>/           training runs (round_k/agent.pt per DAgger round)
    OUT/learnability.json, learnability.md
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from embodied.data.collect import collect
from embodied.evaluation.harness import evaluate
from embodied.saved_agents import agent_factory_from_run
from embodied.training.baselines import AGENT_FILE, train_bc
from sandbox_common.atomic import write_json_atomic

DEMO_SEED = 100_000
NOISE = 0.1


def _evaluate(run: Path, task: str, episodes: int, num_envs: int) -> dict[str, Any]:
    make, overrides = agent_factory_from_run(run, task)
    r = evaluate(make, task, episodes, seed=0, num_envs=num_envs, **overrides)
    return {
        "success_rate": r.success_rate,
        "ci95": list(r.ci95),
        "mean_links_fraction": r.mean_links_fraction,
        "episodes": r.episodes,
        "seconds": round(r.seconds, 1),
    }


def _rounds(run: Path, dagger: int, task: str, episodes: int, num_envs: int) -> list[dict]:
    """Held-out success after behaviour cloning (round 0) and after each DAgger round."""
    return [
        _evaluate(run / f"round_{r}" / AGENT_FILE, task, episodes, num_envs)
        for r in range(dagger + 1)
    ]


def _row(
    task: str, agent: str, demos: int, teacher: str | None, evals: list[dict], times: tuple
) -> dict[str, Any]:
    """One table row: success after BC and after each DAgger round, and where the time went."""
    start, collected, trained, evaluated = times
    return {
        "task": task,
        "agent": agent,
        "demos": demos,
        "teacher": teacher,
        "success_by_round": [e["success_rate"] for e in evals],
        "ci95_by_round": [e["ci95"] for e in evals],
        "links_by_round": [e["mean_links_fraction"] for e in evals],
        "seconds": {
            "collect": round(collected - start, 1),
            "train": round(trained - collected, 1),
            "evaluate": round(evaluated - trained, 1),
        },
    }


def bench_learnability(
    out: str | Path,
    tasks: list[str],
    demos: list[int],
    episodes: int = 50,
    dagger: int = 3,
    dagger_episodes: int = 50,
    dagger_demos: list[int] | None = None,
    pixel_tasks: list[str] | None = None,
    pixel_demos: list[int] | None = None,
    pixel_steps: int | None = None,
    workers: int = 2,
    num_envs: int = 2,
    progress: bool = False,
    pixel_device: str = "cpu",
) -> dict[str, Any]:
    """Run the benchmark; returns (and writes) ``OUT/learnability.json``.

    DAgger runs on the demo counts in ``dagger_demos`` (default: the smallest), where imitation
    alone has the most to gain.
    """
    out = Path(out)
    dagger_demos = dagger_demos if dagger_demos is not None else [min(demos)]
    result_file = out / "learnability.json"
    results: dict[str, Any] = {
        "settings": {
            "tasks": tasks,
            "demos": demos,
            "episodes": episodes,
            "eval_seeds": f"0..{episodes - 1} (skipping starts that are already a success)",
            "demo_seeds": f"{DEMO_SEED} + i",
            "noise": NOISE,
            "dagger_rounds": dagger,
            "dagger_episodes": dagger_episodes,
            "dagger_demos": dagger_demos,
            "pixel_tasks": pixel_tasks or [],
            "pixel_demos": pixel_demos or [],
            "pixel_device": pixel_device,
        },
        "rows": [],
    }
    for task in tasks:
        for n in demos:
            start = time.perf_counter()
            data = out / "data" / f"{task}-state-{n}"
            collect(task, n, data, seed=DEMO_SEED, noise=NOISE, workers=workers,
                    progress=progress, obs_mode="state")  # fmt: skip
            collected = time.perf_counter()
            rounds = dagger if n in dagger_demos else 0
            run = out / "runs" / f"{task}-bc-state-{n}"
            train_bc("bc-state", [data], run, dagger=rounds, dagger_episodes=dagger_episodes,
                     progress=progress)  # fmt: skip
            trained = time.perf_counter()
            evals = _rounds(run, rounds, task, episodes, num_envs)
            times = (start, collected, trained, time.perf_counter())
            results["rows"].append(
                _row(task, "bc-state", n, "expert" if rounds else None, evals, times)
            )
            write_json_atomic(result_file, results)
    for task in pixel_tasks or []:
        for n in pixel_demos or []:
            start = time.perf_counter()
            data = out / "data" / f"{task}-pixels-{n}"
            collect(task, n, data, seed=DEMO_SEED, noise=NOISE, workers=workers, progress=progress)
            collected = time.perf_counter()
            teacher = out / "runs" / f"{task}-bc-state-{n}"
            if not (teacher / AGENT_FILE).exists():
                state_data = out / "data" / f"{task}-state-{n}"
                collect(task, n, state_data, seed=DEMO_SEED, noise=NOISE, workers=workers,
                        progress=progress, obs_mode="state")  # fmt: skip
                train_bc("bc-state", [state_data], teacher, progress=progress)
            run = out / "runs" / f"{task}-bc-pixels-{n}"
            train_bc("bc-pixels", [data], run, steps=pixel_steps, dagger=dagger,
                     dagger_episodes=dagger_episodes, teacher=str(teacher / AGENT_FILE),
                     progress=progress, device=pixel_device)  # fmt: skip
            trained = time.perf_counter()
            evals = _rounds(run, dagger, task, episodes, num_envs)
            times = (start, collected, trained, time.perf_counter())
            teacher_name = "bc-state run" if dagger else None
            results["rows"].append(_row(task, "bc-pixels", n, teacher_name, evals, times))
            write_json_atomic(result_file, results)
    (out / "learnability.md").write_text(format_table(results))
    return results


def format_table(results: dict[str, Any]) -> str:
    """A Markdown table: success after BC and after each DAgger round, per task and agent."""
    s = results["settings"]
    lines = [
        (
            f"Held-out success ({s['episodes']} episodes per row, seeds {s['eval_seeds']}); demos "
            f"with noise {s['noise']}; DAgger {s['dagger_rounds']} rounds x "
            f"{s['dagger_episodes']} rollouts per round."
        ),
        "",
        "| task | agent | demos | BC | " + " | ".join(
            f"DAgger {r}" for r in range(1, s["dagger_rounds"] + 1)
        ) + " | links (last) | collect + train + eval (s) |",
        "|---|---|---|---|" + "---|" * s["dagger_rounds"] + "---|---|",
    ]  # fmt: skip
    for row in results["rows"]:
        rates = row["success_by_round"]
        cells = [f"{rates[0]:.0%}"] + [
            f"{rates[r]:.0%}" if r < len(rates) else "" for r in range(1, s["dagger_rounds"] + 1)
        ]
        secs = row["seconds"]
        total = secs["collect"] + secs["train"] + secs["evaluate"]
        lines.append(
            f"| {row['task']} | {row['agent']} | {row['demos']} | " + " | ".join(cells)
            + f" | {row['links_by_round'][-1]:.0%} | {total:.0f} |"
        )  # fmt: skip
    return "\n".join(lines) + "\n"
