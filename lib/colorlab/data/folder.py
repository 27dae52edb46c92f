"""Any folder of images a user points at (`data.samples("/path/to/photos", "all")`).

Every image file under the folder counts (`colorlab.images.list_images`:
by extension, recursively, hidden files left out), sorted by relative path.
Split `all` is the folder itself; any other split name is the subfolder of
that name (`photos/train`, `photos/val`). Labels follow the common
one-subfolder-per-class layout: when every image sits inside a subfolder of
the split's folder, the label is the index of that subfolder among the sorted
subfolder names; otherwise images have no label (-1).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from colorlab import images, keys
from colorlab.data.sample import Sample


def _base(root: Path, split: str) -> Path:
    base = root if split in ("all", "") else root / split
    if not base.is_dir():
        raise FileNotFoundError(f"{base}: no such folder (split {split!r} of the image folder {root})")
    return base


def _classes(base: Path, files: list[Path]) -> list[str] | None:
    rels = [f.relative_to(base).parts for f in files]
    if not rels or any(len(parts) < 2 for parts in rels):
        return None
    return sorted({parts[0] for parts in rels})


def class_names(root: Path, split: str = "all") -> list[str]:
    base = _base(root, split)
    return _classes(base, images.list_images(base)) or []


def samples(root: Path, split: str = "all") -> list[Sample]:
    base = _base(root, split)
    files = images.list_images(base)
    classes = _classes(base, files)
    index = {c: i for i, c in enumerate(classes or [])}
    out = []
    for f in files:
        rel = f.relative_to(base)
        out.append(Sample(f, index[rel.parts[0]] if classes else -1, rel.as_posix()))
    return out


def content_digest(root: Path, split: str = "all") -> str:
    """SHA-256 of the folder's images by content: their relative paths and bytes, not the folder's
    own name or place, so a run keyed by it retrains when a photo is added and not when the folder moves."""
    base = _base(Path(root), split)
    h = hashlib.sha256()
    for f in images.list_images(base):
        h.update(f"{f.relative_to(base).as_posix()}\0{keys.file_sha256(f)}\n".encode())
    return h.hexdigest()
