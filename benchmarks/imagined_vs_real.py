"""Does the world model imagine what System 1 really does? At the first decisions of the
imagination-only agent (``eval --planner imagined``), each candidate subtask's imagined progress
toward the instruction's goal against its real progress: the same System 1, from the same state,
pursuing that subtask in the env for the same horizon, measured on the true object state.

Per decision: the candidates' imagined and real progress (cm), whether the imagined best is the
real best, and for ``place`` candidates while the hand holds no cube (System 1 was never shown
that) the named cube's imagined and real displacement. Writes ``--out`` (JSON).

    python benchmarks/imagined_vs_real.py --agent RUN --world-model WM --task sort \\
        --seeds 0-9 --decisions 3 --out benchmarks/results/imagined-vs-real-sort.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import envs
from embodied.saved_agents import load_bundle
from envs.task_features import GroundedState
from policies.bundles import env_overrides
from policies.imagined_progress import PROGRESS_UNIT, distance_to_goal
from sandbox_common.atomic import write_json_atomic
from world_models.training import load_world_model


def seed_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def true_distance(truth: GroundedState, obs: dict) -> float:
    """The instruction's distance to goal (metres) on the env's true object state."""
    x = truth({"proprio": obs["proprio"], "object_state": obs["object_state"]})
    return float(distance_to_goal(x[None])[0])


def holds_a_cube(env) -> bool:
    """Whether the hand holds a cube now (the env's own grasp test)."""
    return any(env.is_grasped(o.name) for o in env.objects if o.kind == "cube")


def real_progress(bundle, twin, task, seed, instruction, actions, label, holding, horizon):
    """Metres of progress of System 1 pursuing ``label`` for ``horizon`` steps in the env, from
    the state ``actions`` lead to, and how far the objects moved (m)."""
    obs, _ = twin.reset(seed=seed)
    truth = GroundedState(tuple(o.kind for o in twin.objects))
    truth.reset(instruction)
    probe = bundle.make(seed=0, task=task)  # its scene sees the same frames as the agent's
    probe.reset(instruction)
    true_distance(truth, obs)  # binds the instruction on the first frame
    for a in actions:
        probe.planner.assess(obs, 0)
        obs, *_ = twin.step(a)
    probe.planner.assess(obs, 0)
    probe.system1.holding = holding
    probe.system1.set_text(label)
    start = best = true_distance(truth, obs)
    objects = obs["object_state"].copy()
    for _ in range(horizon):
        obs, *_ = twin.step(probe.system1.act(obs))
        best = min(best, true_distance(truth, obs))
    return start - best, float(np.abs(obs["object_state"] - objects).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent", required=True, help="a hierarchical-keypoints run")
    parser.add_argument("--world-model", required=True)
    parser.add_argument("--task", default="sort")
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--decisions", type=int, default=3, help="first decisions per episode")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = load_bundle(args.agent)
    wm, _ = load_world_model(args.world_model)
    overrides = env_overrides(bundle)
    env, twin = envs.make(args.task, **overrides), envs.make(args.task, **overrides)
    rows = []
    for seed in seed_range(args.seeds):
        obs, info = env.reset(seed=seed)
        agent = bundle.make(seed=0, task=args.task, planner="imagined", world_model=wm)
        agent.reset(info["instruction"])
        original, seen = agent.check.progress, {}

        def spy(o, labels, seen=seen, original=original):
            seen["progress"] = original(o, labels)
            return seen["progress"]

        agent.check.progress = spy
        actions: list[np.ndarray] = []
        decisions = 0
        while decisions < args.decisions:
            deciding = agent._since >= agent.replan_every
            holding, grasped = agent.system1.holding, holds_a_cube(env)
            action = agent.act(obs)
            if deciding:
                decisions += 1
                labels = agent.labels
                imagined = seen["progress"] * PROGRESS_UNIT * 100
                real, moved = [], {}
                for label in labels:
                    progress, move = real_progress(bundle, twin, args.task, seed,
                                                   info["instruction"], actions, label, holding,
                                                   agent.check.horizon)  # fmt: skip
                    real.append(100 * progress)
                    if label.startswith("place") and not grasped:
                        moved[label] = round(100 * move, 2)
                rows.append({
                    "seed": seed, "step": len(actions), "holds_a_cube": grasped,
                    "labels": labels, "imagined_cm": [round(float(v), 2) for v in imagined],
                    "real_cm": [round(v, 2) for v in real],
                    "same_best": int(np.argmax(imagined)) == int(np.argmax(real)),
                    "chosen": agent.system1.label, "real_best": labels[int(np.argmax(real))],
                    "place_without_cube_objects_moved_cm": moved,
                })  # fmt: skip
                print(rows[-1])
            actions.append(action)
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
    env.close()
    twin.close()
    agree = np.mean([r["same_best"] for r in rows])
    imagined = np.concatenate([r["imagined_cm"] for r in rows])
    real = np.concatenate([r["real_cm"] for r in rows])
    result = {
        "what": f"{args.task}: imagined vs real progress of every candidate at the imagination-only "
        f"agent's first {args.decisions} decisions, seeds {args.seeds}",
        "agent": Path(args.agent).name, "world_model": Path(args.world_model).name,
        "decisions": len(rows), "imagined_best_is_real_best": float(agree),
        "correlation": float(np.corrcoef(imagined, real)[0, 1]),
        "rows": rows,
    }  # fmt: skip
    print({k: v for k, v in result.items() if k != "rows"})
    write_json_atomic(args.out, result)


if __name__ == "__main__":
    main()
