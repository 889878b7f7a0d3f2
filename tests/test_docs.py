"""The docs stay true: BENCHMARKS' tables are what the results files say; README stays short."""

from __future__ import annotations

import importlib.util

from tests.test_architecture import ROOT


def test_benchmark_tables_match_their_results_files():
    spec = importlib.util.spec_from_file_location("tables", ROOT / "benchmarks" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    text = tables.DOC.read_text()
    assert "<!-- table: " in text
    assert tables.render(text) == text, "run python benchmarks/tables.py"


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150
    assert "scripts/demo.sh" in "\n".join(lines[:6]) and "scripts/test.sh" in "\n".join(lines[:6])
