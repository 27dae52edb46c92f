"""One cache-key mechanism: config plus the normalised code of the producers' import closure."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from colorlab import keys

LIB = Path(keys.__file__).resolve().parent


@pytest.fixture
def tree(tmp_path):
    """A private copy of the colorlab package, to edit without touching the real one."""
    root = tmp_path / "colorlab"
    shutil.copytree(LIB, root, ignore=shutil.ignore_patterns("__pycache__"))
    keys.clear_cache()
    yield root
    keys.clear_cache()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


KOALA = ["colorlab.models.koalarization2017", "colorlab.train"]


def test_a_docstring_or_comment_edit_keeps_the_key(tree):
    before = keys.key({"cfg": 1}, KOALA, root=tree)
    edit(tree / "models" / "koalarization2017.py", '"""Baldassarre', '"""Edited docstring. Baldassarre')
    edit(tree / "models" / "layers.py", "\n", "\n# a new comment\n")
    edit(tree / "train.py", "def fit(", "def fit(  # a comment\n")
    assert keys.key({"cfg": 1}, KOALA, root=tree) == before


def test_a_code_edit_anywhere_in_the_import_closure_changes_the_key(tree):
    """Koalarization builds on the shared SameConv2d: editing it retrains Koalarization, not Iizuka."""
    koala, iizuka = keys.key({}, KOALA, root=tree), keys.key({}, ["colorlab.models.iizuka2016"], root=tree)
    assert "colorlab.models.layers" in keys.closure(KOALA, root=tree)
    edit(tree / "models" / "layers.py", "return ", "return 0 + ", )
    assert keys.key({}, KOALA, root=tree) != koala
    assert keys.key({}, ["colorlab.models.iizuka2016"], root=tree) == iizuka


def test_a_function_level_import_is_part_of_the_closure(tree):
    (tree / "lazy.py").write_text("def f():\n    from colorlab import color\n    return color\n")
    keys.clear_cache()
    assert "colorlab.color" in keys.closure(["colorlab.lazy"], root=tree)


def test_the_payload_is_hashed_canonically():
    assert keys.key({"a": 1, "b": (1, 2)}) == keys.key({"b": [1, 2], "a": 1})
    assert keys.key({"a": 1}) != keys.key({"a": 2})
    assert keys.key({"a": 1}, ["colorlab.color"]) != keys.key({"a": 1})


def test_no_hand_bumped_version_constants_remain():
    offenders = [f"{p.relative_to(LIB)}: {line.strip()}" for p in LIB.rglob("*.py")
                 for line in p.read_text().splitlines() if "_VERSION =" in line and not line.lstrip().startswith("#")]
    assert offenders == []
