"""System 2's slot order, ablated on one trained ``hierarchical-keypoints`` agent (issue 10).

The planner (``ObjectPlanner``) reads the instruction's links either *active first* (the layout
System 1 reads: the first undone link in slot 0, rotated by the geometry's done bits) or *in the
instruction's order* (link ``k`` in slot ``k``). This keeps the agent's perception and System 1
and retrains only System 2, from scratch, once per order, on what perception reports on the
training frames (the second stage's data), then evaluates each variant through the one harness
on held-out seeds. Perceived tables are cached under ``--out`` (perceiving six tasks' demos takes
about 7 minutes on one core; loading them holds ~7 GB until they are perceived).

    python benchmarks/planner_slots.py --run RUN --data D [D ...] --out DIR \\
        --tasks sort,chain --episodes 30 --seed 50
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from embodied.evaluation.harness import evaluate
from embodied.saved_agents import agent_factory_from_run, load_bundle
from embodied.training import keypoints
from embodied.training.baselines import load_demos, open_datasets
from embodied.training.data_split import split_episodes
from envs.task_features import SLOT_ORDERS
from policies.object_planner import ObjectPlanner
from sandbox_common.atomic import atomic_write, write_json_atomic

KIND = "hierarchical-keypoints"


def perceived_demos(policy, run: str, data: list[str], cache: Path) -> dict[str, tuple]:
    """``{"train" | "val": (demos, tables)}``: the demos (their images dropped once perceived)
    and the tables ``run``'s perception reports on them, cached in ``cache`` (written
    atomically; a cache made from another run or other data is refused, not reused)."""
    source = {"run": str(Path(run).resolve()), "data": [str(Path(d).resolve()) for d in data]}
    made_from = cache / "perceived.json"
    if made_from.exists() and json.loads(made_from.read_text()) != source:
        raise SystemExit(
            f"{cache} caches perception of {made_from.read_text()}, not of {source}; "
            "use a new --out"
        )
    write_json_atomic(made_from, source)
    datasets, _ = open_datasets(data, KIND)
    out = {}
    for name, pairs in zip(("train", "val"), split_episodes(datasets)):
        demos = load_demos(datasets, KIND, pairs)
        file = cache / f"perceived-{name}.npy"
        if file.exists():
            tables = np.load(file)
        else:
            tables = keypoints.perceived(policy, demos)
            atomic_write(file, lambda fh, t=tables: np.save(fh, t))
        demos.images = None  # 7 GB for six tasks' demos; System 2 reads only the tables
        out[name] = (demos, tables)
    return out


def fit_planner(config, arrays: dict[str, tuple], steps: int, batch: int, seed: int):
    """A fresh System 2 trained on ``arrays``; returns it and its validation metrics."""
    torch.manual_seed(seed)
    planner = ObjectPlanner(config.planner_hidden, config.max_subtasks)
    planner.normalizer.fit(arrays["train"][1]["features"])
    optimizer = torch.optim.Adam(planner.parameters(), lr=1e-3)
    sample = keypoints.decision_sampler(KIND, *arrays["train"], batch)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        loss, _ = planner.loss(sample(rng))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    validation = keypoints.decision_sampler(KIND, *arrays["val"], 2048)
    with torch.no_grad():
        _, metrics = planner.loss(validation(np.random.default_rng(seed + 1)))
    return planner.eval(), metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a trained hierarchical-keypoints run")
    parser.add_argument("--data", nargs="+", required=True, help="the run's demo directories")
    parser.add_argument("--out", required=True)
    parser.add_argument("--tasks", default="sort,chain")
    parser.add_argument("--orders", default=",".join(SLOT_ORDERS))
    parser.add_argument("--steps", type=int, default=6000, help="System 2 updates per order")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=50, help="first evaluation seed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = args.tasks.split(",")
    bundle = load_bundle(args.run)
    if bundle.kind != KIND:
        raise SystemExit(f"{args.run} is a {bundle.kind!r} agent; this ablates {KIND!r}")
    results: dict[str, dict] = {"original": {}}
    for task in tasks:  # the agent as trained, on the same seeds
        make, overrides = agent_factory_from_run(args.run, task)
        r = evaluate(make, task, args.episodes, seed=args.seed, **overrides)
        results["original"][task] = {"success_rate": r.success_rate, "ci95": list(r.ci95)}
    perceived = perceived_demos(bundle.policy, args.run, args.data, out)
    for order in args.orders.split(","):
        start = time.perf_counter()
        arrays = {
            name: (demos, keypoints.decision_arrays(KIND, demos, tables, True, order))
            for name, (demos, tables) in perceived.items()
        }
        config = replace(bundle.policy.config, planner_slots=order)
        planner, metrics = fit_planner(config, arrays, args.steps, args.batch, seed=0)
        variant = load_bundle(args.run)
        variant.policy.heads.planner = planner
        variant.policy.config = config
        run = out / f"slots-{order}"
        run.mkdir(exist_ok=True)
        variant.save(run / "agent.pt")
        row: dict = {"validation": metrics, "seconds": round(time.perf_counter() - start, 1)}
        for task in tasks:
            make, overrides = agent_factory_from_run(run, task)
            r = evaluate(make, task, args.episodes, seed=args.seed, **overrides)
            row[task] = {"success_rate": r.success_rate, "ci95": list(r.ci95)}
        results[order] = row
        print(order, {t: row[t]["success_rate"] for t in tasks}, flush=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("run", "data", "out")}
    (out / "results.json").write_text(json.dumps({"settings": settings, **results}, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
