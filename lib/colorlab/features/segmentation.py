"""Scores of a label map against the truth: pixel accuracy and mean IoU (as in Long et al. 2015, FCN)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from colorlab.features.labels import IGNORE


def confusion(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, N) counts, rows = true class, columns = predicted; pixels labelled IGNORE are left out."""
    pred, truth = np.asarray(pred).ravel(), np.asarray(truth).ravel()
    if pred.shape != truth.shape:
        raise ValueError(f"prediction and truth differ in size: {pred.shape} vs {truth.shape}")
    valid = truth != IGNORE
    if pred[valid].size and pred[valid].max() >= n_classes:
        raise ValueError(f"predicted class {int(pred[valid].max())} outside 0..{n_classes - 1}")
    idx = truth[valid].astype(np.int64) * n_classes + pred[valid]
    return np.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def segmentation_scores(pred: np.ndarray, truth: np.ndarray, names: list[str]) -> dict:
    """pixel_accuracy, mean_iou and a per_class DataFrame (class, truth share of pixels, IoU, accuracy).

    The mean IoU averages the classes that occur in the truth or the
    prediction; a class absent from both has no IoU (NaN in per_class).
    """
    n = len(names)
    cm = confusion(pred, truth, n)
    tp = np.diag(cm).astype(np.float64)
    truth_px, pred_px = cm.sum(1), cm.sum(0)
    union = truth_px + pred_px - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(truth_px > 0, tp / truth_px, np.nan)
    total = cm.sum()
    per_class = pd.DataFrame(
        {"class": list(names), "share": truth_px / max(total, 1), "iou": iou, "accuracy": acc}
    )
    return {
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "n_pixels": int(total),
        "per_class": per_class,
    }
