"""The table of ``benchmarks/imagined_planning.sh``: per task and System 2, success and links
done pooled over the evaluation seeds (Wilson 95% interval), and System 2's time per call.

    python benchmarks/imagined_planning_table.py runs/bench-imagined \\
        --out benchmarks/results/imagined-planning.json
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

from embodied.evaluation.harness import wilson_interval
from sandbox_common.atomic import write_json_atomic

RUN = re.compile(
    r"^eval-(?P<task>[a-z-]+?)-(?P<row>learned|(?:check|imagined)(?:-r1)?-s\d+)-e(?P<seed>\d+)$"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", help="the OUT of imagined_planning.sh")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    pooled: dict[tuple[str, str], dict] = defaultdict(
        lambda: {"successes": 0, "episodes": 0, "links": 0.0, "system2_ms": [], "seeds": []}
    )
    for metrics in sorted(Path(args.work).glob("eval-*/metrics.json")):
        match = RUN.match(metrics.parent.name)
        if match is None:
            continue
        m = json.loads(metrics.read_text())
        row = pooled[(match["task"], match["row"])]
        row["successes"] += round(m["success_rate"] * m["episodes"])
        row["episodes"] += m["episodes"]
        row["links"] += m["mean_links_fraction"] * m["episodes"]
        row["system2_ms"].append(m["latency_ms"].get("system2_mean", 0.0))
        row["seeds"].append(int(match["seed"]))
    table = {}
    for (task, name), row in sorted(pooled.items()):
        n = row["episodes"]
        low, high = wilson_interval(row["successes"], n)
        table.setdefault(task, {})[name] = {
            "success": row["successes"] / n,
            "ci95": [low, high],
            "links_fraction": row["links"] / n,
            "episodes": n,
            "first_seeds": sorted(row["seeds"]),
            "system2_ms_mean": sum(row["system2_ms"]) / len(row["system2_ms"]),
        }
        print(f"{task:6s} {name:12s} success {row['successes'] / n:5.0%} [{low:.0%}-{high:.0%}] "
              f"links {row['links'] / n:5.0%}  n={n}  System 2 {table[task][name]['system2_ms_mean']:.1f} ms")  # fmt: skip
    write_json_atomic(
        args.out,
        {
            "what": "System 2 with / without / only a world model of the perceived objects",
            "tasks": table,
        },
    )


if __name__ == "__main__":
    main()
