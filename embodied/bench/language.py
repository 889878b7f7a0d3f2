"""``bench language RUN``: an agent's success on every task it knows, in the words it trained on
and under every held-out language phenomenon (``envs.instructions``), with each held-out
split's success as a share of the in-distribution one. Resumable: finished cells are kept in
the results file and skipped when it is run again.

    python -m embodied bench language RUN --episodes 50 --out results.json
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from embodied.evaluation.harness import evaluate
from embodied.saved_agents import agent_factory_from_run, load_bundle
from envs.instructions import GENERATED_SPLITS
from envs.language import has_split
from sandbox_common.atomic import write_json_atomic

IN_DISTRIBUTION = ("all", "varied")
"""The env's own template wording and the generator's training phenomena."""


def agent_digest(run: str | Path) -> str:
    """A short digest of a run's ``agent.pt``: which agent a results file measured."""
    path = Path(run) / "agent.pt" if Path(run).is_dir() else Path(run)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def splits_of(task: str) -> list[str]:
    return [s for s in (*IN_DISTRIBUTION, *GENERATED_SPLITS[1:]) if has_split(task, s)]


def bench_language(
    run: str | Path, out: str | Path, episodes: int = 50, seed: int = 0,
    tasks: list[str] | None = None, num_envs: int = 2, progress: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Evaluate ``run`` per task and split; write and return ``{task: {split: cell}}`` with each
    held-out split's success as a share of the in-distribution one (the better of the templates
    and ``varied``)."""
    out = Path(out)
    results = json.loads(out.read_text()) if out.exists() else {}
    digest = agent_digest(run)
    if results.get("agent_digest", digest) != digest:
        raise ValueError(
            f"{out} holds cells measured on another agent (checkpoint digest "
            f"{results['agent_digest']}, {run} is {digest}): remove it or give another --out"
        )
    results["agent_digest"] = digest
    cells = results.setdefault("cells", {})
    bundle = load_bundle(run)
    for task in tasks or list(bundle.tasks):
        make, overrides = agent_factory_from_run(run, task)
        for split in splits_of(task):
            if split in cells.get(task, {}):
                continue
            r = evaluate(make, task, episodes, seed=seed, num_envs=num_envs, progress=progress,
                         **{**overrides, "language": split})  # fmt: skip
            cells.setdefault(task, {})[split] = {
                "success": r.success_rate, "ci95": list(r.ci95), "episodes": r.episodes,
                "links": r.mean_links_fraction, "latency_ms": r.latency_ms,
            }  # fmt: skip
            write_json_atomic(out, results | {"run": str(run), "kind": bundle.kind})
    for task, row in cells.items():  # in distribution: the better of the two training wordings
        base = max((row[s]["success"] for s in IN_DISTRIBUTION if s in row), default=0.0)
        for split, cell in row.items():
            cell.pop("of_varied", None)
            if split.startswith("heldout-") and base:
                cell["of_in_distribution"] = round(cell["success"] / base, 3)
    results |= {"run": str(run), "kind": bundle.kind, "episodes": episodes, "seed": seed}
    write_json_atomic(out, results)
    return results


def table(results: dict[str, Any]) -> str:
    """A markdown table: tasks as rows, splits as columns."""
    splits = (*IN_DISTRIBUTION, *GENERATED_SPLITS[1:])
    lines = ["| task | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    for task, row in results["cells"].items():
        cells = [f"{row[s]['success']:.0%}" if s in row else "-" for s in splits]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
