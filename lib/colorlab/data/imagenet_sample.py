"""imagenet-sample: one ILSVRC-2012 validation-style image per class, `nXXXXXXXX_<label>.JPEG`.

The label is read from the file name: the class index is the position of the
wnid among the sorted wnids of the files, which for the full 1,000 is the
usual ILSVRC-2012 index (0 = n01440764 tench); the human-readable name is the
rest of the file name with "_" read as a space. 23 of the photos are
grayscale in the source itself; `data.decoded` skips them and lists them in
`Decoded.skipped`, since they have no colour ground truth.

The mirror's files are *derived* from the originals (shorter side resized to
256 px with Lanczos, re-encoded as JPEG quality 90); `arrange` does the same
to a fresh download.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from colorlab.data.sample import Sample

N_CLASSES = 1000
SHORT_SIDE = 256  # the mirror's derivation
JPEG_QUALITY = 90
_NAME = re.compile(r"^(n\d{8})_(.+)\.jpe?g$", re.IGNORECASE)


def _files(root: Path) -> list[tuple[str, str, Path]]:
    """[(wnid, human label, path)] sorted by wnid; one file per wnid."""
    found = {}
    for p in sorted(root.iterdir()):
        m = _NAME.match(p.name)
        if not m:
            continue
        if m.group(1) in found:
            raise ValueError(f"{root}: two images for class {m.group(1)}: {found[m.group(1)][2].name} and {p.name}")
        found[m.group(1)] = (m.group(1), m.group(2).replace("_", " "), p)
    if len(found) != N_CLASSES:
        warnings.warn(f"{root}: {len(found)} class images instead of {N_CLASSES}; labels are positions among "
                      f"these wnids, not ILSVRC-2012 indices", stacklevel=3)
    return [found[w] for w in sorted(found)]


def class_names(root: Path) -> list[str]:
    return [label for _, label, _ in _files(root)]


def samples(root: Path, split: str = "all") -> list[Sample]:
    return [Sample(p, i, p.stem) for i, (_, _, p) in enumerate(_files(root))]


def arrange(extracted: Path, out: Path) -> None:
    """Derive the mirror's 256 px JPEGs from the repository zip's full-size originals."""
    from PIL import Image

    originals = sorted(p for p in extracted.rglob("*") if _NAME.match(p.name) and p.is_file())
    if not originals:
        raise ValueError(f"{extracted}: no nXXXXXXXX_<label>.JPEG files in the imagenet-sample archive")
    for p in originals:
        with Image.open(p) as im:
            im = im if im.mode in ("L", "RGB") else im.convert("RGB")
            scale = SHORT_SIDE / min(im.size)
            size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
            im.resize(size, Image.Resampling.LANCZOS).save(out / p.name, format="JPEG", quality=JPEG_QUALITY)
