"""How robust is an agent trained nominally, and one trained with domain randomisation?

Per seed: collect demos nominally and with domain randomisation (``--randomize`` families, magnitudes
from the training bands, never an evaluation magnitude), train the same baseline on each, run a
robustness suite on both through the one harness; the scripted expert runs the suite once as the
reference (on state observations: it reads the privileged state, images would only cost time).
Any imitation kind: ``bc-state`` on state observations, the pixel kinds (``bc-keypoints``,
``hierarchical-keypoints``, ``bc-pixels``) on the cameras, randomised in the visual family too.
Demos are collected with ``language="train"`` unless told otherwise, so the held-out paraphrases
stay held out. Everything lands in ``OUT/`` and is resumed when rerun (a finished training run,
``RUN/agent.pt``, is not trained again):

    OUT/data/<nominal|dr>-s<seed>/         demos (seeds 100000 + 1000 * seed + i, noise 0.1)
    OUT/runs/<nominal|dr>-s<seed>/         training runs
    OUT/suites/<row>/robustness.json       one suite per agent (resumed cell by cell)
    OUT/robustness.json, robustness.md, robustness_heatmap.png
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from embodied.data.collect import collect
from embodied.evaluation.harness import expert_factory
from embodied.evaluation.robustness import (
    MIDDLE,
    check_suite,
    heatmap,
    percent,
    run_agent_suite,
)
from embodied.saved_agents import agent_factory_from_run
from embodied.training.baselines import AGENT_FILE, BC_KINDS, train_bc
from envs.factors import FAMILIES
from envs.language import LANGUAGE_SPLITS
from policies.bc_config import bc_preset
from sandbox_common.atomic import write_json_atomic

DEMO_SEED = 100_000
NOISE = 0.1
EVAL_SEED = 0
STATE_FAMILIES = ("physical", "sensing", "actuation", "language")
"""What ``bc-state`` is randomised in by default: it sees no images."""


def default_randomize(kind: str) -> tuple[str, ...]:
    """The families a kind's domain randomisation draws from by default."""
    return STATE_FAMILIES if kind == "bc-state" else FAMILIES


def _suite(make, name: str, suite, task: str, out: Path, episodes: int, overrides) -> dict:
    return run_agent_suite(make, name, suite, task, out / "suites" / name, episodes, EVAL_SEED,
                           **overrides)  # fmt: skip


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _aggregate(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Seeds averaged: per cell the mean success, and the summary figures' means and spread."""
    cells: dict[tuple, list[dict]] = {}
    for report in reports:
        for r in report["rows"]:
            cells.setdefault((r["family"], r["factor"], r["magnitude"]), []).append(r)
    rows = [
        {
            "family": f,
            "factor": n,
            "magnitude": m,
            "success_rate": _mean([r["success_rate"] for r in rs]),
            "relative_drop": _mean([r["relative_drop"] for r in rs]),
            "recovery_rate": _mean([r.get("recovery_rate") for r in rs]),
            "follow_rate": _mean([r.get("follow_rate") for r in rs]),
            "seeds": len(rs),
        }
        for (f, n, m), rs in cells.items()
    ]
    summaries = [r["summary"] for r in reports]
    middle = [s["mean_relative_drop_middle"] for s in summaries]
    combined = [s["combined_relative_drop"].get(f"{MIDDLE:g}") for s in summaries]
    return {
        "rows": rows,
        "nominal_success": _mean([s["nominal_success"] for s in summaries]),
        "mean_relative_drop_middle": _mean(middle),
        "mean_relative_drop_middle_by_seed": middle,
        "combined_relative_drop_middle": _mean(combined),
        "combined_relative_drop_middle_by_seed": combined,
        "counterfactual_follow_rate": _mean(
            [s.get("counterfactual_follow_rate") for s in summaries]
        ),
        "counterfactual_original_goal_rate": _mean(
            [s.get("counterfactual_original_goal_rate") for s in summaries]
        ),
        "recovery_rate": {
            event: _mean([s["recovery_rate"].get(event) for s in summaries])
            for event in summaries[0].get("recovery_rate", {})
        },
    }


def bench_robustness(
    out: str | Path,
    task: str = "pick-place",
    kind: str = "bc-state",
    preset: str = "default",
    demos: int = 200,
    seeds: tuple[int, ...] = (0, 1, 2),
    randomize: tuple[str, ...] | None = None,
    magnitude: float = 1.0,
    joint: float = 0.0,
    suite: str = "all",
    episodes: int = 20,
    events: bool = True,
    progress: bool = True,
    language: str = "train",
    workers: int = 1,
    num_envs: int = 1,
) -> dict[str, Any]:
    """Nominal vs domain-randomised training of ``kind`` on ``task``, each through ``suite`` (and
    the world events); returns and writes ``OUT/robustness.json``. ``randomize`` defaults to
    :func:`default_randomize`; ``workers`` collect the demos, ``num_envs`` run each suite."""
    if kind not in BC_KINDS:
        raise ValueError(
            f"unknown kind {kind!r}; bench robustness trains one of {', '.join(BC_KINDS)}"
        )
    bc_preset(kind, preset)  # an unknown preset fails here, before any demo is collected
    if language not in LANGUAGE_SPLITS:
        raise ValueError(f"language must be one of {LANGUAGE_SPLITS}, got {language!r}")
    randomize = tuple(randomize) if randomize else default_randomize(kind)
    bad = [f for f in randomize if f not in FAMILIES]
    if bad:
        raise ValueError(f"unknown factor famil(ies) {bad}; known: {', '.join(FAMILIES)}")
    chosen = check_suite(suite)
    out = Path(out)
    obs = {"obs_mode": "state"} if kind == "bc-state" else {}
    start = time.perf_counter()
    reports: dict[str, dict[str, Any]] = {}
    suites = [chosen] + ([check_suite("events")] if events else [])

    def run_all(make, name: str, overrides: dict[str, Any]) -> None:
        parts = [_suite(make, f"{name}-{s.name}" if s.name == "events" else name, s, task, out,
                        episodes, {**overrides, "num_envs": num_envs})
                 for s in suites]  # fmt: skip
        report = parts[0]
        for extra in parts[1:]:  # the event rows join the suite's table
            report = {**report, "rows": report["rows"] + extra["rows"][1:]}
            report["summary"] = {
                **report["summary"],
                "recovery_rate": extra["summary"]["recovery_rate"],
            }
        reports[name] = report

    run_all(expert_factory(), "expert", {"obs_mode": "state"})
    for seed in seeds:
        for variant in ("nominal", "dr"):
            data = out / "data" / f"{variant}-s{seed}"
            dr = (
                {"randomize": randomize, "randomize_magnitude": magnitude, "randomize_joint": joint}
                if variant == "dr"
                else {}
            )
            run = out / "runs" / f"{variant}-s{seed}"
            if not (run / AGENT_FILE).exists():  # a finished run needs neither demos nor training
                collect(task, demos, data, seed=DEMO_SEED + 1000 * seed, noise=NOISE,
                        workers=workers, progress=progress, language=language, **obs,
                        **dr)  # fmt: skip
                train_bc(kind, [data], run, preset=preset, seed=seed, progress=progress,
                         tensorboard=False)  # fmt: skip
            make, overrides = agent_factory_from_run(run, task)
            run_all(make, f"{variant}-s{seed}", {**overrides, **obs})
    result = {
        "task": task,
        "kind": kind,
        "preset": preset,
        "demos": demos,
        "seeds": list(seeds),
        "randomize": list(randomize),
        "magnitude": magnitude,
        "joint": joint,
        "language": language,
        "suite": suite,
        "episodes_per_cell": episodes,
        "eval_seed": EVAL_SEED,
        "seconds": round(time.perf_counter() - start, 1),
        "expert": _aggregate([reports["expert"]]),
        "nominal": _aggregate([reports[f"nominal-s{s}"] for s in seeds]),
        "dr": _aggregate([reports[f"dr-s{s}"] for s in seeds]),
    }
    write_json_atomic(out / "robustness.json", result)
    heatmap(reports, out / "robustness_heatmap.png")
    (out / "robustness.md").write_text(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    """The table: per factor x magnitude, success of the expert and the mean of each training."""
    agents = ("expert", "nominal", "dr")
    lines = [
        (
            f"# Robustness of {result['kind']} on {result['task']}: nominal vs "
            f"domain-randomised training ({', '.join(result['randomize'])})"
        ),
        "",
        (
            f"{result['demos']} demos per agent, seeds {result['seeds']}, "
            f"{result['episodes_per_cell']} episodes per cell (seeds {result['eval_seed']}+), "
            f"suite `{result['suite']}`."
        ),
        "",
        "| family | factor | magnitude | expert | nominal-trained | DR-trained | drop nominal | drop DR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    index = {
        a: {(r["family"], r["factor"], r["magnitude"]): r for r in result[a]["rows"]}
        for a in agents
    }
    for key in index["nominal"]:
        cells = [index[a].get(key, {}) for a in agents]
        value = "recovery_rate" if key[0] == "event" else "success_rate"
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]:g} | "
            + " | ".join(percent(c.get(value)) for c in cells)
            + f" | {percent(cells[1].get('relative_drop'))} | {percent(cells[2].get('relative_drop'))} |"
        )
    lines.append("")
    lines.append("Event rows show the recovery rate (success among episodes the event fired in).")
    for a in agents:
        r = result[a]
        lines.append(
            f"- **{a}**: nominal {percent(r['nominal_success'])}, mean relative drop at the middle "
            f"magnitude {percent(r['mean_relative_drop_middle'])}, all factors combined (middle) "
            f"{percent(r['combined_relative_drop_middle'])}, follows a swapped instruction "
            f"{percent(r['counterfactual_follow_rate'])} (does the old one "
            f"{percent(r['counterfactual_original_goal_rate'])})."
        )
    return "\n".join(lines) + "\n"
