"""Each profile writes its own results: a smoke or gpu run never overwrites the cpu study the README shows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from colorlab import notebooks, settings


def test_smoke_results_go_to_their_own_git_ignored_folder(monkeypatch):
    monkeypatch.delenv("COLORLAB_RESULTS", raising=False)
    assert notebooks.results_root("cpu") == settings.results_dir()
    smoke = notebooks.results_root("smoke")
    assert smoke == settings.results_dir() / "smoke" and notebooks.results_root("gpu") == settings.results_dir() / "gpu"
    if shutil.which("git") is None or not (settings.REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    probe = smoke / "tables" / "02_results.csv"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=settings.REPO_ROOT)
    assert ignored.returncode == 0, f"{probe} would show in `git status` after `make reproduce PROFILE=smoke`"


def test_an_explicit_results_folder_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("COLORLAB_RESULTS", str(tmp_path))
    assert notebooks.results_root("smoke") == tmp_path


def test_reproduce_points_the_kernels_at_the_profile_folder(monkeypatch, tmp_path):
    """The notebooks' kernels inherit COLORLAB_RESULTS; it is restored afterwards."""
    monkeypatch.delenv("COLORLAB_RESULTS", raising=False)
    monkeypatch.setattr(settings, "results_dir", lambda: tmp_path)
    seen = []
    monkeypatch.setattr(notebooks, "run_one", lambda nb, profile, out_dir, *a: seen.append(
        (os.environ["COLORLAB_RESULTS"], out_dir)) or notebooks.Outcome(nb.name, 0.0, str(out_dir / nb.name)))
    notebooks.reproduce("smoke", only=["00"])
    assert seen == [(str(tmp_path / "smoke"), tmp_path / "smoke" / "executed")]
    assert "COLORLAB_RESULTS" not in os.environ
    record = (tmp_path / "smoke" / "json" / "reproduce_smoke_only_00.json").read_text()  # a part: its own record
    for field in ('"cpu"', '"isa"', '"commit"', '"caches_empty"'):
        assert field in record


def test_a_whole_run_over_filled_caches_keeps_the_empty_caches_record(monkeypatch, tmp_path):
    monkeypatch.delenv("COLORLAB_RESULTS", raising=False)
    monkeypatch.setattr(settings, "results_dir", lambda: tmp_path / "results")
    monkeypatch.setenv("COLORLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(notebooks, "discover", lambda only=None: [Path("00_a.ipynb")])
    monkeypatch.setattr(notebooks, "run_one", lambda nb, *a: notebooks.Outcome(nb.name, 1.0, str(tmp_path / nb.name)))
    folder = tmp_path / "results" / "smoke" / "json"
    notebooks.reproduce("smoke")
    assert json.loads((folder / "reproduce_smoke.json").read_text())["caches_empty"] is True
    (tmp_path / "cache" / "decoded").mkdir(parents=True)  # a derived array, no finished run
    notebooks.reproduce("smoke")
    assert json.loads((folder / "reproduce_smoke_cached.json").read_text())["caches_empty"] is False
    assert json.loads((folder / "reproduce_smoke.json").read_text())["caches_empty"] is True
