"""Robustness suites: every factor of variation at graded magnitudes, all factors combined, and
world events, through the one harness on fixed seeds, for any agent.

``eval --suite NAME`` writes ``DIR/robustness.json``::

    {"suite": ..., "task": ..., "episodes": N, "seed": S,
     "rows": [{"family", "factor", "magnitude", "success_rate", "ci95", "relative_drop",
               "episodes", ...}, ...],
     "summary": {...}}

with the ``nominal`` row first (``relative_drop`` = 1 - success / nominal success, ``None`` when
the nominal success is 0). Event rows add ``fired`` and the ``recovery_rate`` (success among
episodes in which the event fired); the counterfactual rows add ``original_goal_rate`` (the
agent did what the *original* instruction asked: it ignored the words). Each cell is written
as it finishes, so a killed suite resumes where it stopped. Beside it: ``robustness.md`` and
``robustness.png`` (success against magnitude, one panel per family).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embodied.evaluation.harness import AgentFactory, EvalResult, evaluate, wilson_interval
from envs.events import EVENTS
from envs.factors import FACTORS, FAMILIES, MAGNITUDES
from sandbox_common.atomic import write_json_atomic

MIDDLE = MAGNITUDES["middle"]


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    factors: tuple[str, ...] = ()
    magnitudes: tuple[float, ...] = tuple(MAGNITUDES.values())
    combined: bool = False
    """Also run every factor of the suite at once, at each magnitude."""
    events: tuple[str, ...] = ()
    singles: bool = True
    """Run each factor on its own (a suite of combinations only sets this False)."""
    family_combined: bool = False
    """Also run each family's factors at once, at each magnitude: where a combined drop
    comes from."""


def _family(family: str) -> tuple[str, ...]:
    return tuple(n for n, f in FACTORS.items() if f.family == family)


SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite(
            "all",
            "every factor at low, middle and high magnitude, and all of them combined",
            tuple(FACTORS),
            combined=True,
        ),
        *(Suite(fam, f"the {fam} factors at three magnitudes", _family(fam)) for fam in FAMILIES),
        Suite(
            "middle",
            "every factor at the middle magnitude, and all of them combined (the targets' cells)",
            tuple(FACTORS),
            (MIDDLE,),
            combined=True,
        ),
        Suite(
            "families",
            "each family's factors combined at the middle magnitude, and all of them combined",
            tuple(FACTORS),
            (MIDDLE,),
            combined=True,
            singles=False,
            family_combined=True,
        ),
        Suite(
            "quick",
            "one factor per family at the middle magnitude, and those combined",
            (
                "light_intensity",
                "object_friction",
                "observation_delay",
                "action_noise",
                "paraphrase",
            ),
            (MIDDLE,),
            combined=True,
        ),
        Suite(
            "events",
            "every world event (recovery rate: success among episodes it fired in)",
            events=tuple(EVENTS),
        ),
    )
}


def check_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; known suites: {', '.join(SUITES)}")
    return SUITES[name]


def cell_key(family: str, factor: str, magnitude: float) -> str:
    """How a cell is named in progress lines and found again on resume."""
    return f"{family}/{factor}/{magnitude:g}"


@dataclass(frozen=True)
class Cell:
    family: str
    factor: str
    magnitude: float
    factors: dict[str, float]
    events: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return cell_key(self.family, self.factor, self.magnitude)


def suite_cells(suite: Suite, task: str) -> list[Cell]:
    """The nominal cell, then every factor x magnitude that applies to ``task``, the combined
    cells and the events."""
    cells = [Cell("nominal", "nominal", 0.0, {})]
    names = [n for n in suite.factors if FACTORS[n].applies_to(task)]
    for name in names if suite.singles else ():
        for m in suite.magnitudes:
            cells.append(Cell(FACTORS[name].family, name, m, {name: m}))
    for family in FAMILIES if suite.family_combined else ():
        members = [n for n in names if FACTORS[n].family == family]
        for m in suite.magnitudes if members else ():
            cells.append(Cell("combined", family, m, {n: m for n in members}))
    if suite.combined:
        for m in suite.magnitudes:
            cells.append(Cell("combined", "all", m, {n: m for n in names}))
    for event in suite.events:
        if EVENTS[event].applies_to(task):
            cells.append(Cell("event", event, 1.0, {}, (event,)))
    return cells


def cell_row(cell: Cell, result: EvalResult, nominal: float | None) -> dict[str, Any]:
    episodes = result.per_episode
    row: dict[str, Any] = {
        "family": cell.family,
        "factor": cell.factor,
        "magnitude": cell.magnitude,
        "success_rate": result.success_rate,
        "ci95": list(result.ci95),
        "relative_drop": None,
        "episodes": result.episodes,
        "mean_chain_length": result.mean_chain_length,
    }
    if nominal:
        row["relative_drop"] = 1.0 - result.success_rate / nominal
    if cell.events:
        fired = [e for e in episodes if e["events_fired"]]
        wins = sum(e["success"] for e in fired)
        row["fired"] = len(fired)
        row["recovery_rate"] = wins / len(fired) if fired else None
        row["recovery_ci95"] = list(wilson_interval(wins, len(fired))) if fired else None
    swapped = [e for e in episodes if e["counterfactual"]]
    if swapped:
        row["swapped"] = len(swapped)
        row["follow_rate"] = sum(e["success"] for e in swapped) / len(swapped)
        row["original_goal_rate"] = sum(e["original_goal_reached"] for e in swapped) / len(swapped)
    return row


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures the targets read: mean relative drop over factors at the middle magnitude,
    the combined drop, the counterfactual follow rate, recovery per event."""
    middle = [
        r["relative_drop"]
        for r in rows
        if r["family"] in FAMILIES and r["magnitude"] == MIDDLE and r["relative_drop"] is not None
    ]
    out: dict[str, Any] = {
        "nominal_success": rows[0]["success_rate"],
        "mean_relative_drop_middle": float(np.mean(middle)) if middle else None,
        "combined_relative_drop": {
            f"{r['magnitude']:g}": r["relative_drop"]
            for r in rows
            if r["family"] == "combined" and r["factor"] == "all"
        },
        "recovery_rate": {r["factor"]: r["recovery_rate"] for r in rows if r["family"] == "event"},
    }
    per_family: dict[str, dict[str, float | None]] = {}
    for r in rows:
        if r["family"] == "combined" and r["factor"] != "all":
            per_family.setdefault(r["factor"], {})[f"{r['magnitude']:g}"] = r["relative_drop"]
    if per_family:
        out["family_combined_relative_drop"] = per_family
    swap = [r for r in rows if r["factor"] == "counterfactual" and r.get("swapped")]
    if swap:  # the strongest magnitude the suite ran (the `middle` suite has only 0.5)
        strongest = max(swap, key=lambda r: r["magnitude"])
        out["counterfactual_follow_rate"] = strongest.get("follow_rate")
        out["counterfactual_original_goal_rate"] = strongest.get("original_goal_rate")
    return out


def run_suite(
    evaluate_cell: Callable[[dict[str, Any]], EvalResult],
    suite: Suite,
    task: str,
    out: str | Path,
    meta: dict[str, Any],
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every cell of ``suite`` with ``evaluate_cell(env_overrides)`` and write
    ``out/robustness.json`` after each (cells already there with the same ``meta`` are kept)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "robustness.json"
    report: dict[str, Any] = {"suite": suite.name, "task": task, **meta, "rows": []}
    if path.exists():
        old = json.loads(path.read_text())
        if all(old.get(k) == v for k, v in {"suite": suite.name, "task": task, **meta}.items()):
            report["rows"] = old.get("rows", [])
    done = {cell_key(r["family"], r["factor"], r["magnitude"]): r for r in report["rows"]}
    rows: list[dict[str, Any]] = []
    nominal: float | None = None
    for cell in suite_cells(suite, task):
        row = done.get(cell.key)
        if row is None:
            if progress is not None:
                progress(cell.key)
            result = evaluate_cell({"factors": cell.factors, "events": cell.events})
            row = cell_row(cell, result, nominal)
        if cell.family == "nominal":
            nominal = row["success_rate"]
        rows.append(row)
        report["rows"] = rows
        write_json_atomic(path, report)
    report["summary"] = summarize(rows)
    write_json_atomic(path, report)
    (out / "robustness.md").write_text(markdown(report))
    plot(report, out / "robustness.png")
    return report


def run_agent_suite(
    make_agent: AgentFactory,
    agent: str,
    suite: Suite,
    task: str,
    out: str | Path,
    episodes: int,
    seed: int,
    num_envs: int = 1,
    progress: Callable[[str], None] | None = None,
    **env_overrides: Any,
) -> dict[str, Any]:
    """``suite`` for one agent through the one harness: every cell ``episodes`` episodes from
    ``seed`` (the same seeds in every cell); ``agent`` names it in the report and on resume."""

    def evaluate_cell(extra: dict[str, Any]) -> EvalResult:
        return evaluate(make_agent, task, episodes, seed=seed, num_envs=num_envs,
                        **env_overrides, **extra)  # fmt: skip

    meta = {"agent": agent, "episodes": episodes, "seed": seed}
    return run_suite(evaluate_cell, suite, task, out, meta, progress)


def percent(x: float | None) -> str:
    """``0.25`` -> ``25%``; ``None`` (not measured) -> an empty cell."""
    return "" if x is None else f"{x:.0%}"


def summary_table(reports: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """Per agent and task: nominal success, mean relative drop at the middle magnitude, the
    combined drops, the counterfactual follow rate and the event recovery rates."""
    header = ["agent / task", "nominal", "mean drop (middle)", "combined drop",
              "follows swapped words", "event recovery"]  # fmt: skip
    body = []
    for name, report in reports.items():
        s = report.get("summary", {})
        combined = ", ".join(
            f"{m}: {percent(d)}" for m, d in s.get("combined_relative_drop", {}).items()
        )
        events = ", ".join(f"{k} {percent(v)}" for k, v in s.get("recovery_rate", {}).items())
        body.append([name, percent(s.get("nominal_success")),
                     percent(s.get("mean_relative_drop_middle")), combined,
                     percent(s.get("counterfactual_follow_rate")), events])  # fmt: skip
    return "Robustness (relative drop = 1 - success / nominal)", header, body


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Robustness: {report['task']}, suite `{report['suite']}`",
        "",
        f"{report.get('episodes')} episodes per cell from seed {report.get('seed')}; agent "
        f"`{report.get('agent')}`.",
        "",
        "| family | factor | magnitude | success | 95% CI | relative drop | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        notes = []
        if "fired" in r:
            notes.append(f"fired in {r['fired']}, recovered {percent(r['recovery_rate'])}")
        if "follow_rate" in r:
            notes.append(
                f"followed the new words {percent(r['follow_rate'])}, did the old "
                f"{percent(r['original_goal_rate'])}"
            )
        lo, hi = r["ci95"]
        lines.append(
            f"| {r['family']} | {r['factor']} | {r['magnitude']:g} | {percent(r['success_rate'])} | "
            f"{lo:.0%}-{hi:.0%} | {percent(r['relative_drop'])} | {'; '.join(notes)} |"
        )
    s = report.get("summary", {})
    if s:
        lines.append("")
        if s.get("mean_relative_drop_middle") is not None:
            lines.append(
                f"Mean relative drop over factors at the middle magnitude: "
                f"{percent(s['mean_relative_drop_middle'])}."
            )
        for m, drop in s.get("combined_relative_drop", {}).items():
            lines.append(f"All factors combined at {m}: relative drop {percent(drop)}.")
        for family, drops in s.get("family_combined_relative_drop", {}).items():
            for m, drop in drops.items():
                lines.append(
                    f"The {family} factors combined at {m}: relative drop {percent(drop)}."
                )
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> Path:
    """Success against magnitude, one panel per family, the nominal success dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    nominal = rows[0]["success_rate"]
    families = [f for f in (*FAMILIES, "combined") if any(r["family"] == f for r in rows)]
    fig, axes = plt.subplots(
        1,
        max(len(families), 1),
        figsize=(3.2 * max(len(families), 1), 3.0),
        sharey=True,
        squeeze=False,
    )
    for ax, family in zip(axes[0], families):
        by_factor: dict[str, list[tuple[float, float]]] = {}
        for r in rows:
            if r["family"] == family:
                by_factor.setdefault(r["factor"], []).append((r["magnitude"], r["success_rate"]))
        for factor, points in by_factor.items():
            xs, ys = zip(*sorted([(0.0, nominal), *points]))
            ax.plot(xs, ys, marker="o", label=factor)
        ax.axhline(nominal, color="grey", linestyle="--", linewidth=1)
        ax.set_title(family)
        ax.set_xlabel("magnitude")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=6, loc="lower left")
    axes[0][0].set_ylabel("success rate")
    fig.suptitle(f"{report['task']}: robustness ({report.get('agent')})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def column_label(row: dict[str, Any]) -> str:
    """A row's name in a heatmap: the factor, or what a combined cell combines."""
    return f"{row['factor']} combined" if row["family"] == "combined" else row["factor"]


def heatmap(reports: dict[str, dict[str, Any]], path: Path, magnitude: float = MIDDLE) -> Path:
    """Agents x factors: success at ``magnitude`` (nominal first, combined last), one row per
    agent (``reports``: name -> robustness report)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns: list[str] = ["nominal"]
    for report in reports.values():
        for r in report["rows"]:
            label = column_label(r)
            if (
                r["family"] != "event"
                and r["magnitude"] in (0.0, magnitude)
                and label not in columns
            ):
                columns.append(label)
    grid = np.full((len(reports), len(columns)), np.nan)
    for i, report in enumerate(reports.values()):
        for r in report["rows"]:
            label = column_label(r)
            if label in columns and r["magnitude"] in (0.0, magnitude):
                grid[i, columns.index(label)] = r["success_rate"]
    fig, ax = plt.subplots(figsize=(0.45 * len(columns) + 2.5, 0.45 * len(reports) + 1.8))
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=70, ha="right", fontsize=7)
    ax.set_yticks(range(len(reports)), list(reports), fontsize=7)
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(
                j,
                i,
                f"{value:.0%}",
                ha="center",
                va="center",
                fontsize=5,
                color="white" if value < 0.6 else "black",
            )
    fig.colorbar(image, ax=ax, label=f"success at magnitude {magnitude:g}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
