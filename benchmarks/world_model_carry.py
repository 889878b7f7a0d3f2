"""Does the world model carry the cube? Whole episodes open loop, object by object (issue 14).

For each seed a noisy scripted expert plays the task in the simulator; the world model encodes
the first observation and imagines the whole episode with the same actions. For the object that
moves most (the instructed cube), it reports how far it moved, and how far the imagined one is
from it at the end and at worst, in cm, beside "nothing moves" (its distance moved).

    python benchmarks/world_model_carry.py --world-model runs/bench-world-model/run-pick-place-perceived \\
        --task pick-place --seeds 100-109
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from embodied.media.imagine import add_object_inputs, make_env_of, play_expert
from world_models import load_world_model

SLOT = 4  # [present, x, y, z]


def seeds_arg(text: str) -> list[int]:
    if "-" in text:
        low, high = (int(v) for v in text.split("-"))
        return list(range(low, high + 1))
    return [int(v) for v in text.split(",")]


@torch.no_grad()
def carry(model, record, task: str, seed: int, noise: float, name: str) -> dict:
    env = make_env_of(record, task)
    try:
        observations, actions, info = play_expert(env, seed, noise)
        truth = np.stack([env.objects_by_colour(o["object_state"]) for o in observations])
        add_object_inputs(model, record, env, observations, name)
    finally:
        env.close()
    keys = model.spec.image_keys + model.spec.vector_keys
    first = {k: observations[0][k][None] for k in keys}
    z = model.imagine(
        model.encode(first), torch.as_tensor(np.stack(actions)[None], dtype=torch.float32)
    )
    imagined = model.aux(z[0]).numpy().reshape(len(actions), -1, SLOT)
    truth = truth.reshape(len(truth), -1, SLOT)
    present = np.nonzero(truth[0, :, 0] > 0.5)[0]
    moved = np.linalg.norm(truth[:, present, 1:] - truth[0, present, 1:], axis=-1).max(0)
    k = present[int(np.argmax(moved))]
    error = 100 * np.linalg.norm(imagined[:, k, 1:] - truth[1:, k, 1:], axis=-1)
    return {
        "seed": seed,
        "instruction": info["instruction"],
        "steps": len(actions),
        "moved_cm": round(float(100 * moved.max()), 1),
        "final_error_cm": round(float(error[-1]), 1),
        "max_error_cm": round(float(error.max()), 1),
        "nothing_moves_final_cm": round(
            float(100 * np.linalg.norm(truth[-1, k, 1:] - truth[0, k, 1:])), 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world-model", required=True, help="a `train world-model` run")
    parser.add_argument("--task", default="pick-place")
    parser.add_argument(
        "--seeds", type=seeds_arg, default=seeds_arg("100-109"), help="100-109 or 1,2,3"
    )
    parser.add_argument("--noise", type=float, default=0.1, help="the expert's action noise")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, record = load_world_model(f"{args.world_model}/checkpoint.pt")
    rows = [carry(model, record, args.task, s, args.noise, args.world_model) for s in args.seeds]
    for row in rows:
        print(json.dumps(row))
    carried = sum(r["final_error_cm"] < 0.25 * r["moved_cm"] for r in rows)
    print(
        json.dumps(
            {"episodes": len(rows), "carried (final error < a quarter of the move)": carried}
        )
    )


if __name__ == "__main__":
    main()
