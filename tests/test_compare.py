"""``compare``: the same seeded episodes for every agent, one HTML report and its Markdown twin."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from embodied.cli import main
from embodied.data.collect import collect
from embodied.training.baselines import train_bc

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    data = tmp_path_factory.mktemp("demos") / "pick-place"
    collect("pick-place", 3, data, seed=0, noise=0.1, progress=False, image_size=32)
    out = {}
    for kind in ("end-to-end", "hierarchical", "bc-pixels"):
        out[kind] = tmp_path_factory.mktemp(kind) / kind
        train_bc(kind, [data], out[kind], preset="debug", progress=False, tensorboard=False)
    return out


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    argv = ["compare", *(str(r) for r in runs.values()), "--out", str(out), "--episodes", "2"]
    argv += ["--video", "1", "--num-envs", "1", "--set", "max_steps=6", "--quiet"]
    assert main(argv) == 0
    return out


def test_compare_has_the_four_rows_held_out_language_and_the_same_videos(report):
    results = json.loads((report / "comparison.json").read_text())
    names = [row["name"] for row in results["rows"]]
    assert names == ["end-to-end", "hierarchical", "hierarchical+oracle", "bc-pixels"]
    for row in results["rows"]:
        cells = row["tasks"]["pick-place"]
        assert set(cells) == {"all", "unseen-paraphrase", "unseen-composition"}
        assert cells["all"]["episodes"] == 2 and 0 <= cells["all"]["ci95"][0] <= 1
        assert len(cells["all"]["videos"]) == 1 and cells["unseen-paraphrase"]["videos"] == []
        assert row["training"]["demos"] == 3 and row["training"]["updates"] > 0
    seeds = {row["name"]: row["tasks"]["pick-place"]["all"]["seeds"] for row in results["rows"]}
    assert len({tuple(s) for s in seeds.values()}) == 1  # the same episodes for every agent
    md = (report / "report.md").read_text()
    assert "| hierarchical+oracle |" in md and "unseen compositions" in md
    assert "Training cost" in md and "System 1 chunk" in md
    for link in re.findall(r"\]\(([^)]+)\)", md):
        assert (report / link).exists(), link


def test_compare_resumes_without_evaluating_again(runs, report, capsys):
    before = {p: p.stat().st_mtime_ns for p in report.glob("evals/**/metrics.json")}
    argv = ["compare", *(str(r) for r in runs.values()), "--out", str(report), "--episodes", "2"]
    assert main([*argv, "--video", "1", "--num-envs", "1", "--set", "max_steps=6", "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in report.glob("evals/**/metrics.json")} == before
    assert main([*argv, "--video", "3"]) == 2
    assert "--video (3) must be <= --episodes (2)" in capsys.readouterr().err


def test_report_renders_in_headless_chromium_with_every_image_and_video(report):
    assert CHROMIUM is not None, "no chromium: `bash scripts/setup.sh dev` installs it"
    page = (report / "report.html").resolve()
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         "--virtual-time-budget=8000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    ).stdout  # fmt: skip
    status = re.search(r'id="media-status">([^<]*)<', dom)
    assert status is not None, dom[-2000:]
    counts = re.match(r"images (\d+)/(\d+) videos (\d+)/(\d+)", status.group(1))
    loaded_img, total_img, loaded_vid, total_vid = map(int, counts.groups())
    assert total_img >= 1 and loaded_img == total_img
    assert total_vid == 4 and loaded_vid == total_vid  # one episode per row, same seed
    assert "Agent comparison" in dom and "hierarchical+oracle" in dom


def test_compare_with_a_suite_draws_the_agents_by_factors_heatmap(runs, tmp_path):
    argv = ["compare", str(runs["end-to-end"]), str(runs["hierarchical"]), "--out", str(tmp_path)]
    argv += ["--episodes", "1", "--video", "0", "--num-envs", "1", "--set", "max_steps=4"]
    argv += ["--no-oracle", "--language", "--suite", "quick", "--quiet"]
    assert main(argv) == 0
    results = json.loads((tmp_path / "comparison.json").read_text())
    assert sorted(results["robustness"]) == ["end-to-end / pick-place", "hierarchical / pick-place"]
    for report in results["robustness"].values():
        assert report["rows"][0]["factor"] == "nominal" and len(report["rows"]) == 7
    md = (tmp_path / "report.md").read_text()
    assert "![robustness" in md and "Robustness (relative drop" in md
    assert (tmp_path / "robustness.png").stat().st_size > 1000
