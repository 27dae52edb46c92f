"""The README's embedded tables are written from results/tables and must agree with them."""

from __future__ import annotations

import pandas as pd
import pytest

from colorlab import readme, settings
from colorlab.errors import ColorlabError


def _tables(tmp_path):
    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame({"model": ["a", "b", "a"], "dataset": ["x", "x", "y"], "psnr": [1.23456, 2.0, 3.5]}).to_csv(
        tables / "t.csv", index=False)
    return tables


def test_fill_rewrites_only_marked_tables_with_columns_rows_and_format(tmp_path):
    tables = _tables(tmp_path)
    text = ("intro | not | a table\n<!-- table t columns=model,psnr where=dataset=x fmt=.2f -->\nold\n"
            "<!-- /table -->\nprose\n<!-- table t -->\n<!-- /table -->\n")
    out = readme.fill(text, tables, tmp_path / "README.md")
    first, second = out.split("prose")
    assert first.startswith("intro | not | a table\n")
    assert "old" not in first and "| a       |   1.23 |" in first and "| dataset" not in first and "3.50" not in first
    assert "| y         |  3.500 |" in second  # every row and column, default format
    assert readme.fill(out, tables, tmp_path / "README.md") == out  # idempotent


def test_stale_and_update(tmp_path):
    tables = _tables(tmp_path)
    path = tmp_path / "README.md"
    path.write_text("# x\n<!-- table t where=model=b -->\n<!-- /table -->\n")
    assert readme.stale(path, tables) == ["t"]
    assert readme.update(path, tables) == ["t"]
    assert readme.stale(path, tables) == [] and "2.000" in path.read_text()


@pytest.mark.parametrize("spec, problem", [
    ("missing", "does not hold"),
    ("t colour=red", "is not one of"),
    ("t columns=model,nope", "nope"),
    ("t where=nope=1", "nope"),
])
def test_bad_markers_name_the_file_and_the_problem(tmp_path, spec, problem):
    tables = _tables(tmp_path)
    with pytest.raises(ColorlabError, match=problem) as err:
        readme.render(spec, tables, tmp_path / "README.md")
    assert err.value.path is not None


def test_committed_readme_matches_committed_tables():
    path = settings.REPO_ROOT / "README.md"
    assert readme.MARKER.search(path.read_text()), "the README embeds no table from results/tables"
    assert readme.stale(path, settings.REPO_ROOT / "results" / "tables") == [], "run `make readme`"
