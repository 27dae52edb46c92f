"""Trivial colorizers every method must beat, with the same `colorize(gray)` protocol as the models.

- `GrayBaseline`: zero chroma, i.e. the grayscale photo itself.
- `MeanChromaBaseline`: the dataset's mean ab everywhere. It is the best constant
  answer under a squared loss, and shows why regressing to the mean desaturates:
  the mean of many colours is a dull brownish gray.
"""

from __future__ import annotations

import numpy as np
import torch

from colorlab import color


class GrayBaseline(torch.nn.Module):
    name = "gray"

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        return color.gray_to_rgb(gray)  # (B, 3, H, W)


class MeanChromaBaseline(torch.nn.Module):
    """Predicts one ab for every pixel: the mean ab of the training images."""

    name = "mean-ab"

    def __init__(self, ab_mean: tuple[float, float]):
        super().__init__()
        self.register_buffer("ab_mean", torch.tensor(ab_mean, dtype=torch.float32).view(1, 2, 1, 1))

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        L = color.gray_to_L(gray)  # (B, 1, H, W)
        ab = self.ab_mean.to(gray.dtype).expand(gray.shape[0], 2, 1, 1)  # (B, 2, 1, 1)
        return color.join_lab(L, ab)  # (B, 3, H, W)


def lab_of(rgb_u8: np.ndarray, batch: int = 512) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 Lab, in batches to bound memory."""
    out = np.empty((len(rgb_u8), 3, *rgb_u8.shape[1:3]), dtype=np.float32)
    for i in range(0, len(rgb_u8), batch):
        out[i : i + batch] = color.rgb_to_lab(color.to_float(np.asarray(rgb_u8[i : i + batch]))).numpy()
    return out


def mean_ab(rgb_u8: np.ndarray) -> tuple[float, float]:
    """Mean a and b over every pixel of a decoded image set."""
    ab = lab_of(rgb_u8)[:, 1:]
    return float(ab[:, 0].mean()), float(ab[:, 1].mean())


def ab_histogram(rgb_u8: np.ndarray, bins: int = 64, extent: float = 110.0) -> tuple[np.ndarray, np.ndarray]:
    """2-D histogram of per-pixel (a, b) over an image set: (counts (bins, bins) with a on rows, edges)."""
    ab = lab_of(rgb_u8)[:, 1:]
    edges = np.linspace(-extent, extent, bins + 1)
    counts, _, _ = np.histogram2d(ab[:, 0].ravel(), ab[:, 1].ravel(), bins=(edges, edges))
    return counts, edges
