"""Where a keypoint agent's System 1 time goes, one thread, batch 1: perceiving the frame (the
cameras' heatmap networks, then decoding peaks, rays and fusion), then System 1's network
(issue 10's "System 1 <= 2 ms per chunk").

Per run: :func:`embodied.bench.kinds.measure_latency` (each part timed alone, in a tight
loop); the cameras' networks run one after another (how they train) against grouped into one
network per layer (how perception runs them), interleaved call by call so that both see the same
machine; and whole agent steps inside episodes, an env step and its rendering between calls
(caches cold, as in an evaluation). Writes ``--out`` (JSON).

    python benchmarks/system1_latency.py --runs assets/agents/bc-keypoints-pick-place \\
        assets/agents/hierarchical-keypoints-pick-place --task pick-place \\
        --out benchmarks/results/system1-latency.json
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

import envs
from embodied.bench.kinds import measure_latency
from embodied.saved_agents import load_bundle
from policies.bundles import env_overrides
from policies.perceived_scene import frame_inputs
from sandbox_common.atomic import write_json_atomic


def interleaved(fns: dict, rounds: int) -> dict[str, float]:
    """Median milliseconds of each function, called in turn ``rounds`` times after a warm-up."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(rounds + 20):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if i >= 20:
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: float(np.median(t)) for name, t in times.items()}


@torch.no_grad()
def networks_both_ways(
    perception, images: dict[str, torch.Tensor], rounds: int
) -> dict[str, float]:
    """The cameras' heatmap networks one after another (as they train) and grouped (as they run)."""
    return interleaved(
        {
            "one_after_another": lambda: [
                perception.nets[c](images[c]) for c in perception.cameras
            ],
            "grouped": lambda: perception.heatmaps(images),
        },
        rounds,
    )


def in_episodes(run: str, task: str, seeds: range) -> dict[str, float]:
    """Median and p95 milliseconds of a whole ``agent.act`` (perception, System 2 where there is
    one, System 1) over every step of ``seeds``' episodes."""
    bundle = load_bundle(run)
    overrides = env_overrides(bundle)
    env = envs.make(task, **overrides)
    agent = bundle.make(seed=0, task=task)
    times = []
    try:
        for seed in seeds:
            obs, info = env.reset(seed=seed)
            agent.reset(info["instruction"])
            done = False
            while not done:
                start = time.perf_counter()
                action = agent.act(obs)
                times.append((time.perf_counter() - start) * 1e3)
                obs, _, terminated, truncated, _ = env.step(action)
                done = terminated or truncated
    finally:
        env.close()
    return {"agent_step_ms_median": float(np.median(times)),
            "agent_step_ms_p95": float(np.percentile(times, 95)), "steps": len(times)}  # fmt: skip


def machine() -> dict[str, str]:
    """The CPU the figures were measured on (they differ 2x between this project's machines)."""
    names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")] if Path("/proc/cpuinfo").exists() else []  # fmt: skip
    return {"cpu": names[0] if names else platform.processor() or "unknown",
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="keypoint agent runs")
    parser.add_argument("--task", default="pick-place")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"task": args.task, "threads": 1, "machine": machine(), "runs": {}}
    for run in args.runs:
        row = measure_latency(run, repeats=args.rounds // 4, task=args.task)
        bundle = load_bundle(run)
        overrides = env_overrides(bundle)
        env = envs.make(args.task, **overrides)
        obs, _ = env.reset(seed=0)
        env.close()
        agent = bundle.make(seed=0, task=args.task)
        perception = getattr(agent, "system1", agent).scene.perception
        images, _ = frame_inputs(perception, obs)
        ab = networks_both_ways(perception, images, args.rounds)
        row["networks_ms_median"] = ab
        row["networks_grouped_speedup"] = ab["one_after_another"] / ab["grouped"]
        row |= in_episodes(run, args.task, range(1000, 1000 + args.episodes))
        result["runs"][Path(run).name] = row
        print(
            Path(run).name, {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
        )
    write_json_atomic(args.out, result)


if __name__ == "__main__":
    main()
