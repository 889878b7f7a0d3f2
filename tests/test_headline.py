"""``bench headline``: runs found by layout, cells measured once (resumed), the seeds' spread,
the verdicts, the table and the figure."""

from __future__ import annotations

import json

import pytest

from embodied.bench.headline import ROWS, bench_headline, markdown, summarize, verdicts
from embodied.data.collect import collect
from embodied.training.baselines import train_bc


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("headline")
    collect("reach", 3, root / "data", seed=100, noise=0.1, progress=False, obs_mode="state")
    for seed in (0, 1):
        out = root / "runs" / "bc-state" / "reach" / f"seed_{seed}"
        train_bc("bc-state", [root / "data"], out, preset="debug", seed=seed, progress=False,
                 tensorboard=False)  # fmt: skip
    return root / "runs"


def test_headline_measures_each_cell_once_and_writes_table_and_figure(runs, tmp_path):
    tmp_path = tmp_path / "new"  # a directory that does not exist yet
    said = []
    results = bench_headline(tmp_path, runs=runs, seeds=(0, 1), parts=("nominal", "language"),
                             episodes=2, language_episodes=1, num_envs=1, log=said.append)  # fmt: skip
    reach = results["rows"]["bc-state"]["reach"]["reach"]
    assert reach["seeds"] == [0, 1] and len(reach["ci95"]) == 2
    assert reach["spread"][0] <= reach["success"] <= reach["spread"][1]
    assert set(reach["language"]) and all(0.0 <= v <= 1.0 for v in reach["language"].values())
    assert said == [f"bc-state|reach|reach|{s}: {p}" for s in (0, 1)
                    for p in ("nominal", "language")]  # fmt: skip
    table = (tmp_path / "headline.md").read_text()
    assert "| bc-state | privileged state |" in table and (tmp_path / "headline.png").exists()
    stored = json.loads((tmp_path / "headline.json").read_text())
    written = json.loads((runs / "bc-state" / "reach" / "seed_0" / "train.json").read_text())
    assert stored["cells"]["bc-state|reach|reach|0"]["train_seconds"] == written["seconds_this_call"]
    again = []  # resumed: nothing measured twice
    bench_headline(tmp_path, runs=runs, seeds=(0, 1), parts=("nominal", "language"), episodes=2,
                   language_episodes=1, num_envs=1, log=again.append)  # fmt: skip
    assert again == []
    with pytest.raises(ValueError, match="measured with"):
        bench_headline(tmp_path, runs=runs, seeds=(0, 1), episodes=3, num_envs=1)


def test_headline_says_whether_hierarchical_beats_end_to_end_beyond_the_seed_spread():
    def cell(row, task, successes):
        return {f"{row}|{task}|{i}": {"row": row, "network": task, "task": task, "seed": i,
                                      "nominal": {"success": s, "ci95": [s - 0.1, s + 0.1],
                                                  "episodes": 50, "links": s, "latency_ms": {}}}
                for i, s in enumerate(successes)}  # fmt: skip

    e2e, hier, oracle = ROWS[0].name, ROWS[1].name, ROWS[2].name
    cells = (cell(e2e, "stack", [0.7, 0.72, 0.74]) | cell(hier, "stack", [0.8, 0.9, 0.85])
             | cell(oracle, "stack", [0.95, 0.97, 0.99]) | cell(e2e, "push", [0.9, 0.8, 1.0])
             | cell(hier, "push", [0.85, 0.95, 0.9]))  # fmt: skip
    rows = summarize(cells)
    said = verdicts(rows)
    assert said["stack"].startswith("hierarchical beyond") and "+12 pts" in said["stack"]
    assert said["push"] == "within the seeds' spread"
    one = summarize(cell(e2e, "chain", [0.8]) | cell(hier, "chain", [0.85]))
    assert verdicts(one)["chain"] == "within the 95% intervals (one seed)"
    text = markdown({"rows": rows, "settings": {"episodes": 50, "suite_episodes": 20}})
    assert "| hierarchical VLA | learned language |" in text and "85 [80-90]" in text
