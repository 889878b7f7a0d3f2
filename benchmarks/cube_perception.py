"""How well keypoint agents perceive the cubes of a task, frame by frame: the scripted expert
acts (the same frames for every agent), each agent's perception reads every frame alone (no
memory), and the cubes present are compared with the truth. Per agent: mean / median position
error, the share of cube-frames more than 3 cm off, perceived nearer another cube's true place
than its own (a colour swap), and not seen (presence logit <= 0). Writes ``--out`` (JSON).

    python benchmarks/cube_perception.py --task sort --seeds 8 --runs RUN [RUN ...] \\
        --out benchmarks/results/cube-perception-sort.json [--factors visual=0.5]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import envs
from embodied.agent import ExpertAgent
from embodied.cli.common import factor_groups
from embodied.saved_agents import load_bundle
from envs.task_features import KINDS
from policies.bundles import env_overrides
from policies.perceived_scene import frame_inputs
from sandbox_common.atomic import write_json_atomic
from sandbox_common.paths import portable_path


def cube_perception(
    run: str, task: str, seeds: range, factors: dict[str, float] | None = None
) -> dict[str, float]:
    bundle = load_bundle(run)
    env = envs.make(task, **env_overrides(bundle))
    agent = bundle.make(seed=0, task=task)
    perception = getattr(agent, "system1", agent).scene.perception
    errors, swapped, unseen = [], 0, 0
    try:
        for seed in seeds:
            obs, info = env.reset(seed=seed, options={"factors": factors} if factors else None)
            expert = ExpertAgent(env)
            expert.reset(info["instruction"])
            done = False
            while not done:
                table = perception(*frame_inputs(perception, obs))[0]
                truth = env.objects_by_colour(obs["object_state"]).reshape(-1, 4)
                cubes = [i for i in range(len(truth))
                         if truth[i, 0] > 0 and KINDS[i % len(KINDS)] == "cube"]  # fmt: skip
                for i in cubes:
                    error = np.linalg.norm(table[i, 1:4] - truth[i, 1:4])
                    errors.append(error)
                    unseen += int(table[i, 0] <= 0)
                    others = [
                        np.linalg.norm(table[i, 1:4] - truth[j, 1:4]) for j in cubes if j != i
                    ]
                    swapped += int(bool(others) and min(others) < error)
                obs, _, terminated, truncated, info = env.step(expert.act(obs))
                done = terminated or truncated
    finally:
        env.close()
    errors = np.asarray(errors)
    return {"cube_frames": len(errors), "mean_error_cm": float(errors.mean() * 100),
            "median_error_cm": float(np.median(errors) * 100),
            "over_3cm": float((errors > 0.03).mean()), "nearer_another_cube": swapped / len(errors),
            "unseen": unseen / len(errors)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="keypoint agent runs")
    parser.add_argument("--task", default="sort")
    parser.add_argument("--seeds", type=int, default=8, help="expert episodes from seed 0")
    parser.add_argument(
        "--factors",
        default="",
        help="factors of variation applied to every episode, NAME=M[,NAME=M...]; a family's name "
        "(visual) sets each of its factors (the truth is read from the observation: use factors "
        "that leave object_state alone, e.g. the visual family)",
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    factors = factor_groups(args.factors, args.task)
    result = {"task": args.task, "seeds": f"0..{args.seeds - 1}", "factors": factors, "runs": {}}
    for run in args.runs:
        row = cube_perception(run, args.task, range(args.seeds), factors)
        result["runs"][portable_path(run)] = row
        print(run, {k: round(v, 3) for k, v in row.items()})
    write_json_atomic(args.out, result)


if __name__ == "__main__":
    main()
