"""Writing results: tables (CSV + Markdown), figures (PNG) and JSON under results/.

Notebooks call these so every artefact lands in one predictable place and
is written atomically (temporary file, then rename): an interrupted run
never leaves a half-written table behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from colorlab import atomic, settings


# Other modules still call these names; `colorlab.atomic` is the one mechanism.
atomic_write_bytes = atomic.write_bytes
atomic_write_text = atomic.write_text


def out_dir(kind: str, root: Path | None = None) -> Path:
    """results/<kind> (tables, figures, json), or under `root`."""
    return Path(root or settings.results_dir()) / kind


def save_table(df, name: str, root: Path | None = None, floatfmt: str = ".3f") -> Path:
    """Write `df` as results/tables/<name>.csv and .md; returns the CSV path."""
    d = out_dir("tables", root)
    csv = atomic.write_text(d / f"{name}.csv", df.to_csv(index=False))
    atomic.write_text(d / f"{name}.md", df.to_markdown(index=False, floatfmt=floatfmt) + "\n")
    return csv


def save_figure(fig, name: str, root: Path | None = None, dpi: int = 110) -> Path:
    """Write a matplotlib figure as results/figures/<name>.png."""
    return atomic.save_figure(fig, out_dir("figures", root) / f"{name}.png", dpi)


def save_json(obj: Any, name: str, root: Path | None = None) -> Path:
    return atomic.write_text(out_dir("json", root) / f"{name}.json", json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
