"""SUN8: 8 scene classes of the SUN database with the train/test split of `traintest.mat`.

Layout: `<class>/sun_*.jpg` and `traintest.mat`, the course assignment's
split (CMU 16-720, as mirrored from `nhantd/CMU16720-Scene-Classification`,
`data/images/`). The MAT file holds, as MATLAB cell arrays of strings and
uint8 column vectors:

    mapping                      (1, 8)   class names; label k is mapping[k - 1]
    train_imagenames/_labels     (1483, 1) "airport/sun_apryudtkjxleibce.jpg", 1..8
    test_imagenames/_labels      (160, 1)
    all_imagenames/_labels       (1643, 1) train + test

Labels are 1-based in the file and 0-based here.
"""

from __future__ import annotations

from pathlib import Path

from colorlab.data.sample import Sample


def _load(root: Path) -> dict:
    from scipy.io import loadmat

    path = root / "traintest.mat"
    try:
        return loadmat(path)
    except Exception as e:  # scipy raises ValueError, TypeError, OSError... on a bad file
        raise ValueError(f"{path}: cannot read the SUN8 split file ({type(e).__name__}: {e})") from e


def _strings(cells) -> list[str]:
    return [str(c.ravel()[0]) for c in cells.ravel()]


def class_names(root: Path) -> list[str]:
    return _strings(_load(root)["mapping"])


def samples(root: Path, split: str) -> list[Sample]:
    mat = _load(root)
    classes = _strings(mat["mapping"])
    names = _strings(mat[f"{split}_imagenames"])
    labels = [int(x) - 1 for x in mat[f"{split}_labels"].ravel()]
    if len(names) != len(labels):
        raise ValueError(f"{root / 'traintest.mat'}: {len(names)} {split} names but {len(labels)} labels")
    out = []
    for name, label in zip(names, labels):
        if not 0 <= label < len(classes) or name.split("/", 1)[0] != classes[label]:
            raise ValueError(f"{root / 'traintest.mat'}: {name} has label {label + 1}, which is not its folder's class")
        out.append(Sample(root / name, label, name))
    return sorted(out, key=lambda s: s.name)


def arrange(extracted: Path, out: Path) -> None:
    """Move the repository zip's `data/images/` (class folders + traintest.mat) into `out`."""
    import os

    found = sorted(p.parent for p in extracted.rglob("traintest.mat") if p.parent.name == "images")
    if not found:
        raise ValueError(f"{extracted}: no data/images/traintest.mat in the SUN8 archive")
    for child in sorted(found[0].iterdir()):
        os.replace(child, out / child.name)
