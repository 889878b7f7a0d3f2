"""The comparison report: one HTML page (plots, tables, side-by-side videos of the same seeded
episodes) and its Markdown twin, from what :func:`embodied.evaluation.compare.compare_runs`
measured.

The page is static (no server, no network): images and videos are files beside it. A small
script at its end writes how many images and videos loaded into ``#media-status``, which the
tests read from headless Chromium.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from sandbox_common.atomic import write_json_atomic

SPLIT_TITLES = {
    "all": "in distribution",
    "unseen-paraphrase": "unseen paraphrases",
    "unseen-composition": "unseen compositions",
}


def _pct(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    lo, hi = r["ci95"]
    return f"{r['success_rate']:.0%} ({lo:.0%}-{hi:.0%})"


def _ms(latency: dict[str, float], name: str) -> str:
    mean, p95 = latency.get(f"{name}_mean"), latency.get(f"{name}_p95")
    return "-" if mean is None else f"{mean:.2f} / {p95:.2f}"


def _latency(row: dict[str, Any]) -> dict[str, float]:
    """The row's latency over all its in-distribution evaluations (episode-weighted means)."""
    cells = [c["all"] for c in row["tasks"].values() if "all" in c]
    out: dict[str, float] = {}
    for name in ("system1", "system2", "act"):
        for stat in ("mean", "p95"):
            values = [c["latency_ms"].get(f"{name}_{stat}") for c in cells]
            weights = [c["episodes"] for c, v in zip(cells, values) if v is not None]
            values = [v for v in values if v is not None]
            if values:
                out[f"{name}_{stat}"] = float(np.average(values, weights=weights))
    return out


def success_plot(results: dict[str, Any], path: Path) -> Path:
    """Grouped bars: in-distribution success per task and row, with 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = results["settings"]["tasks"]
    rows = results["rows"]
    width = 0.8 / max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(tasks) + 2), 4.2), dpi=100)
    for k, row in enumerate(rows):
        xs, ys, err = [], [], [[], []]
        for i, task in enumerate(tasks):
            cell = row["tasks"].get(task, {}).get("all")
            if cell is None:
                continue
            lo, hi = cell["ci95"]
            xs.append(i + (k - (len(rows) - 1) / 2) * width)
            ys.append(100 * cell["success_rate"])
            err[0].append(100 * (cell["success_rate"] - lo))
            err[1].append(100 * (hi - cell["success_rate"]))
        ax.bar(xs, ys, width, yerr=err, capsize=2, label=row["name"])
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylim(0, 105)
    ax.set_ylabel("success % (95% CI)")
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _tables(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, shared by the HTML page and the Markdown."""
    tasks = results["settings"]["tasks"]
    splits = ["all", *results["settings"]["language"]]
    rows = results["rows"]
    out = []
    for split in splits:
        body = []
        for row in rows:
            cells = [row["tasks"].get(t, {}).get(split) for t in tasks]
            if all(c is None for c in cells):
                continue
            body.append([row["name"], *(_pct(c) for c in cells)])
        if body:
            title = f"Success, {SPLIT_TITLES.get(split, split)} (95% CI)"
            out.append((title, ["agent", *tasks], body))
    chained = [t for t in tasks if any(
        (row["tasks"].get(t, {}).get("all") or {}).get("mean_chain_length") is not None
        for row in rows
    )]  # fmt: skip
    body = []
    for row in rows:
        cells = []
        for t in chained:
            c = row["tasks"].get(t, {}).get("all")
            cells.append(
                "-"
                if c is None
                else f"{c['mean_chain_length']:.2f} ({c['mean_links_fraction']:.0%})"
            )
        body.append([row["name"], *cells])
    out.append(("Links completed per episode (fraction of the instruction's links)",
                ["agent", *chained], body))  # fmt: skip
    body = []
    for row in rows:
        lat = _latency(row)
        body.append([row["name"], _ms(lat, "system1"), _ms(lat, "system2"), _ms(lat, "act")])
    out.append(("Latency, ms (mean / p95 per call, while evaluating)",
                ["agent", "System 1 chunk", "System 2 call", "act"], body))  # fmt: skip
    body = []
    for row in rows:
        t = row["training"]
        body.append([
            row["name"], row["kind"] + (" (oracle System 2)" if row["planner"] == "oracle" else ""),
            row.get("reads", "-"), str(t.get("demos", "-")), str(t.get("updates", "-")),
            f"{t['train_seconds'] / 60:.1f} min" if "train_seconds" in t else "-",
        ])  # fmt: skip
    out.append(("Training cost", ["agent", "kind", "reads", "demos", "updates", "wall-clock"],
                body))  # fmt: skip
    return out


def _videos(results: dict[str, Any]) -> list[tuple[str, int, list[tuple[str, str]]]]:
    """(task, seed, [(row, video)]) for every recorded seed: the same episode for every row."""
    out = []
    for task in results["settings"]["tasks"]:
        by_seed: dict[int, list[tuple[str, str]]] = {}
        for row in results["rows"]:
            cell = row["tasks"].get(task, {}).get("all")
            if cell is None:
                continue
            for video in cell["videos"]:
                seed = int(Path(video).stem.rsplit("seed", 1)[-1])
                by_seed.setdefault(seed, []).append((row["name"], video))
        out += [(task, seed, vids) for seed, vids in sorted(by_seed.items())]
    return out


_STATUS_SCRIPT = """<script>
function mediaStatus() {
  const images = [...document.images], videos = [...document.querySelectorAll("video")];
  const img = images.filter(i => i.complete && i.naturalWidth > 0).length;
  const vid = videos.filter(v => v.readyState >= 2).length;
  document.getElementById("media-status").textContent =
    `images ${img}/${images.length} videos ${vid}/${videos.length}`;
}
mediaStatus();
setInterval(mediaStatus, 200);
</script>"""

_STYLE = """<style>
body { font-family: sans-serif; margin: 2em; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
video { width: 256px; }
.videos td { vertical-align: top; }
</style>"""


def write_report(results: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write ``comparison.json``, ``report.html``, ``report.md`` and ``success.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "comparison.json", results)
    plot = success_plot(results, out / "success.png")
    settings = results["settings"]
    intro = (
        f"{settings['episodes']} episodes per task and agent, seeds from {settings['first_seed']} "
        "(the same initial states for every agent; starts that are already a success are "
        "skipped). Held-out language: instructions in templates never used for training "
        "(unseen paraphrases) and cube/destination colour pairs never shown together "
        "(unseen compositions; reach and sort pair nothing)."
    )
    tables, videos = _tables(results), _videos(results)
    figures = [(plot.name, "success per task")]
    if results.get("robustness"):
        from embodied.evaluation.robustness import MIDDLE, heatmap, summary_table

        figures.append((heatmap(results["robustness"], out / "robustness.png").name,
                        f"robustness: success per factor at magnitude {MIDDLE:g}"))  # fmt: skip
        tables.append(summary_table(results["robustness"]))

    md = ["# Agent comparison", "", intro, ""]
    md += [f"![{alt}]({name})\n" for name, alt in figures]
    for title, header, body in tables:
        md += [f"## {title}", "", "| " + " | ".join(header) + " |",
               "|" + "---|" * len(header)]  # fmt: skip
        md += ["| " + " | ".join(r) + " |" for r in body]
        md.append("")
    if videos:
        md += ["## Videos (the same seeded episodes)", ""]
        for task, seed, vids in videos:
            md.append(f"- {task}, seed {seed}: " + ", ".join(f"[{n}]({v})" for n, v in vids))
    (out / "report.md").write_text("\n".join(md) + "\n")

    e = html.escape
    page = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>Agent comparison</title>",
            _STYLE, "</head><body>", "<h1>Agent comparison</h1>", f"<p>{e(intro)}</p>"]  # fmt: skip
    page += [f"<img src='{e(name)}' alt='{e(alt)}'>" for name, alt in figures]
    for title, header, body in tables:
        page.append(f"<h2>{e(title)}</h2><table><tr>")
        page += [f"<th>{e(h)}</th>" for h in header]
        page.append("</tr>")
        for r in body:
            page.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
        page.append("</table>")
    if videos:
        page.append("<h2>Videos: the same seeded episodes, side by side</h2><table class='videos'>")
        for task, seed, vids in videos:
            page.append(f"<tr><th>{e(task)}<br>seed {seed}</th>")
            page += [
                f"<td>{e(n)}<br><video src='{e(v)}' controls muted loop preload='auto'></video></td>"
                for n, v in vids
            ]
            page.append("</tr>")
        page.append("</table>")
    page += ["<p id='media-status'>media not checked</p>", _STATUS_SCRIPT, "</body></html>"]
    (out / "report.html").write_text("\n".join(page) + "\n")
    return {"html": out / "report.html", "markdown": out / "report.md", "plot": plot}
