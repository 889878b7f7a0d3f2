"""How well the grounded VLA's language path reads instructions it never saw: the grounder
alone (no perception, no physics beyond each episode's reset), trained on the ``varied`` split
(half the instructions saying another meaning of the same scene, as the VLA's training draws
them) and scored on held-out scenes under every held-out phenomenon by instruction accuracy
(every link's object, destination, direction and push bit right).

    python benchmarks/language_grounding.py --steps 3000 --out benchmarks/results/language-grounding.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import envs
from envs.instructions import GENERATED_SPLITS, describe
from policies.grounded_vla.config import PRESETS
from policies.grounded_vla.links import link_targets, plan_links
from policies.grounded_vla.model import TARGET_KEYS, LanguageGrounder
from policies.grounded_vla.tokenizer import add_typos
from policies.grounded_vla.training import COUNTERFACTUAL_SHARE, counterfactual_plan
from policies.perception import identity_table

TASKS = ("reach", "push", "pick-place", "stack", "sort", "chain")


def scenes(task: str, seeds: range):
    """(first table, plan, scene names) of each seed's episode."""
    env = envs.make(task, obs_mode="state")
    out = []
    try:
        kinds = tuple(o.kind for o in env.objects)
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            table = identity_table(obs["object_state"], kinds)[0]
            names = [f"{env._episode.colors[o.name]}_{o.kind}" for o in env.objects]
            out.append((task, table, list(env.plan), names))
    finally:
        env.close()
    return out


def batch(model, episodes, rng, split, typo_rate, n, counterfactual=False):
    picks = rng.integers(0, len(episodes), n)
    texts, tables, targets = [], [], []
    for i in picks:
        task, table, plan, names = episodes[i]
        if counterfactual and task != "sort" and rng.random() < COUNTERFACTUAL_SHARE:
            plan = counterfactual_plan(plan, names, rng)  # as the VLA's training draws them
        text, _ = describe(task, plan, names, rng, split)
        texts.append(add_typos(text, rng, typo_rate))
        tables.append(table)
        targets.append(link_targets(plan_links([s.label for s in plan])))
    out = {"tokens": model.encode(texts), "first_table": np.stack(tables)}
    for k in TARGET_KEYS:
        out[f"link_{k}"] = np.stack([t[k] for t in targets])
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--train-scenes", type=int, default=300, help="per task")
    parser.add_argument("--eval-episodes", type=int, default=300, help="per task and split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a GroundedVLAConfig field (ints only), e.g. text_layers=2")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    config = replace(PRESETS["default"], **{k: int(v) for k, v in (a.split("=") for a in args.set)})
    model = LanguageGrounder(config)
    train = [e for t in TASKS for e in scenes(t, range(100000, 100000 + args.train_scenes))]
    held = {t: scenes(t, range(100)) for t in TASKS}
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for step in range(args.steps):
        loss, info = model.loss(batch(model, train, rng, "varied", config.typo_rate,
                                      config.language_batch, counterfactual=True))  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            print(step, {k: round(v, 3) for k, v in info.items()}, flush=True)
    seconds = time.perf_counter() - start
    model.eval()
    results: dict = {}
    eval_rng = np.random.default_rng(12345)
    with torch.no_grad():
        for task in TASKS:
            for split in GENERATED_SPLITS:
                try:
                    b = batch(model, held[task], eval_rng, split, 0.0, args.eval_episodes)
                except ValueError:
                    continue
                _, info = model.loss(b)
                results.setdefault(task, {})[split] = round(info["instruction_accuracy"], 3)
                if split == "varied":
                    parts = {k: round(v, 3) for k, v in info.items() if k.endswith("_accuracy")}
                    results[task]["varied_parts"] = parts
            b = batch(model, held[task], eval_rng, "varied", 0.1, args.eval_episodes)
            results[task]["varied+typos0.1"] = round(model.loss(b)[1]["instruction_accuracy"], 3)
    report = {"steps": args.steps, "config": {a.split("=")[0]: a.split("=")[1] for a in args.set}, "train_seconds": round(seconds, 1), "accuracy": results,
              "command": "python benchmarks/language_grounding.py " + " ".join(argv or [])}  # fmt: skip
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
