"""How far a keypoint agent's perception places each episode's named object on the first frame,
with the objects fused as the agents fuse them and as they were fused before floating objects
were triangulated from agreeing rays (issue 10: reach's floating targets).

Per held-out seed: the named object's position error (cm), and per camera the presence logit,
the peak's distance from the true object's projection (px) and the predicted height's error
(cm), which say why a fused position is off. Reads only the run's perception; the env gives
the truth. Writes ``--out`` (JSON).

    python benchmarks/target_perception.py --run RUN --task reach --episodes 50 --seed 0 \\
        --out benchmarks/results/target-perception-reach.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import envs
from embodied.saved_agents import load_bundle
from envs.task_features import parse_mentions
from policies import perception as P
from policies.bundles import env_overrides
from policies.perceived_scene import frame_inputs
from sandbox_common.atomic import write_json_atomic


def fuse_seen_only(origins, directions, confs, heights) -> np.ndarray:
    """The fusion before floating objects: only cameras with a positive logit triangulate."""
    position = P.on_predicted_height(origins, directions, confs, heights)
    point, ok = P.triangulate(origins, directions, confs > 0)
    position[ok] = point[ok]
    return np.concatenate([confs.max(0)[..., None], position], -1).astype(np.float32)


def summary(errors: list[float]) -> dict[str, float]:
    e = np.asarray(errors)
    return {"median_cm": float(np.median(e)), "mean_cm": float(e.mean()),
            "over_2.5cm": int((e > 2.5).sum()), "over_5cm": int((e > 5).sum())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a bc-keypoints or hierarchical-keypoints run")
    parser.add_argument("--task", default="reach")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = load_bundle(args.run)
    env = envs.make(args.task, **env_overrides(bundle))
    perception = bundle.make(seed=0, task=args.task).scene.perception
    rig = perception.rig.cpu().numpy()
    fusions = {"agreeing rays (now)": P.fuse, "seeing cameras only (before)": fuse_seen_only}
    errors: dict[str, list[float]] = {name: [] for name in fusions}
    per_seed = []
    for seed in range(args.seed, args.seed + args.episodes):
        obs, info = env.reset(seed=seed)
        truth = env.unwrapped.objects_by_colour(obs["object_state"]).reshape(-1, 4)
        mentions = parse_mentions(info["instruction"])
        if not mentions:
            raise SystemExit(f"{args.task}'s instructions name no object (seed {seed}: "
                             f"{info['instruction']!r}); use a task that names one, e.g. reach")  # fmt: skip
        named = mentions[0]
        i = P.identity(named.color, named.kind)
        images, proprio = frame_inputs(perception, obs)
        row = {"seed": seed, "object": f"{named.color} {named.kind}",
               "height_cm": round(100 * float(truth[i, 3]), 1), "cameras": {}}  # fmt: skip
        heat, height = perception.heatmaps(images)
        for c, cam in enumerate(perception.cameras):
            conf, u, v, z = P.decode(heat[c], height[c])
            pos, rot = P.camera_poses(rig[c], proprio.astype(np.float64))
            tu, tv, _ = P.project(truth[None, i : i + 1, 1:4].astype(np.float64), pos, rot,
                                  rig[c, 13], perception.image_size)  # fmt: skip
            row["cameras"][cam] = {
                "logit": round(float(conf[0, i]), 2),
                "peak_px": round(float(np.hypot(u[0, i] - tu[0, 0], v[0, i] - tv[0, 0])), 1),
                "height_error_cm": round(100 * float(z[0, i] - truth[i, 3]), 1),
            }
        rays = perception.camera_rays(images, proprio)
        for name, fuse in fusions.items():
            table = fuse(*rays)[0]
            error = 100 * float(np.linalg.norm(table[i, 1:4] - truth[i, 1:4]))
            errors[name].append(error)
            row[f"error_cm, {name}"] = round(error, 1)
        per_seed.append(row)
    result = {
        "what": f"first-frame position error of {args.task}'s named object, {args.episodes} "
        f"seeds from {args.seed}",
        "run": Path(args.run).name,
        "fusion": {name: summary(e) for name, e in errors.items()},
        "per_seed": per_seed,
    }
    write_json_atomic(Path(args.out), result)
    for name, s in result["fusion"].items():
        print(f"{name}: median {s['median_cm']:.2f} cm, mean {s['mean_cm']:.2f} cm, "
              f"> 2.5 cm {s['over_2.5cm']}, > 5 cm {s['over_5cm']} of {args.episodes}")  # fmt: skip


if __name__ == "__main__":
    main()
