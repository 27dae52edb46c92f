"""What the scene parser learns: N classes built from a dataset's annotations.

`objects` (MiniPlaces): the paper's parser knew 47 object categories
(Cheng et al. 2015 sec. 4). MiniPlaces annotates 175 categories on ~3,500
train images; we keep the N-1 most frequent by annotated pixel count on the
train split (at the parser's working size; ties broken by category id) and
merge the rest into "other_object". With N = 47 the kept 46 cover 93% of the
annotated pixels; wall, floor and sky alone cover 54%. Pixels no polygon
covers (object id 255, ~10% of an annotated image) are *ignored* in the loss
and in the scores rather than made a class: they are a mix of everything
the annotators skipped, not a kind of thing. Images with no annotation at
all are left out.

`colours` (the smoke dataset, which has no annotations): a stand-in so the
pipeline runs without data. The classes are k-means clusters of the ground
truth's ab chrominance, so the "parser" learns to guess a colour class from
gray. It is not a scene parser; its scores say nothing about the paper.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from colorlab import color

IGNORE = 255  # label of pixels that count neither in the loss nor in the scores
KINDS = ("objects", "colours")
_KMEANS_PIXELS = 20_000  # pixels sampled for the colour clusters
_CHUNK = 64  # images per chunk when converting to Lab


@dataclass(frozen=True)
class LabelSet:
    """How raw annotations become class ids 0..N-1 (stored with the parser, so scoring uses the same rule)."""

    kind: str
    names: tuple[str, ...]
    table: tuple[int, ...] = ()  # objects: raw object id (0..255) -> class id, IGNORE for "no object"
    centres: tuple[tuple[float, float], ...] = ()  # colours: ab centre of each class

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "table", tuple(int(t) for t in self.table))
        object.__setattr__(self, "centres", tuple(tuple(float(v) for v in c) for c in self.centres))

    @property
    def n_classes(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict:
        return asdict(self)

    def apply(self, rgb: np.ndarray | None = None, objects: np.ndarray | None = None) -> np.ndarray:
        """Class ids uint8 (N, H, W) from raw object maps (`objects`) or from the colour images (`colours`)."""
        if self.kind == "objects":
            if objects is None:
                raise ValueError("an 'objects' label set needs the per-pixel object maps")
            return np.asarray(self.table, dtype=np.uint8)[np.asarray(objects)]
        if rgb is None:
            raise ValueError("a 'colours' label set needs the colour images")
        centres = torch.tensor(self.centres, dtype=torch.float32)  # (K, 2)
        out = np.empty(rgb.shape[:3], dtype=np.uint8)
        for i in range(0, len(rgb), _CHUNK):
            ab = _ab(rgb[i : i + _CHUNK])  # (B, H, W, 2)
            out[i : i + _CHUNK] = torch.cdist(ab.reshape(-1, 2), centres).argmin(1).reshape(ab.shape[:3]).numpy()
        return out


def _ab(rgb_u8: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> ab (B, H, W, 2) float32."""
    return color.rgb_to_lab(color.to_float(np.asarray(rgb_u8)))[:, 1:].permute(0, 2, 3, 1).contiguous()


def fit_objects(objects: np.ndarray, names: list[str], n_classes: int) -> LabelSet:
    """Keep the n_classes-1 most frequent categories by pixel count; merge the rest into "other_object"."""
    if n_classes < 2:
        raise ValueError(f"the parser needs at least 2 classes, got {n_classes}")
    counts = np.bincount(np.asarray(objects).ravel(), minlength=256)[: len(names)]
    kept = np.argsort(-counts, kind="stable")[: n_classes - 1]
    table = np.full(256, n_classes - 1, dtype=np.int64)
    table[kept] = np.arange(len(kept))
    table[IGNORE] = IGNORE
    return LabelSet("objects", tuple(names[i] for i in kept) + ("other_object",), table=tuple(table))


def fit_colours(rgb: np.ndarray, n_classes: int, seed: int = 0) -> LabelSet:
    """k-means (scikit-learn) of the ground-truth ab of a seeded sample of pixels: the smoke stand-in."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    n, h, w = rgb.shape[:3]
    flat = rng.choice(n * h * w, size=min(_KMEANS_PIXELS, n * h * w), replace=False)
    img, pix = np.divmod(flat, h * w)
    sample = np.asarray(rgb)[img, pix // w, pix % w][:, None, None]  # (P, 1, 1, 3)
    ab = _ab(sample).reshape(-1, 2).numpy()
    km = KMeans(n_clusters=n_classes, n_init=3, random_state=seed).fit(ab)
    centres = km.cluster_centers_[np.lexsort(km.cluster_centers_.T[::-1])]  # sorted by a, then b
    return LabelSet("colours", tuple(f"colour_{k:02d}" for k in range(n_classes)), centres=tuple(map(tuple, centres)))
