"""Is a keypoint agent's loss its perception's or its decisions'? Runs each agent on the same
episodes with each kind of object table (``--tables``):

* ``perceived``: the agent as it is;
* ``true``: its perceived table replaced by the true one, read off ``obs["object_state"]`` (so
  through the same observation delay, dropped frames and object-state noise that bc-state reads;
  the cameras are still rendered, and ignored).

The agent's decision networks, memory, presence vote and instruction binding are untouched.
Writes ``--out`` (JSON).

    python benchmarks/true_table.py --runs RUN [RUN ...] --task pick-place --factors all=0.5 \\
        --seed 100 --episodes 60 [--tables perceived,true] --out F.json
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

import envs
from embodied.cli.common import factor_groups
from embodied.saved_agents import load_bundle
from policies.bc_keypoints import ParsedScene as PerceivedScene
from policies.bundles import env_overrides
from sandbox_common.atomic import write_json_atomic
from sandbox_common.paths import portable_path

PRESENT_LOGIT = 6.0
"""The presence logit the true table reports (above PresenceVote's clip: a certain vote)."""


def see_the_truth(scene: PerceivedScene, env) -> None:
    """Make ``scene`` hold the true table of each observation instead of perceiving it."""

    def observe(obs: dict[str, Any]) -> np.ndarray:
        table = env.objects_by_colour(obs["object_state"]).reshape(-1, 4).copy()
        table[:, 0] = np.where(table[:, 0] > 0.5, PRESENT_LOGIT, -PRESENT_LOGIT)
        return scene.take(obs, table)

    scene.observe = observe


TABLES = ("perceived", "true")


def success_rate(
    run: str, task: str, seeds: range, factors: dict[str, float], table: str = "perceived"
) -> dict[str, Any]:
    bundle = load_bundle(run)
    env = envs.make(task, **env_overrides(bundle))
    wins: list[int] = []
    try:
        for seed in seeds:
            obs, info = env.reset(seed=seed, options={"factors": factors} if factors else None)
            agent = bundle.make(seed=seed, task=task)
            scene = getattr(agent, "system1", agent).scene
            agent.reset(info["instruction"])
            if table == "true":
                see_the_truth(scene, env.unwrapped)
            done = False
            while not done:
                obs, _, terminated, truncated, info = env.step(agent.act(obs))
                done = terminated or truncated
            wins.append(int(info["success"]))
    finally:
        env.close()
    return {"success_rate": float(np.mean(wins)), "episodes": len(wins), "per_episode": wins}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="keypoint agent runs")
    parser.add_argument("--task", default="pick-place")
    parser.add_argument("--seed", type=int, default=100, help="first episode seed")
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument(
        "--factors", default="", help="NAME=M[,NAME=M...]; a family's name or `all` sets many"
    )
    parser.add_argument(
        "--tables", default="perceived,true", help=f"which of {', '.join(TABLES)} (comma-separated)"
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    tables = [t for t in args.tables.split(",") if t]
    unknown = [t for t in tables if t not in TABLES]
    if unknown or not tables:
        parser.error(f"unknown --tables {unknown or args.tables!r}; accepted: {', '.join(TABLES)}")
    torch.set_num_threads(1)
    factors = factor_groups(args.factors, args.task)
    seeds = range(args.seed, args.seed + args.episodes)
    result: dict[str, Any] = {"task": args.task, "seeds": f"{seeds.start}..{seeds.stop - 1}",
                              "factors": factors, "runs": {}}  # fmt: skip
    for run in args.runs:
        row = {table: success_rate(run, args.task, seeds, factors, table) for table in tables}
        result["runs"][portable_path(run)] = row
        print(run, {k: v["success_rate"] for k, v in row.items()}, flush=True)
        write_json_atomic(args.out, result)


if __name__ == "__main__":
    main()
