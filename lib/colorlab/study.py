"""Scoring colorizers on datasets at full resolution: what every comparison notebook calls.

A *method* is anything with `colorize(gray) -> rgb` (the models, the
baselines) or a plain function of the same signature. Images are read at
their own resolution, turned gray with `color.rgb_to_gray`, colourised, and
scored against the colour original with `colorlab.metrics`. Grayscale
originals have no colour ground truth: they are skipped and counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from colorlab import color, data, images, metrics

Colorizer = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvalSet:
    """Colour images of one dataset split, read once and shared by every method."""

    dataset: str
    split: str
    names: list[str]
    rgb: list[np.ndarray]
    skipped: list[str] = field(default_factory=list)  # grayscale originals or unreadable files

    def __len__(self) -> int:
        return len(self.rgb)


def _evenly(items: list, limit: int | None) -> list:
    """A deterministic subset spread over the whole list (labels are often sorted)."""
    if limit is None or len(items) <= limit:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def load_eval_set(dataset: str, split: str, limit: int | None = None) -> EvalSet:
    """Read up to `limit` colour images of a split at full resolution."""
    names, rgbs, skipped = [], [], []
    for sample in _evenly(data.samples(dataset, split), limit):
        try:
            rgb = images.read_rgb(sample.path)
        except images.ImageReadError as err:
            skipped.append(f"{sample.name}: {err}")
            continue
        if images.is_grayscale(rgb):
            skipped.append(f"{sample.name}: grayscale original, no colour ground truth")
            continue
        names.append(sample.name)
        rgbs.append(rgb)
    return EvalSet(dataset, split, names, rgbs, skipped)


def as_colorizer(method) -> Colorizer:
    return method.colorize if hasattr(method, "colorize") else method


@torch.inference_mode()
def colorize_u8(method, rgb_u8: np.ndarray) -> tuple[np.ndarray, float]:
    """Colourise the gray version of one uint8 image; returns (uint8 result, seconds)."""
    gray = color.rgb_to_gray(color.to_float(rgb_u8))  # (1, 1, H, W)
    start = time.perf_counter()
    rgb = as_colorizer(method)(gray)  # (1, 3, H, W)
    seconds = time.perf_counter() - start
    return color.to_uint8(rgb)[0], seconds


TRUTH = "ground truth"


def evaluate(methods: dict[str, object], eval_set: EvalSet, include_truth: bool = False, progress: bool = True) -> pd.DataFrame:
    """Per-image metrics of every method: columns method, dataset, image, psnr, ssim, auc, colorfulness_ratio, seconds.

    `include_truth` adds the ground truth scored against itself, the ceiling of every metric.
    """
    rows = []
    if include_truth:
        rows += [{"method": TRUTH, "dataset": eval_set.dataset, "image": n, **metrics.image_metrics(rgb, rgb), "seconds": 0.0}
                 for n, rgb in zip(eval_set.names, eval_set.rgb)]
    for name, method in methods.items():
        for img_name, rgb in tqdm(list(zip(eval_set.names, eval_set.rgb)), desc=f"{name} on {eval_set.dataset}",
                                  disable=not progress, leave=False):
            pred, seconds = colorize_u8(method, rgb)
            rows.append({"method": name, "dataset": eval_set.dataset, "image": img_name,
                         **metrics.image_metrics(pred, rgb), "seconds": seconds})
    return pd.DataFrame(rows)


METRIC_COLUMNS = ("psnr", "ssim", "auc", "colorfulness_ratio", "seconds")


def summarize(per_image: pd.DataFrame, by: tuple[str, ...] = ("dataset", "method")) -> pd.DataFrame:
    """Mean of each metric per group, with the image count. PSNR is averaged over finite values only."""
    df = per_image.replace([np.inf, -np.inf], np.nan)
    cols = [c for c in METRIC_COLUMNS if c in df]
    out = df.groupby(list(by), sort=False)[cols].mean().reset_index()
    out.insert(len(by), "images", df.groupby(list(by), sort=False).size().values)
    return out
