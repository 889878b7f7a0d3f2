"""The tables of docs/BENCHMARKS.md, generated from benchmarks/results/*.json.

Each generated table sits between ``<!-- table: NAME -->`` and ``<!-- end table -->`` in the
document; :data:`TABLES` says how each is made from its results file. ``--check`` fails (exit 1)
when a table in the document differs from what its results file gives (tests run it).

    python benchmarks/tables.py            # rewrite the tables in place
    python benchmarks/tables.py --check    # fail on any difference
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"
RESULTS = ROOT / "benchmarks" / "results"
SPLITS = ("all", "varied", "heldout-passive", "heldout-where", "heldout-relative",
          "heldout-job", "heldout-synonym")  # fmt: skip
SPLIT_NAMES = {"all": "templates", "varied": "varied", "heldout-passive": "passive",
               "heldout-where": "where", "heldout-relative": "relative", "heldout-job": "job",
               "heldout-synonym": "synonyms"}  # fmt: skip
TASK_ORDER = ("reach", "push", "pick-place", "stack", "sort", "chain")


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def grounding(results: dict) -> str:
    """The language path alone: instruction accuracy per task and split."""
    splits = [s for s in SPLITS if s != "all"] + ["varied+typos0.1"]
    names = {**SPLIT_NAMES, "varied+typos0.1": "varied, 10% typos"}
    rows = ["| task | " + " | ".join(names[s] for s in splits) + " |",
            "|---" * (len(splits) + 1) + "|"]  # fmt: skip
    for task in TASK_ORDER:
        cells = results["accuracy"].get(task, {})
        rows.append(f"| {task} | " + " | ".join(
            _pct(cells[s]) if s in cells else "-" for s in splits) + " |")  # fmt: skip
    return "\n".join(rows)


def language(results: dict) -> str:
    """An agent's success per task under its training words and each held-out phenomenon, with
    the Wilson 95% interval, and each held-out split as a share of the in-distribution success."""
    rows = ["| task | " + " | ".join(SPLIT_NAMES[s] for s in SPLITS) + " |",
            "|---" * (len(SPLITS) + 1) + "|"]  # fmt: skip
    for task in (t for t in TASK_ORDER if t in results["cells"]):
        row = results["cells"][task]
        cells = []
        for s in SPLITS:
            if s not in row:
                cells.append("-")
                continue
            c = row[s]
            text = f"{_pct(c['success'])} ({_pct(c['ci95'][0])}-{_pct(c['ci95'][1])})"
            if "of_in_distribution" in c:
                text += f" [{c['of_in_distribution']:.2f}]"
            cells.append(text)
        rows.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def per_task(results: dict) -> str:
    """One evaluation per task (``eval`` metrics merged by task): success and links done."""
    rows = ["| task | success (95% CI) | links done |", "|---|---|---|"]
    for task in (t for t in TASK_ORDER if t in results["tasks"]):
        m = results["tasks"][task]
        lo, hi = m["ci95"]
        rows.append(f"| {task} | {_pct(m['success_rate'])} ({_pct(lo)}-{_pct(hi)}) | "
                    f"{_pct(m['mean_links_fraction'])} |")  # fmt: skip
    return "\n".join(rows)


def headline(results: dict) -> str:
    """``bench headline``'s table (:func:`embodied.bench.headline.markdown`)."""
    from embodied.bench.headline import markdown

    return markdown(results).rstrip("\n")


TABLES: dict[str, tuple[str, Callable[[dict], str]]] = {
    "headline-quick": ("headline-quick.json", headline),
    "language-grounding": ("language-grounding.json", grounding),
    "vla-pick-place-language": ("vla-pick-place-language.json", language),
    "bc-keypoints-pick-place-language": ("bc-keypoints-pick-place-language.json", language),
    "vla-multitask-end-to-end": ("vla-multitask-end-to-end.json", language),
    "vla-multitask-hierarchical": ("vla-multitask-hierarchical.json", language),
    "vla-multitask-hierarchical-oracle": ("vla-multitask-hierarchical-oracle.json", per_task),
}
_BLOCK = re.compile(r"(<!-- table: ([a-z0-9-]+) -->\n)(.*?)(<!-- end table -->)", re.DOTALL)


def render(text: str) -> str:
    """``text`` with every marked table regenerated from its results file."""

    def one(match: re.Match) -> str:
        name = match.group(2)
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
        file, make = TABLES[name]
        table = make(json.loads((RESULTS / file).read_text()))
        return f"{match.group(1)}{table}\n{match.group(4)}"

    return _BLOCK.sub(one, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail on any difference")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print("docs/BENCHMARKS.md tables differ from benchmarks/results: run "
                  "python benchmarks/tables.py", file=sys.stderr)  # fmt: skip
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
