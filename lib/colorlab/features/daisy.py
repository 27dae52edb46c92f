"""Mid-level feature of Cheng et al. 2015 (sec. 3.2.2, sec. 4): dense DAISY at every pixel.

The paper gives only "4 locations and 8 orientations" (32-d). scikit-image's
DAISY has (rings * histograms + 1) * orientations values: the centre
histogram plus `histograms` on each ring. We read "4 locations" as the centre
plus 3 histograms on one ring: (1 * 3 + 1) * 8 = 32. Radius and normalisation
are not given in the paper (see `FeatureConfig`).
"""

from __future__ import annotations

import numpy as np
from skimage.feature import daisy

# scipy's Gaussian kernel reaches truncate * sigma pixels (skimage's default truncate)
_GAUSS_TRUNCATE = 4.0


def daisy_dim(rings: int, histograms: int, orientations: int) -> int:
    return (rings * histograms + 1) * orientations


def daisy_reach(radius: int, rings: int) -> int:
    """How far (pixels) a DAISY value looks: ring radius + Gaussian support + 1 for the gradient.

    skimage smooths the centre and ring i with sigma = radius * (i + 1) / (2 * rings),
    so the outer ring uses sigma = radius / 2.
    """
    sigma = radius / 2
    return radius + int(_GAUSS_TRUNCATE * sigma + 0.5) + 1


def mid_level(gray: np.ndarray, cfg) -> np.ndarray:
    """(H, W) gray -> (H, W, D) dense DAISY, D = (rings*histograms + 1) * orientations (32 by default).

    skimage.feature.daisy(step=1) returns descriptors only where the outer ring
    fits inside the image; padding by the radius (reflect) first gives one
    descriptor per pixel, so the output is aligned with the input.
    """
    r = cfg.daisy_radius
    padded = np.pad(np.asarray(gray, dtype=np.float32), r, mode="reflect")  # (H+2r, W+2r)
    desc = daisy(
        padded,
        step=1,
        radius=r,
        rings=cfg.daisy_rings,
        histograms=cfg.daisy_histograms,
        orientations=cfg.daisy_orientations,
        normalization=cfg.daisy_normalization,
    )  # (H, W, D)
    return np.ascontiguousarray(desc, dtype=np.float32)
