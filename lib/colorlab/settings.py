"""Where things live: data, caches, trained runs and results.

Every path is anchored at the repository root or taken from an environment
variable, never from the current directory. Values are read when asked for,
not at import, so a test or notebook can point them elsewhere.

| setting   | environment variable | default                |
|-----------|----------------------|------------------------|
| data      | COLORLAB_DATA        | <repo>/data            |
| cache     | COLORLAB_CACHE       | <repo>/.cache          |
| runs      | COLORLAB_RUNS        | <cache>/runs           |
| results   | COLORLAB_RESULTS     | <repo>/results         |
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _from_env(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    """Root of the datasets (the local mirror, or where `colorlab data fetch` writes)."""
    return _from_env("COLORLAB_DATA", REPO_ROOT / "data")


def cache_dir() -> Path:
    """Decoded-image caches, classifier embeddings and other derived arrays."""
    return _from_env("COLORLAB_CACHE", REPO_ROOT / ".cache")


def runs_dir() -> Path:
    """Trained runs, one folder per config hash."""
    return _from_env("COLORLAB_RUNS", cache_dir() / "runs")


def results_dir() -> Path:
    """Tables and figures written by `make reproduce`."""
    return _from_env("COLORLAB_RESULTS", REPO_ROOT / "results")
