"""`smoke`: nine colour photos that ship inside scikit-image and scikit-learn, so every
notebook and test can run with no dataset and no network.

The photos are written once as PNG files under `settings.cache_dir()/smoke/`
so they go through the same file-based code path as every real dataset.
Each photo is first shrunk (area interpolation) so its shorter side is
`SHORT_SIDE` pixels: smoke runs must take seconds, and the largest one
(retina) is 1411 px. Then

- `train`: the four corner squares of side `SHORT_SIDE // 2` (one per
  quadrant, each the largest square that fits in it), label = photo index;
- `val`: the centre square of side `SHORT_SIDE`, same labels.

`val` overlaps `train`: this split exists to exercise code, not to measure
generalisation.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from colorlab import images, settings
from colorlab.data.sample import Sample

SHORT_SIDE = 256
# (name, library, file shipped inside the library's package)
PHOTOS = (
    ("astronaut", "skimage", "data/astronaut.png"),
    ("chelsea", "skimage", "data/chelsea.png"),
    ("coffee", "skimage", "data/coffee.png"),
    ("rocket", "skimage", "data/rocket.jpg"),
    ("immunohistochemistry", "skimage", "data/ihc.png"),
    ("hubble_deep_field", "skimage", "data/hubble_deep_field.jpg"),
    ("retina", "skimage", "data/retina.jpg"),
    ("china", "sklearn", "datasets/images/china.jpg"),
    ("flower", "sklearn", "datasets/images/flower.jpg"),
)
CORNERS = ("tl", "tr", "bl", "br")
_STAMP = "photos.txt"  # written last: the folder is complete and built by this version


def _load(name: str, library: str, file: str) -> np.ndarray:
    """The photo read straight from the installed package (importing scikit-learn alone takes
    seconds); the library's own loader where the file is not where this version keeps it."""
    spec = importlib.util.find_spec(library)  # locates the package without importing it
    path = Path(spec.origin).parent / file if spec and spec.origin else None
    if path is not None and path.is_file():
        return images.read_rgb(path)
    if library == "skimage":
        import skimage.data

        return getattr(skimage.data, name)()
    from sklearn.datasets import load_sample_image

    return load_sample_image(Path(file).name)


def _shrink(rgb: np.ndarray) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    scale = SHORT_SIDE / min(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(SHORT_SIDE, round(w * scale)), max(SHORT_SIDE, round(h * scale))), interpolation=cv2.INTER_AREA)


def crops(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """The four corner squares (train) and the centre square ("centre", val) of one photo."""
    h, w = rgb.shape[:2]
    s = min(h, w) // 2
    out = {"tl": rgb[:s, :s], "tr": rgb[:s, w - s:], "bl": rgb[h - s:, :s], "br": rgb[h - s:, w - s:]}
    c = min(h, w)
    top, left = (h - c) // 2, (w - c) // 2
    out["centre"] = rgb[top:top + c, left:left + c]
    return out


def _stamp_text() -> str:
    return f"short side {SHORT_SIDE}\n" + "".join(f"{name}\n" for name, *_ in PHOTOS)


def build() -> Path:
    """Write the smoke photos into the cache once; returns their folder."""
    root = settings.cache_dir() / "smoke"
    stamp = root / _STAMP
    if stamp.is_file() and stamp.read_text() == _stamp_text():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smoke.", dir=root.parent))
    try:
        for name, library, file in PHOTOS:
            parts = crops(_shrink(_load(name, library, file)))
            for corner in CORNERS:
                images.write_image(tmp / "train" / f"{name}_{corner}.png", np.ascontiguousarray(parts[corner]))
            images.write_image(tmp / "val" / f"{name}.png", np.ascontiguousarray(parts["centre"]))
        (tmp / _STAMP).write_text(_stamp_text())
        if stamp.is_file() and stamp.read_text() == _stamp_text():
            return root  # another process finished first: keep its folder, which others may be reading
        if root.exists():  # an older or unfinished build
            shutil.rmtree(root, ignore_errors=True)
        try:
            os.rename(tmp, root)
        except OSError:  # another process finished first
            if not (stamp.is_file() and stamp.read_text() == _stamp_text()):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def class_names(root: Path | None = None) -> list[str]:
    return [name for name, *_ in PHOTOS]


def samples(root: Path, split: str) -> list[Sample]:
    if split == "train":
        return [Sample(root / "train" / f"{name}_{c}.png", i, f"train/{name}_{c}")
                for i, (name, *_) in enumerate(PHOTOS) for c in CORNERS]
    return [Sample(root / "val" / f"{name}.png", i, f"val/{name}") for i, (name, *_) in enumerate(PHOTOS)]
