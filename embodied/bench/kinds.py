"""Benchmark of agent kinds side by side: end-to-end vs hierarchical, several training seeds,
every task, and the latency of System 1 and System 2.

Every hierarchical kind is also evaluated under the oracle System 2 (the env's own plan: how
much of the gap is System 1, how much planning), and every kind on held-out language
(``language_splits``) beside the in-distribution seeds. Every agent is trained from the same
demos with the same update budget (``train_bc``) and evaluated by the one harness on the same
seed list. Results are written after each evaluation, so a killed benchmark resumes where it
stopped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import envs
from embodied.evaluation.compare import training_cost
from embodied.evaluation.harness import evaluate
from embodied.saved_agents import agent_factory_from_run, load_bundle
from embodied.training.baselines import train_bc
from embodied.training.data_split import AGENT_FILE
from envs.language import HELDOUT_SPLITS, has_split
from policies.bundles import env_overrides
from policies.perceived_scene import frame_inputs
from policies.two_systems import HIERARCHICAL_KINDS, HierarchicalAgent
from sandbox_common.atomic import write_json_atomic
from sandbox_common.paths import portable_path
from world_models.checkpoint import load_checkpoint

LONG_HORIZON = ("sort", "chain")
VLA = ("end-to-end", "hierarchical")
"""The VLA kinds (learned language); ``bc-keypoints`` / ``hierarchical-keypoints`` are the same
pair on parsed language, ``bc-pixels`` the pixel floor."""
FLOOR = "bc-pixels"


def variants(kind: str, language_splits: tuple[str, ...]):
    """(label, evaluation settings) of every evaluation a run of ``kind`` gets."""
    out = [("eval", {})]
    if kind in HIERARCHICAL_KINDS:
        out.append(("eval_oracle", {"planner": "oracle"}))
    out += [(f"eval_{split}", {"language": split}) for split in language_splits]
    return out


def run_name(kind: str, seed: int) -> str:
    return f"{kind}-s{seed}"


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    import json

    return json.loads(path.read_text())


def measure_latency(
    run: str | Path, repeats: int = 200, task: str = "chain", world_model: Any = None
) -> dict[str, float]:
    """Milliseconds, one thread, batch 1, at the run's sizes: System 1 per chunk inference; for a
    hierarchical agent System 2 per monitoring call (planner only) and per deliberation (planner +
    imagining every candidate in the world model). An agent on perceived objects acts every step:
    its System 1 time includes perceiving the frame, its System 2 reads the scene already
    perceived. ``world_model``: a world model of the perceived objects for a
    ``hierarchical-keypoints`` System 2 to deliberate with."""
    bundle = load_bundle(run)
    overrides = env_overrides(bundle)
    task = task if task in bundle.tasks else bundle.tasks[0]
    env = envs.make(task, **overrides)
    obs, info = env.reset(seed=0)
    env.close()
    extra = {"world_model": world_model} if world_model is not None else {}
    agent = bundle.make(seed=0, task=task, **extra)
    agent.reset(info["instruction"])
    agent.act(obs)  # a hierarchical agent picks its first subtask (System 1's text) here

    def timed(fn) -> tuple[float, float]:
        for _ in range(10):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return float(np.median(times)), float(np.percentile(times, 95))

    system1 = getattr(agent, "system1", agent)  # an end-to-end agent is all System 1
    out: dict[str, float] = {}
    # on perceived objects a chunk is one step, perceiving a new frame included
    out["system1_chunk_ms_median"], out["system1_chunk_ms_p95"] = timed(
        lambda: system1.act(dict(obs))
    )
    perception = system1.scene.perception
    images, proprio = frame_inputs(perception, obs)
    # the parts: perceiving the frame (its heatmap networks alone), then System 1's network
    out["perception_ms_median"], _ = timed(lambda: perception(images, proprio))
    out["perception_networks_ms_median"], _ = timed(lambda: perception.heatmaps(images))
    if hasattr(system1, "inputs"):  # parsed hierarchical: the subtask's features
        now = system1.memory.inputs(system1.inputs(obs)[0])  # with its past steps, if read
        network, x = system1.policy, torch.from_numpy(now)[None]
    else:  # the instruction's (or the subtask's) link features
        network = system1.policy.state
        x = torch.from_numpy(system1.decision_input(obs))[None]
    with torch.no_grad():
        out["system1_network_ms_median"], _ = timed(lambda: network(x))
    if isinstance(agent, HierarchicalAgent):
        agent.index = 0

        def deliberate():
            view = agent._assess(obs)
            return agent._deliberate(view.log_probs[1])

        out["system2_monitor_ms_median"], out["system2_monitor_ms_p95"] = timed(
            lambda: agent._assess(obs)
        )
        out["system2_decision_ms_median"], out["system2_decision_ms_p95"] = timed(deliberate)
        out["system2_world_model_check"] = agent.check is not None
    elif hasattr(agent, "speaker"):  # System 2 says the next subtask, word by word

        def read_and_deliberate():  # the first deliberation of an episode, its slowest
            agent.plan = None
            agent._deliberate(obs)

        out["system2_decision_ms_median"], out["system2_decision_ms_p95"] = timed(
            read_and_deliberate
        )
    return out


def bench_agents(
    data: list[str | Path],
    out: str | Path,
    seeds: tuple[int, ...] = (0, 1, 2),
    kinds: tuple[str, ...] = (*VLA, FLOOR),
    episodes: int = 20,
    preset: str = "default",
    steps: int | None = None,
    floor_steps: int | None = None,
    tasks: tuple[str, ...] | None = None,
    language_splits: tuple[str, ...] = HELDOUT_SPLITS,
    num_envs: int = 2,
    progress: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train and evaluate every (kind, seed); returns and writes ``OUT/results.json``. Held-out
    language is evaluated on the tasks that have such instructions."""
    out = Path(out)
    results_path = out / "results.json"
    results = _read(results_path)
    results.setdefault("runs", {})
    results["settings"] = {
        "data": [portable_path(d) for d in data],
        "seeds": list(seeds),
        "kinds": list(kinds),
        "episodes": episodes,
        "preset": preset,
        "language_splits": list(language_splits),
        "eval_seeds": f"0..{episodes - 1} (skipping starts that are already a success)",
    }
    for seed in seeds:
        for kind in kinds:
            name = run_name(kind, seed)
            run_dir = out / "runs" / name
            entry = results["runs"].setdefault(name, {"kind": kind, "seed": seed})
            if not (run_dir / AGENT_FILE).exists():
                train_bc(kind, list(data), run_dir, preset=preset, seed=seed,
                         steps=floor_steps if kind == FLOOR else steps,
                         progress=progress, device=device)  # fmt: skip
            _record_training(entry, run_dir)
            trained_tasks = load_checkpoint(run_dir / AGENT_FILE, "agent")["tasks"]
            for label, settings in variants(kind, language_splits):
                split = settings.get("language")
                for task in tasks or trained_tasks:
                    if task in entry.get(label, {}) or (split and not has_split(task, split)):
                        continue
                    entry.setdefault(label, {})[task] = _evaluate(
                        run_dir, task, episodes, num_envs, progress, settings
                    )
                    write_json_atomic(results_path, results)
                    r = entry[label][task]
                    print(
                        f"{name} {label} {task}: success {r['success_rate']:.0%}, "
                        f"links {r['mean_chain_length']:.2f}",
                        flush=True,
                    )
    torch.set_num_threads(1)
    results["latency"] = {}
    for kind in kinds:
        if kind != FLOOR:
            results["latency"][kind] = measure_latency(out / "runs" / run_name(kind, seeds[0]))
    results["summary"] = summarize(results)
    write_json_atomic(results_path, results)
    return results


def _record_training(entry: dict[str, Any], run_dir: Path) -> None:
    """Training cost from the run's own report: seconds and updates per network."""
    cost = training_cost(run_dir)
    entry["train_seconds"] = cost["train_seconds"]
    entry["updates"] = cost["updates_by_part"]


def _evaluate(
    run_dir: Path, task: str, episodes: int, num_envs: int, progress: bool, settings: dict
) -> dict[str, Any]:
    make, overrides = agent_factory_from_run(
        run_dir,
        task,
        world_model_check=settings.get("world_model_check", True),
        planner=settings.get("planner", "learned"),
    )
    if "language" in settings:
        overrides["language"] = settings["language"]
    result = evaluate(
        make, task, episodes, seed=0, num_envs=num_envs, progress=progress, **overrides
    )
    return {
        "success_rate": result.success_rate,
        "ci95": list(result.ci95),
        "mean_chain_length": result.mean_chain_length,
        "mean_links_fraction": result.mean_links_fraction,
        "latency_ms": result.latency_ms,
        "seconds": result.seconds,
    }


def merge_results(paths: list[str | Path]) -> dict[str, Any]:
    """Combine the ``results.json`` of benchmark processes run side by side (e.g. one per seed)."""
    merged: dict[str, Any] = {"runs": {}, "latency": {}}
    for path in paths:
        part = _read(Path(path))
        if not part:
            continue
        merged["runs"].update(part.get("runs", {}))
        merged["latency"].update(part.get("latency", {}))
        settings = dict(part["settings"])
        if "settings" in merged:
            for key in ("seeds", "kinds"):
                settings[key] = sorted(set(merged["settings"][key]) | set(settings[key]))
        merged["settings"] = settings
    merged["summary"] = summarize(merged)
    return merged


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Mean and std over seeds per (kind, head, variant, task), and the hierarchical margin."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    suffix = {"eval": "", "eval_oracle": "-oracle"}
    for entry in results["runs"].values():
        for label in entry:
            if not label.startswith("eval"):
                continue
            for task, r in entry[label].items():
                key = entry["kind"] + suffix.get(label, "-" + label.removeprefix("eval_"))
                cell = table.setdefault(key, {}).setdefault(task, {"success": [], "links": []})
                cell["success"].append(r["success_rate"])
                cell["links"].append(r["mean_chain_length"])
    summary: dict[str, Any] = {}
    for key, per_task in table.items():
        summary[key] = {
            task: {
                "success_mean": float(np.mean(c["success"])),
                "success_std": float(np.std(c["success"])),
                "links_mean": float(np.mean(c["links"])),
                "seeds": len(c["success"]),
            }
            for task, c in per_task.items()
        }
    pairs = [("vla", "end-to-end", "hierarchical"),
             ("keypoints", "bc-keypoints", "hierarchical-keypoints")]  # fmt: skip
    margins = {}
    for name, e2e_key, hier_key in pairs:
        e2e, hier = summary.get(e2e_key, {}), summary.get(hier_key, {})
        for task in LONG_HORIZON:
            if task in e2e and task in hier:
                margins[f"{name}/{task}"] = {
                    "success_points": 100
                    * (hier[task]["success_mean"] - e2e[task]["success_mean"]),
                    "links": hier[task]["links_mean"] - e2e[task]["links_mean"],
                }
    return {"table": summary, "hierarchical_minus_end_to_end": margins}


def format_table(results: dict[str, Any]) -> str:
    """A markdown table: success mean ± std over seeds (and links for long-horizon tasks)."""
    table = results["summary"]["table"]
    tasks = sorted({t for per in table.values() for t in per})
    lines = ["| agent | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for key in sorted(table):
        cells = []
        for task in tasks:
            c = table[key].get(task)
            if c is None:
                cells.append("-")
                continue
            text = f"{100 * c['success_mean']:.0f}% ± {100 * c['success_std']:.0f}"
            if task in LONG_HORIZON:
                text += f" ({c['links_mean']:.2f} links)"
            cells.append(text)
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
