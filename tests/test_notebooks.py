"""Every numbered notebook: committed clean, a proper `parameters` cell, and a smoke run through papermill
that writes tables and figures we can read."""

import ast
import json
import math
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from colorlab import notebooks

NOTEBOOKS = notebooks.discover()


def _ids(paths):
    return [p.stem for p in paths]


def test_notebooks_exist_in_order():
    assert NOTEBOOKS, "no numbered notebooks found"
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
    assert NOTEBOOKS[0].name.startswith("00_")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_without_outputs(path):
    assert not notebooks.has_outputs(path), f"{path.name} carries outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_parameters_cell_holds_upper_case_literals(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0], f"{path.name}: the first code cell must be the only one tagged 'parameters'"
    names = {}
    for stmt in ast.parse(tagged[0].source).body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name), \
            f"{path.name}: parameters cell may only assign names"
        name = stmt.targets[0].id
        assert name.isupper(), f"{path.name}: parameter {name} is not UPPER_CASE"
        names[name] = ast.literal_eval(stmt.value)  # raises when not a literal
    assert names.get("PROFILE") == "cpu" and "SEED" in names, f"{path.name}: needs PROFILE = 'cpu' and SEED"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_cells_define_no_long_functions(path):
    """Logic lives in lib/colorlab: a notebook cell may hold only short helper functions."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 6, f"{path.name}: {node.name} is {length} lines; move it into lib/colorlab"


def _check_tables(tables: list[Path], name: str):
    assert tables, f"{name} wrote no table under results/tables"
    for csv in tables:
        df = pd.read_csv(csv)
        assert len(df), f"{csv.name} is empty"
        assert csv.with_suffix(".md").exists(), f"{csv.name} has no Markdown twin"
        numeric = df.select_dtypes("number")
        for col in numeric:
            values = numeric[col].dropna()
            assert not any(math.isinf(v) and "psnr" not in col.lower() for v in values), f"{csv.name}:{col} has inf"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_smoke_run_writes_results(path, tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_RESULTS", str(tmp_path / "results"))
    outcome = notebooks.run_one(path, "smoke", tmp_path / "executed")
    assert Path(outcome.executed).exists()
    prefix = path.name[:2]
    tables = sorted((tmp_path / "results" / "tables").glob(f"{prefix}*.csv"))
    figures = sorted((tmp_path / "results" / "figures").glob(f"{prefix}*.png"))
    _check_tables(tables, path.name)
    assert figures and all(f.stat().st_size > 1000 for f in figures), f"{path.name} wrote no figure"


def _write_notebook(path: Path, cells: list[str]):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(cells[0], metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in cells[1:]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.slow
def test_failing_notebook_is_named_with_its_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_RESULTS", str(tmp_path / "results"))
    nb = tmp_path / "00_broken.ipynb"
    _write_notebook(nb, ['PROFILE = "cpu"\nSEED = 0', "x = 1", "raise ValueError(f'boom {PROFILE}')"])
    with pytest.raises(notebooks.NotebookFailed) as err:
        notebooks.run_one(nb, "smoke", tmp_path / "executed")
    message = str(err.value)
    # the third cell as the user sees it (papermill's injected parameters cell is not counted)
    assert "00_broken.ipynb" in message and "cell 3 " in message and "boom smoke" in message


def test_check_clean_flags_outputs(tmp_path):
    nb = tmp_path / "00_x.ipynb"
    _write_notebook(nb, ['PROFILE = "cpu"\nSEED = 0'])
    assert notebooks.main(["--check-clean", str(nb)]) == 0
    data = json.loads(nb.read_text())
    data["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi"}]
    nb.write_text(json.dumps(data))
    assert notebooks.main(["--check-clean", str(nb)]) == 1
