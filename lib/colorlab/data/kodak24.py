"""Kodak Lossless True Color Image Suite: kodim01.png ... kodim24.png, 768x512 or 512x768.

No labels; one split, `all`. Far larger than the training images, so it is
where inference at full resolution is tested.
"""

from __future__ import annotations

from pathlib import Path

from colorlab.data.sample import Sample


def samples(root: Path, split: str = "all") -> list[Sample]:
    return [Sample(p, -1, p.stem) for p in sorted(root.glob("kodim[0-9][0-9].png"))]


def class_names(root: Path) -> list[str]:
    return []
