"""MiniPlaces (MIT CSAIL): 100 scene classes, 128x128 JPEGs, object polygons for a subset.

Layout (the original's: the image tarball plus the dev kit's lists)::

    categories.txt          "/a/abbey 0" ... "/y/yard 99"
    object_categories.txt   "arcade_machine 0" ... "worktop 174"
    train.txt, val.txt      "train/a/abbey/00000001.jpg 0", "val/00000001.jpg 71"
    images/{train,val,test}/...
    objects/{train,val}/<same path as the image>.xml

Class names are nested: the class is everything between the letter folder and
the file name, so "/b/bakery/shop" is the class "bakery/shop".

Object annotations. Each XML file is a *sequence* of elements with no single
root (`<filename>`, `<folder>`, `<class>` = the scene id, optional
`<scenedescription>`, then one `<objects>` per object holding a `<class>` id
and a `<polygon>` of `<pt><x/><y/></pt>`), so we wrap it in one root element
before parsing. Points are 1-based pixel coordinates of the 128x128 image
(every one of the 741,411 points in the mirror lies in 1..128), hence the -1.
Rasterisation rule: a pixel belongs to a polygon when it is inside it or on
its outline (`cv2.fillPoly`; the points are whole pixels already, and
`skimage.draw.polygon`, which leaves out part of the outline, agrees on 98.6%
of pixels but is 50 times slower); objects are painted in file order, so a later object
paints over an earlier one where they overlap; pixels outside every polygon
get `NO_OBJECT`; polygons with fewer than 3 points are ignored. The file
order is the only order the annotation gives: depth is not recorded, and in
the mirror the later of two overlapping polygons is the smaller one in only
56% of pairs (measured on every 5th train file), so "smaller in front" would
be no better founded.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from colorlab.data.sample import Sample

ANNOTATION_SIZE = 128  # polygon coordinates are pixels of the 128x128 image
NO_OBJECT = 255


def _id_list(path: Path) -> list[tuple[str, int]]:
    """Lines "<name> <id>" -> [(name, id)], checked to be ids 0..n-1 in some order."""
    pairs = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        name, _, num = line.strip().rpartition(" ")
        if not name or not num.isdigit():
            raise ValueError(f"{path}:{i}: expected '<name> <id>', got {line!r}")
        pairs.append((name, int(num)))
    if sorted(i for _, i in pairs) != list(range(len(pairs))):
        raise ValueError(f"{path}: ids are not 0..{len(pairs) - 1}")
    return sorted(pairs, key=lambda p: p[1])


def class_names(root: Path) -> list[str]:
    """The 100 scene classes by id; "/b/bakery/shop" -> "bakery/shop"."""
    return [name.strip("/").split("/", 1)[-1] for name, _ in _id_list(root / "categories.txt")]


def object_names(root: Path) -> list[str]:
    """The 175 object categories by id (the values of an object map)."""
    return [name for name, _ in _id_list(root / "object_categories.txt")]


def _annotated(root: Path, split: str) -> set[str]:
    """Relative paths (without suffix) of the images of `split` that have an object XML."""
    base = root / "objects"
    found = set()
    for dirpath, _, files in os.walk(base / split):
        rel = Path(dirpath).relative_to(base).as_posix()
        found.update(f"{rel}/{f[:-4]}" for f in files if f.endswith(".xml"))
    return found


def samples(root: Path, split: str) -> list[Sample]:
    """Images listed in `<split>.txt`, sorted by name; `objects` set where an XML exists."""
    listing = root / f"{split}.txt"
    if not listing.is_file():
        raise FileNotFoundError(f"{listing}: the MiniPlaces {split} list is missing (it comes with the dev kit)")
    n_classes = len(class_names(root))
    annotated = _annotated(root, split)
    out = []
    for i, line in enumerate(listing.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        rel, _, label = line.strip().rpartition(" ")
        if not rel or not label.isdigit() or int(label) >= n_classes:
            raise ValueError(f"{listing}:{i}: expected '<image path> <class id 0..{n_classes - 1}>', got {line!r}")
        stem = rel.rsplit(".", 1)[0]
        objects = root / "objects" / f"{stem}.xml" if stem in annotated else None
        out.append(Sample(root / "images" / rel, int(label), rel, objects))
    return sorted(out, key=lambda s: s.name)


def read_objects(xml_path: Path) -> list[tuple[int, np.ndarray]]:
    """The objects of one annotation file, in file order: [(category id, (K, 2) float x, y 1-based)]."""
    raw = Path(xml_path).read_bytes()
    try:
        root = ET.fromstring(b"<annotation>" + raw + b"</annotation>")  # the file has no single root
    except ET.ParseError as e:
        raise ValueError(f"{xml_path}: not a MiniPlaces object annotation ({e})") from e
    objects = []
    for obj in root.iter("objects"):
        cls = (obj.findtext("class") or "").strip()
        if not cls.isdigit():
            raise ValueError(f"{xml_path}: object without a numeric <class> ({cls!r})")
        pts = [(float(p.findtext("x")), float(p.findtext("y"))) for p in obj.iterfind("polygon/pt")]
        objects.append((int(cls), np.asarray(pts, dtype=np.float64).reshape(-1, 2)))
    return objects


def object_map(xml_path: Path, size: int = ANNOTATION_SIZE) -> np.ndarray:
    """Per-pixel object ids (size, size) uint8, NO_OBJECT where no polygon covers a pixel.

    Rasterised at 128x128, the annotation's own grid, then resized with
    nearest neighbour so ids stay ids. Later objects paint over earlier ones
    (see the module doc).
    """
    import cv2

    grid = np.full((ANNOTATION_SIZE, ANNOTATION_SIZE), NO_OBJECT, dtype=np.uint8)
    for cls, pts in read_objects(xml_path):
        if cls >= NO_OBJECT:
            raise ValueError(f"{xml_path}: object class {cls} does not fit the uint8 map (255 = no object)")
        if len(pts) < 3:
            continue
        cv2.fillPoly(grid, [np.round(pts - 1).astype(np.int32)], cls)  # 1-based -> 0-based pixels
    if size == ANNOTATION_SIZE:
        return grid
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_NEAREST)


def arrange(extracted: Path, out: Path) -> None:
    """Move the tarball's `images/` (and `objects/`) into `out`, our layout.

    The dev-kit lists arrive as single files already in `out`. The tarball's
    folders are found wherever they sit (top level or one folder down).
    """
    images = _find_dir(extracted, lambda d: d.name == "images" and (d / "train").is_dir())
    if images is None:  # a tarball that holds train/ val/ directly
        images = _find_dir(extracted, lambda d: (d / "train").is_dir() and (d / "val").is_dir())
    if images is None:
        raise ValueError(f"{extracted}: no images/train folder in the MiniPlaces archive")
    os.replace(images, out / "images")
    objects = _find_dir(extracted, lambda d: d.name == "objects" and (d / "train").is_dir())
    if objects is not None:
        os.replace(objects, out / "objects")


def _find_dir(top: Path, want, depth: int = 3) -> Path | None:
    frontier = [top]
    for _ in range(depth):
        frontier = sorted(d for parent in frontier for d in parent.iterdir() if d.is_dir() and not d.is_symlink())
        for d in frontier:
            if want(d):
                return d
    return None
