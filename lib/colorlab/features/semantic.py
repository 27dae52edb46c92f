"""High-level feature of Cheng et al. 2015 (sec. 3.2.3): smoothed per-pixel class probabilities.

The scene parser (`features.parser`) labels the image at its working size;
its class probabilities are upsampled to full resolution and smoothed with
the domain transform (Gastal & Oliveira 2011, as in the paper) guided by the
gray image, so the semantic map snaps to the image's edges instead of the
parser's coarse blocks.
"""

from __future__ import annotations

import cv2
import numpy as np

# cv2.ximgproc's domain transform filters at most 4 channels per call
_DT_MAX_CHANNELS = 4


def smooth(gray: np.ndarray, probs: np.ndarray, sigma_spatial: float, sigma_color: float, iterations: int = 3) -> np.ndarray:
    """Edge-preserving smoothing of (H, W, N) maps guided by the (H, W) gray image, renormalised to sum to 1.

    Normalised-convolution domain transform (`DTF_NC`) of Gastal & Oliveira
    2011; `sigma_color` is in gray units (the guide is in [0, 1]). The filter
    is a convex combination of neighbours, so probabilities stay probabilities
    up to float rounding; we renormalise anyway.
    """
    guide = np.ascontiguousarray(gray, dtype=np.float32)
    probs = np.asarray(probs, dtype=np.float32)
    if probs.shape[:2] != guide.shape:
        raise ValueError(f"probabilities {probs.shape[:2]} and gray {guide.shape} differ in size")
    dt = cv2.ximgproc.createDTFilter(guide, float(sigma_spatial), float(sigma_color), cv2.ximgproc.DTF_NC, int(iterations))
    out = np.empty_like(probs)  # (H, W, N)
    for c in range(0, probs.shape[2], _DT_MAX_CHANNELS):  # a loop over channel groups, not pixels
        chunk = np.ascontiguousarray(probs[:, :, c : c + _DT_MAX_CHANNELS])
        out[:, :, c : c + _DT_MAX_CHANNELS] = dt.filter(chunk).reshape(chunk.shape)
    np.clip(out, 0, None, out=out)
    out /= np.maximum(out.sum(axis=2, keepdims=True), 1e-12)
    return out


def high_level(gray: np.ndarray, parser, cfg) -> np.ndarray:
    """(H, W) gray -> (H, W, N) class probabilities of `parser`, smoothed as in sec. 3.2.3."""
    if parser is None:
        raise ValueError("the 'semantic' feature level needs a scene parser: pass parser=experiments.cheng2015.load_parser(profile)")
    if parser.n_classes != cfg.semantic_classes:
        raise ValueError(
            f"the parser predicts {parser.n_classes} classes but FeatureConfig.semantic_classes is "
            f"{cfg.semantic_classes}; set semantic_classes={parser.n_classes}"
        )
    probs = parser.predict_proba(gray)  # (H, W, N), upsampled from the parser's working size
    return smooth(gray, probs, cfg.smooth_sigma_spatial, cfg.smooth_sigma_color, cfg.smooth_iterations)
