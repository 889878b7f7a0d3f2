"""``bench headline``: the comparison the project exists for, in one results file. Every agent
row on every task, each cell from several training seeds: nominal success (Wilson 95% interval
per seed, the spread over seeds), chain links, success under each held-out language phenomenon,
the ``middle`` robustness suite and the ``events`` suite on every task their factors apply to,
training cost and System 1 / System 2 latency. Resumable: each part of each cell is written as
soon as it is measured and skipped when rerun.

Runs are found by layout (what ``benchmarks/headline.sh`` trains)::

    RUNS/<kind>/<task>/seed_<k>/       single-task networks (reach, push, pick-place, stack)
    RUNS/<kind>/six-tasks/seed_<k>/    one network over all six tasks (every task's column)

``shipped=True`` adds the agents in ``assets/agents`` as seed 0 of their network where ``RUNS``
has none (what ``headline.sh --quick`` evaluates: nothing to train).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embodied.evaluation.harness import evaluate
from embodied.evaluation.robustness import SUITES, run_agent_suite
from embodied.saved_agents import agent_factory_from_run, load_bundle
from envs.instructions import GENERATED_SPLITS
from envs.language import has_split
from sandbox_common.atomic import write_json_atomic

TASKS: tuple[str, ...] = ("reach", "push", "pick-place", "stack", "sort", "chain")
SINGLE_TASKS: tuple[str, ...] = ("reach", "push", "pick-place", "stack")
"""Tasks with a single-task network of their own; sort and chain come from the six-task one."""
SIX_TASKS = "six-tasks"
PARTS: tuple[str, ...] = ("nominal", "language", "middle", "events")
HELDOUT = tuple(s for s in GENERATED_SPLITS if s.startswith("heldout-"))
EVAL_SEED = 0
SHIPPED = Path(__file__).resolve().parents[2] / "assets" / "agents"


@dataclass(frozen=True)
class Row:
    """One row of the table: an agent kind, what it reads, its System 2."""

    name: str
    kind: str
    reads: str
    planner: str = "learned"


ROWS: tuple[Row, ...] = (
    Row("end-to-end VLA", "end-to-end", "learned language"),
    Row("hierarchical VLA", "hierarchical", "learned language"),
    Row("hierarchical VLA + oracle System 2", "hierarchical", "learned language", "oracle"),
    Row("bc-keypoints", "bc-keypoints", "parsed language"),
    Row("hierarchical-keypoints", "hierarchical-keypoints", "parsed language"),
    Row("bc-state", "bc-state", "privileged state"),
)


def find_runs(runs: Path | None, seeds: tuple[int, ...], shipped: bool) -> dict[tuple, Path]:
    """``{(kind, network, seed): run}`` of every finished run in the layout (and the shipped
    agents as seed 0 where the layout has none)."""
    found: dict[tuple, Path] = {}
    kinds = {r.kind for r in ROWS}
    for kind in sorted(kinds):
        for network in (*SINGLE_TASKS, SIX_TASKS):
            for seed in seeds:
                run = (runs / kind / network / f"seed_{seed}") if runs else None
                if run is not None and (run / "agent.pt").exists():
                    found[(kind, network, seed)] = run
    for run in sorted(SHIPPED.glob("*/agent.pt")) if shipped else ():
        bundle = load_bundle(run.parent)
        network = SIX_TASKS if len(bundle.tasks) == len(TASKS) else bundle.tasks[0]
        if len(bundle.tasks) in (1, len(TASKS)) and bundle.kind in kinds:
            found.setdefault((bundle.kind, network, 0), run.parent)
    return found


def cells_of(found: dict[tuple, Path]) -> list[tuple[Row, str, str, int, Path]]:
    """Every (row, network, task, seed, run) to measure: a single-task network on its task, the
    six-task one on all six."""
    out = []
    for row in ROWS:
        for (kind, network, seed), run in sorted(found.items(), key=lambda kv: str(kv[0])):
            if kind != row.kind:
                continue
            for task in TASKS if network == SIX_TASKS else (network,):
                out.append((row, network, task, seed, run))
    return out


def _measure(part: str, row: Row, task: str, run: Path, settings: dict[str, Any], out: Path):
    make, overrides = agent_factory_from_run(run, task, planner=row.planner)
    episodes, num_envs = settings["episodes"], settings["num_envs"]
    if part == "nominal":
        r = evaluate(make, task, episodes, seed=EVAL_SEED, num_envs=num_envs, **overrides)
        latency = {k: v for k, v in r.latency_ms.items() if k.endswith("_mean")}
        return {"success": r.success_rate, "ci95": list(r.ci95), "episodes": r.episodes,
                "links": r.mean_links_fraction, "latency_ms": latency}  # fmt: skip
    if part == "language":
        cells = {}
        for split in (s for s in HELDOUT if has_split(task, s)):
            r = evaluate(make, task, settings["language_episodes"], seed=EVAL_SEED,
                         num_envs=num_envs, **{**overrides, "language": split})  # fmt: skip
            cells[split] = r.success_rate
        return cells
    suite = SUITES[part]
    report = run_agent_suite(make, row.name, suite, task, out, settings["suite_episodes"],
                             EVAL_SEED, num_envs=num_envs, **overrides)  # fmt: skip
    return report["summary"]


def bench_headline(
    out: str | Path,
    runs: str | Path | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    shipped: bool = False,
    parts: tuple[str, ...] = PARTS,
    episodes: int = 50,
    language_episodes: int = 50,
    suite_episodes: int = 20,
    num_envs: int = 2,
    log=print,
) -> dict[str, Any]:
    """Measure every cell's ``parts`` and write ``OUT/headline.json``, ``headline.md`` and
    ``headline.png``; returns the results (module docstring)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "headline.json"
    settings = {"episodes": episodes, "language_episodes": language_episodes,
                "suite_episodes": suite_episodes, "num_envs": num_envs}  # fmt: skip
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if results.get("settings", settings) != settings:
        raise ValueError(
            f"{path} was measured with {results['settings']}, not {settings}: "
            "give another --out or the same settings"
        )
    results["settings"] = settings
    cells = results.setdefault("cells", {})
    found = find_runs(Path(runs) if runs else None, tuple(seeds), shipped)
    if not found:
        raise FileNotFoundError(f"no agent runs under {runs} (layout: RUNS/KIND/TASK/seed_K)")
    for row, network, task, seed, run in cells_of(found):
        key = f"{row.name}|{network}|{task}|{seed}"
        cell = cells.setdefault(key, {"row": row.name, "network": network, "task": task,
                                      "seed": seed, "run": str(run)})  # fmt: skip
        cell.setdefault("train_seconds", _train_seconds(run))
        for part in parts:
            if part in cell:
                continue
            log(f"{key}: {part}")
            suite_dir = out / "suites" / row.name.replace(" ", "_") / network / task / str(seed)
            cell[part] = _measure(part, row, task, run, settings, suite_dir / part)
            write_json_atomic(path, results)
    results["rows"] = summarize(cells)
    write_json_atomic(path, results)
    (out / "headline.md").write_text(markdown(results))
    figure(results, out / "headline.png")
    return results


def _train_seconds(run: Path) -> float | None:
    report = run / "train.json"
    return json.loads(report.read_text()).get("seconds_this_call") if report.exists() else None


def summarize(cells: dict[str, Any]) -> dict[str, Any]:
    """Per row, network and task: the mean over seeds of each measured figure, the seeds'
    spread (min, max) of success and each seed's interval."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for cell in cells.values():
        groups.setdefault((cell["row"], cell["network"], cell["task"]), []).append(cell)
    out: dict[str, Any] = {}
    for (row, network, task), group in groups.items():
        group = sorted(group, key=lambda c: c["seed"])
        s: dict[str, Any] = {"seeds": [c["seed"] for c in group]}
        nominal = [c["nominal"] for c in group if "nominal" in c]
        if nominal:
            success = [n["success"] for n in nominal]
            s |= {"success": float(np.mean(success)), "spread": [min(success), max(success)],
                  "ci95": [n["ci95"] for n in nominal], "episodes": nominal[0]["episodes"],
                  "links": float(np.mean([n["links"] for n in nominal]))}  # fmt: skip
            for name in ("system1_mean", "system2_mean"):
                ms = [n["latency_ms"][name] for n in nominal if name in n["latency_ms"]]
                if ms:
                    s[name.replace("_mean", "_ms")] = float(np.mean(ms))
        language = [c["language"] for c in group if c.get("language")]
        if language:
            s["language"] = {k: float(np.mean([x[k] for x in language])) for k in language[0]}
        for suite, key in (("middle", "mean_relative_drop_middle"), ("events", "recovery_rate")):
            values = [c[suite][key] for c in group if c.get(suite)]
            if suite == "events":
                values = [np.mean([v for v in x.values() if v is not None]) for x in values if x]
            values = [v for v in values if v is not None]
            if values:
                s[f"{suite}_{'drop' if suite == 'middle' else 'recovery'}"] = float(np.mean(values))
        seconds = [c["train_seconds"] for c in group if c.get("train_seconds")]
        if seconds:
            s["train_minutes"] = float(np.mean(seconds)) / 60
        out.setdefault(row, {}).setdefault(network, {})[task] = s
    return out


def task_column(rows: dict[str, Any], row: str, task: str) -> dict[str, Any] | None:
    """A row's figures on a task: the single-task network's for the short tasks (the six-task
    one where there is none), the six-task network's for sort and chain."""
    networks = rows.get(row, {})
    for network in (task, SIX_TASKS):
        if task in networks.get(network, {}):
            return networks[network][task]
    return None


def verdicts(rows: dict[str, Any]) -> dict[str, str]:
    """Per task: does the hierarchical VLA beat the end-to-end one beyond the seeds' spread, and
    how much of the hierarchical VLA's loss is planning (the oracle's lead)."""
    out = {}
    for task in TASKS:
        e, h = task_column(rows, ROWS[0].name, task), task_column(rows, ROWS[1].name, task)
        o = task_column(rows, ROWS[2].name, task)
        if not (e and h and "success" in e and "success" in h):
            continue
        if min(len(e["seeds"]), len(h["seeds"])) > 1:  # the seeds' spread
            (e_lo, e_hi), (h_lo, h_hi), what = e["spread"], h["spread"], "the seeds' spread"
        else:  # one seed: its Wilson interval
            (e_lo, e_hi), (h_lo, h_hi) = e["ci95"][0], h["ci95"][0]
            what = "the 95% intervals (one seed)"
        if h_lo > e_hi:
            verdict = f"hierarchical beyond {what}"
        elif e_lo > h_hi:
            verdict = f"end-to-end beyond {what}"
        else:
            verdict = f"within {what}"
        if o and "success" in o:
            verdict += f"; the oracle System 2 adds {100 * (o['success'] - h['success']):+.0f} pts"
        out[task] = verdict
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}"


def markdown(results: dict[str, Any]) -> str:
    """Success per row and task (mean over seeds [min-max], links on chain), then each row's
    held-out language share, robustness drop, event recovery, cost and latency."""
    rows, reads = results["rows"], {r.name: r.reads for r in ROWS}
    names = [r.name for r in ROWS if r.name in rows]
    lines = ["| agent | reads | " + " | ".join(TASKS) + " |", "|---" * (len(TASKS) + 2) + "|"]
    for name in names:
        cells = []
        for task in TASKS:
            c = task_column(rows, name, task)
            if not c or "success" not in c:
                cells.append("-")
                continue
            text = f"{_pct(c['success'])} [{_pct(c['spread'][0])}-{_pct(c['spread'][1])}]"
            cells.append(text + (f" ({_pct(c['links'])} links)" if task == "chain" else ""))
        lines.append(f"| {name} | {reads[name]} | " + " | ".join(cells) + " |")
    header = ("| agent | held-out language (of nominal) | middle suite drop | event recovery "
              "| training (min) | System 1 ms | System 2 ms | seeds |")  # fmt: skip
    lines += ["", header, "|---" * 8 + "|"]
    for name in names:
        columns = [c for t in TASKS if (c := task_column(rows, name, t))]
        shares = [np.mean(list(c["language"].values())) / c["success"] for c in columns
                  if c.get("language") and c.get("success")]  # fmt: skip

        def mean(key: str, scale: float = 1.0, digits: int = 0, columns=columns) -> str:
            v = [c[key] for c in columns if c.get(key) is not None]
            return f"{scale * np.mean(v):.{digits}f}" if v else "-"

        seeds = max((len(c["seeds"]) for c in columns), default=0)
        lines.append(
            f"| {name} | {_pct(float(np.mean(shares))) if shares else '-'} | "
            f"{mean('middle_drop', 100)} | {mean('events_recovery', 100)} | "
            f"{mean('train_minutes', 1, 1)} | {mean('system1_ms', 1, 2)} | "
            f"{mean('system2_ms', 1, 2)} | {seeds} |"
        )
    verdict = verdicts(rows)
    if verdict:
        lines += ["", *(f"- **{task}**: {text}" for task, text in verdict.items())]
    s = results["settings"]
    note = (f"Success in % over {s['episodes']} episodes per seed (held-out seeds from "
            f"{EVAL_SEED}), mean over training seeds [lowest-highest].")  # fmt: skip
    if any(c.get(k) for c in _columns(rows) for k in ("middle_drop", "events_recovery")):
        note += f" Suites: {s['suite_episodes']} episodes per cell."
    lines += ["", note]
    return "\n".join(lines) + "\n"


def _columns(rows: dict[str, Any]):
    """Every (row, network, task) summary."""
    return (c for networks in rows.values() for tasks in networks.values() for c in tasks.values())


def figure(results: dict[str, Any], path: Path) -> Path:
    """Success per task and row: bars at the mean over seeds, whiskers over the seeds' lowest
    Wilson bound to highest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    names = [r.name for r in ROWS if r.name in rows]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        xs, ys, lo, hi = [], [], [], []
        for t, task in enumerate(TASKS):
            c = task_column(rows, name, task)
            if c and "success" in c:
                xs.append(t + (i - (len(names) - 1) / 2) * width)
                ys.append(100 * c["success"])
                lo.append(ys[-1] - 100 * min(b[0] for b in c["ci95"]))
                hi.append(100 * max(b[1] for b in c["ci95"]) - ys[-1])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=name)
    ax.set_xticks(range(len(TASKS)), TASKS)
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
