"""Writing results: tables (CSV + Markdown), figures (PNG) and JSON under results/.

Notebooks call these so every artefact lands in one predictable place and
is written atomically (temporary file, then rename): an interrupted run
never leaves a half-written table behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from colorlab import settings


def _atomic_write(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes files private; results are meant to be read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return _atomic_write(Path(path), lambda p: p.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> Path:
    return _atomic_write(Path(path), lambda p: p.write_text(text))


def out_dir(kind: str, root: Path | None = None) -> Path:
    """results/<kind> (tables, figures, json), or under `root`."""
    return Path(root or settings.results_dir()) / kind


def save_table(df, name: str, root: Path | None = None, floatfmt: str = ".3f") -> Path:
    """Write `df` as results/tables/<name>.csv and .md; returns the CSV path."""
    d = out_dir("tables", root)
    csv = atomic_write_text(d / f"{name}.csv", df.to_csv(index=False))
    atomic_write_text(d / f"{name}.md", df.to_markdown(index=False, floatfmt=floatfmt) + "\n")
    return csv


def save_figure(fig, name: str, root: Path | None = None, dpi: int = 110) -> Path:
    """Write a matplotlib figure as results/figures/<name>.png."""
    return _atomic_write(out_dir("figures", root) / f"{name}.png", lambda p: fig.savefig(p, dpi=dpi, bbox_inches="tight", format="png"))


def save_json(obj: Any, name: str, root: Path | None = None) -> Path:
    return atomic_write_text(out_dir("json", root) / f"{name}.json", json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
