"""Adaptive image clustering: Algorithm 3 of Cheng et al., "Deep Colorization" (journal version, arXiv 1605.00075).

The ICCV paper trains one net on every reference image and uses no global
information (sec. 3.2.4). The journal version brings global information back
by clustering the reference images and training one net per cluster:

    l := 0; N^0 clusters on the top layer
    while size(Lambda) >= mu:
        group Lambda into N^l clusters (k-means on a global image descriptor)
        compute each cluster's semantic histogram
        train a net on each cluster
        remove every image I whose training error E(I) = -PSNR <= epsilon
        l := l + 1; N^l := size(Lambda) / mu

At test time the target's global descriptor and semantic histogram pick the
nearest cluster, whose net colourises it (journal Alg. 2, Fig. 7: without the
semantic histogram a wheat field can borrow a "globally similar" sky cluster).

What the paper does not give (REFERENCES sec. 1.5, all chosen here):
- the global descriptor: `global_descriptor`, an 8 x 8 area-downsampled gray
  thumbnail (layout of light and dark) plus a 16-bin gray histogram (tonal
  content), each z-scored over the reference images before k-means;
- the semantic histogram: the fraction of pixels whose most probable parser
  class is each class (`semantic_histogram`);
- the distance at test time: `distances`, mean squared difference of the
  standardised descriptors plus `semantic_weight` times the L1 distance of the
  histograms (both are about 0..2 for typical images, so weight 1 = equal say);
- epsilon, mu, N^0 and a cap on the number of layers (the loop need not end
  when no image ever gets below epsilon): arguments, set in the model config;
- layers: the journal's N^l := size(Lambda_(i,l)) / mu can be read as a tree
  (each cluster split again); we follow the flat reading, re-clustering every
  image still left, and give nets only to clusters with >= mu images (mu is
  "the minimal number of reference images needed to train one DNN"); images
  of smaller clusters stay for the next layer.
- test-time choice among layers: the nearest centre over the clusters of all
  layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

THUMB = 8  # thumbnail side of the global descriptor
GRAY_BINS = 16  # bins of its gray histogram


def global_descriptor(gray: np.ndarray, thumb: int = THUMB, bins: int = GRAY_BINS) -> np.ndarray:
    """(H, W) gray in [0, 1] -> (thumb^2 + bins,) float32: thumbnail then normalised histogram."""
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2:
        raise ValueError(f"global_descriptor expects an (H, W) gray image, got shape {gray.shape}")
    small = cv2.resize(gray, (thumb, thumb), interpolation=cv2.INTER_AREA).ravel()
    hist = np.histogram(gray, bins=bins, range=(0.0, 1.0))[0].astype(np.float32)
    return np.concatenate([small, hist / max(hist.sum(), 1.0)]).astype(np.float32)


def semantic_histogram(probs: np.ndarray) -> np.ndarray:
    """(..., N) per-pixel class probabilities -> (N,): fraction of pixels whose argmax is each class."""
    probs = np.asarray(probs)
    n = probs.shape[-1]
    labels = probs.reshape(-1, n).argmax(axis=1)
    return (np.bincount(labels, minlength=n) / max(len(labels), 1)).astype(np.float32)


@dataclass
class Standardizer:
    """z-score with the reference images' statistics; constant columns keep scale 1."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardizer":
        std = x.std(axis=0)
        return cls(x.mean(axis=0).astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)


@dataclass
class Cluster:
    """One cluster of one layer: its members, centre, semantic histogram and net."""

    layer: int
    members: np.ndarray  # indices into the reference images
    centre: np.ndarray  # (G,) standardised global descriptor
    histogram: np.ndarray  # (N,) mean semantic histogram of the members (N may be 0)
    net: object = None
    errors: np.ndarray = field(default_factory=lambda: np.zeros(0))  # E(I) of each member


def distances(desc: np.ndarray, hist: np.ndarray, centres: np.ndarray, histograms: np.ndarray,
              semantic_weight: float) -> np.ndarray:
    """Distance of one target to every cluster: mean squared descriptor gap + weight * L1 histogram gap."""
    d = ((centres - desc[None]) ** 2).mean(axis=1)
    if histograms.shape[1] and semantic_weight:
        d = d + semantic_weight * np.abs(histograms - hist[None]).sum(axis=1)
    return d


def nearest(desc: np.ndarray, hist: np.ndarray, centres: np.ndarray, histograms: np.ndarray,
            semantic_weight: float) -> int:
    """Index of the cluster whose net colourises the target (journal Alg. 2, step 0)."""
    return int(np.argmin(distances(desc, hist, centres, histograms, semantic_weight)))


def adaptive_clustering(
    descriptors: np.ndarray,
    histograms: np.ndarray,
    train: Callable[[np.ndarray, int], object],
    error: Callable[[object, np.ndarray], np.ndarray],
    n0: int,
    mu: int,
    epsilon: float,
    max_layers: int = 4,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[Cluster]:
    """Algorithm 3 of Cheng et al. (journal): clusters of every layer, each with a trained net.

    descriptors: (n, G) standardised global descriptors of the reference images;
    histograms: (n, N) their semantic histograms (N = 0: none);
    train(members, index) -> net; error(net, members) -> E(I) = -PSNR of each member.
    """
    from sklearn.cluster import KMeans  # imported here: loading a trained model does not need it

    if mu < 1 or n0 < 1:
        raise ValueError(f"adaptive_clustering needs mu >= 1 and n0 >= 1, got mu={mu}, n0={n0}")
    remaining = np.arange(len(descriptors))
    n_clusters, clusters = n0, []
    for layer in range(max_layers):
        if len(remaining) < mu:
            break
        k = int(np.clip(n_clusters, 1, len(remaining)))
        labels = KMeans(k, n_init=10, random_state=seed + layer).fit_predict(descriptors[remaining])
        leaving = []
        for c in range(k):
            members = remaining[labels == c]
            if len(members) < mu:  # too few to train a net: they stay for the next layer
                continue
            net = train(members, len(clusters))
            errors = np.asarray(error(net, members), dtype=np.float64)
            clusters.append(Cluster(layer, members, descriptors[members].mean(axis=0),
                                    histograms[members].mean(axis=0), net, errors))
            leaving.append(members[errors <= epsilon])
        left = np.concatenate(leaving) if leaving else np.zeros(0, dtype=int)
        if log:
            log(f"layer {layer}: {k} clusters over {len(remaining)} images, {len(left)} leave (E <= {epsilon})")
        remaining = np.setdiff1d(remaining, left)
        n_clusters = len(remaining) // mu
    return clusters
