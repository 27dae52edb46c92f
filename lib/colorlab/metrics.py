"""How good a colourization is: PSNR, SSIM, AuC, colourfulness, and classification accuracy.

Image metrics take one prediction and its ground truth as 8-bit RGB arrays
`(H, W, 3)` uint8 of the same shape (convert model outputs with
`colorlab.color.to_uint8`). None of the three papers reports a shared metric
on a shared test set, so the study scores all of them with the same four:

- `psnr`: on the 8-bit RGB values, peak 255, mean squared error over every
  pixel and channel (Cheng et al. 2015 print it under their figures).
- `ssim`: scikit-image's SSIM on the RGB image (`channel_axis=-1`,
  `data_range=255`, its default 7 x 7 uniform window, mean over channels),
  its formula computed with OpenCV's box filter over the three channels at
  once (the same value to 1e-9, several times faster on a Kodak photo).
- `auc`: Zhang et al. 2016 ("Colorful Image Colorization", sec. 3.1): the
  share of pixels whose ab error is within t, averaged over t = 0..150.
- `colorfulness_ratio`: Hasler & Suesstrunk 2003 colourfulness of the
  prediction over that of the ground truth (1 = as colourful; grey
  predictions score 0, the classic failure of regression losses).

`summarize` gives the mean and its 95% confidence interval for the study's
tables. Every image metric takes the ground truth as the array or as a `Truth`,
which keeps what the metrics need of it (its ab, SSIM's window terms, its
colourfulness) for the next prediction of the same photo.
"""

from __future__ import annotations

import functools
from typing import Iterable

import cv2
import numpy as np
import scipy.stats
import torch

from colorlab import color

PEAK = 255.0
AUC_MAX_THRESHOLD = 150  # Zhang et al. 2016 sec. 3.1: thresholds from 0 to 150 ab units
SSIM_WINDOW = 7  # scikit-image's default window side
SSIM_K1, SSIM_K2 = 0.01, 0.03  # Wang et al. 2004's constants, scikit-image's defaults


def _checked(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 RGB (H, W, 3), got {x.dtype}; convert with colorlab.color.to_uint8")
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"{name} must be an (H, W, 3) image, got shape {x.shape}")
    return x


class Truth:
    """A ground truth and what the metrics need of it, each made on first use and kept: scoring several
    predictions of one photo (`study.evaluate`) converts it to ab, filters it for SSIM and measures its
    colourfulness once. Every metric takes a `Truth` or the bare uint8 array, with the same result."""

    def __init__(self, rgb: np.ndarray):
        self.rgb = _checked("truth", rgb)  # (H, W, 3) uint8

    @functools.cached_property
    def ab(self) -> np.ndarray:
        return color.u8_to_ab(self.rgb)  # (H, W, 2) float64

    @functools.cached_property
    def colorfulness(self) -> float:
        return colorfulness(self.rgb)

    @functools.cached_property
    def ssim_terms(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """SSIM's window side, the truth as float64 (H, W, 3), its window means and its window variances."""
        side = min(self.rgb.shape[:2])
        if side < 3:
            raise ValueError(f"SSIM needs images at least 3 x 3 pixels, got {self.rgb.shape[:2]}")
        win = min(SSIM_WINDOW, side if side % 2 else side - 1)
        y = self.rgb.astype(np.float64)  # (H, W, 3)
        uy = _window_mean(y, win)
        return win, y, uy, _sample_cov(win) * (_window_mean(y * y, win) - uy * uy)


def _pair(pred: np.ndarray, truth) -> tuple[np.ndarray, Truth]:
    pred, truth = _checked("pred", pred), truth if isinstance(truth, Truth) else Truth(truth)
    if pred.shape != truth.rgb.shape:
        raise ValueError(f"pred and truth differ in shape: {pred.shape} vs {truth.rgb.shape}")
    return pred, truth


def _window_mean(z: np.ndarray, win: int) -> np.ndarray:
    """SSIM's window mean, per channel; border windows are cropped by `ssim`."""
    return cv2.boxFilter(z, -1, (win, win), normalize=True, borderType=cv2.BORDER_REFLECT)


def _sample_cov(win: int) -> float:
    return win * win / (win * win - 1)  # scikit-image's sample covariance (use_sample_covariance=True)


def psnr(pred: np.ndarray, truth: np.ndarray | Truth) -> float:
    """Peak signal-to-noise ratio in dB on 8-bit RGB: 10 log10(255^2 / MSE); identical images give inf."""
    pred, truth = _pair(pred, truth)
    mse = np.mean((pred.astype(np.float64) - truth.rgb.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(PEAK**2 / mse))


def ssim(pred: np.ndarray, truth: np.ndarray | Truth) -> float:
    """Structural similarity (Wang et al. 2004), averaged over R, G, B: scikit-image's
    `structural_similarity` (uniform window, sample covariance, K1 = 0.01, K2 = 0.03, border
    windows cropped), computed with OpenCV's box filter on the three channels at once; the tests
    hold it to scikit-image's value within 1e-9.

    The window is scikit-image's default 7 x 7. On an image with a side
    shorter than 7 pixels it shrinks to the largest odd size that fits; below
    3 pixels SSIM is undefined and a ValueError is raised.
    """
    pred, truth = _pair(pred, truth)
    win, y, uy, vy = truth.ssim_terms
    x = pred.astype(np.float64)  # (H, W, 3)
    ux = _window_mean(x, win)
    cov = _sample_cov(win)
    vx, vxy = cov * (_window_mean(x * x, win) - ux * ux), cov * (_window_mean(x * y, win) - ux * uy)
    c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))  # (H, W, 3)
    pad = (win - 1) // 2
    return float(s[pad : s.shape[0] - pad, pad : s.shape[1] - pad].mean())  # windows inside the image only


def ab_error(pred: np.ndarray, truth: np.ndarray | Truth) -> np.ndarray:
    """Per-pixel Euclidean distance in ab between two uint8 RGB images -> (H, W) float64.

    Lab comes from `colorlab.color.u8_to_ab` (float64, the formulas of `color.rgb_to_lab`), every pixel converted.
    """
    pred, truth = _pair(pred, truth)
    d = color.u8_to_ab(pred) - truth.ab  # (H, W, 2)
    return np.hypot(d[..., 0], d[..., 1])  # (H, W)


def auc_curve(errors: np.ndarray, max_threshold: int = AUC_MAX_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error curve: thresholds t = 0..max_threshold and the share of errors <= t at each."""
    if int(max_threshold) != max_threshold or max_threshold < 0:
        raise ValueError(f"max_threshold must be a non-negative integer, got {max_threshold}")
    errors = np.asarray(errors, dtype=np.float64).ravel()
    if errors.size == 0:
        raise ValueError("auc_curve needs at least one error value")
    thresholds = np.arange(int(max_threshold) + 1)
    # for an integer t, e <= t exactly when ceil(e) <= t: one pass of counting, no per-threshold loop
    bins = np.clip(np.ceil(errors), 0, max_threshold + 1).astype(np.int64)
    counts = np.bincount(bins, minlength=max_threshold + 2)[: max_threshold + 1]
    return thresholds, np.cumsum(counts) / errors.size


def auc_from_errors(errors: np.ndarray, max_threshold: int = AUC_MAX_THRESHOLD) -> float:
    """Area under the cumulative error curve, normalised to [0, 1] (Zhang et al. 2016 sec. 3.1).

    The mean over the max_threshold + 1 integer thresholds of the share of
    pixels within each: 1 for a perfect prediction, 0 when every error
    exceeds max_threshold. A constant error of exactly d units scores the
    share of thresholds t >= d.
    """
    return float(auc_curve(errors, max_threshold)[1].mean())


def auc_ab(pred: np.ndarray, truth: np.ndarray | Truth, max_threshold: int = AUC_MAX_THRESHOLD) -> float:
    """AuC of the cumulative per-pixel ab-error curve, thresholds 0..150, in [0, 1] (Zhang et al. 2016)."""
    return auc_from_errors(ab_error(pred, truth), max_threshold)


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk 2003, their recommended metric: sigma_rgyb + 0.3 mu_rgyb on 0..255 RGB.

    rg = R - G and yb = (R + G) / 2 - B per pixel; sigma_rgyb and mu_rgyb are
    the root sum of squares of their (population) standard deviations and of
    their means. 0 exactly when the image is grey (R == G == B everywhere).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"colorfulness expects an (H, W, 3) image, got shape {rgb.shape}")
    r, g, b = np.moveaxis(rgb.astype(np.float64), -1, 0)
    rg, yb = r - g, 0.5 * (r + g) - b
    sigma = np.hypot(rg.std(), yb.std())
    mu = np.hypot(rg.mean(), yb.mean())
    return float(sigma + 0.3 * mu)


def colorfulness_ratio(pred: np.ndarray, truth: np.ndarray | Truth) -> float:
    """colorfulness(pred) / colorfulness(truth); NaN when the truth is grey (colourfulness 0).

    A grey ground truth has no colour to match, so the ratio is undefined;
    NaN keeps it out of means (`summarize` and pandas skip it) instead of
    pretending to a value.
    """
    pred, truth = _pair(pred, truth)
    ct = truth.colorfulness
    return float("nan") if ct == 0 else colorfulness(pred) / ct


def image_metrics(pred: np.ndarray, truth: np.ndarray | Truth) -> dict[str, float]:
    """Every image metric of the study for one pair: psnr, ssim, auc, colorfulness_ratio (`truth`: the
    uint8 array or a `Truth`, kept for the next prediction of the same photo)."""
    pred, truth = _pair(pred, truth)
    return {
        "psnr": psnr(pred, truth),
        "ssim": ssim(pred, truth),
        "auc": auc_ab(pred, truth),
        "colorfulness_ratio": colorfulness_ratio(pred, truth),
    }


def topk_accuracy(logits, labels, ks: Iterable[int] = (1, 5)) -> dict[int, float]:
    """Share of samples whose label is among the k highest logits, for each k.

    `logits` (N, C) and `labels` (N,) as numpy arrays or torch tensors.
    Samples labelled -1 (no label) are left out; with none left the result
    is NaN. Ties count against the model: the label's rank is the number of
    other classes scoring at least as high, so a network that outputs
    constant logits scores 0 top-1, not 1.
    """
    logits = logits.detach().float().cpu().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits)
    labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"topk_accuracy expects logits (N, C) and labels (N,), got {logits.shape} and {labels.shape}")
    labels = labels.astype(np.int64)
    if labels.size and labels.max() >= logits.shape[1]:
        raise ValueError(f"label {labels.max()} out of range for {logits.shape[1]} classes")
    keep = labels >= 0
    logits, labels = logits[keep], labels[keep]
    ks = tuple(int(k) for k in ks)
    if any(k < 1 for k in ks):
        raise ValueError(f"k must be >= 1, got {ks}")
    if labels.size == 0:
        return {k: float("nan") for k in ks}
    true = logits[np.arange(labels.size), labels][:, None]  # (N, 1)
    rank = (logits >= true).sum(axis=1) - 1  # (N,) other classes at least as high
    return {k: float(np.mean(rank < k)) for k in ks}


def summarize(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high): the mean and its Student-t confidence interval (95% by default).

    Non-finite values are left out (NaN: an undefined score, e.g. the
    colourfulness ratio of a grey truth; inf: the PSNR of an identical pair).
    With one value the interval is (NaN, NaN); with none, everything is NaN.
    """
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return (float("nan"),) * 3
    mean = float(x.mean())
    if n == 1:
        return mean, float("nan"), float("nan")
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2, df=n - 1) * x.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half
