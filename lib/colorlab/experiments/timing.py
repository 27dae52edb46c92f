"""Seconds per `colorize` call: the inference benchmark every experiment's `benchmark` reports."""

from __future__ import annotations

import time

import torch
from torch import nn


@torch.no_grad()
def colorize_seconds(model: nn.Module, sizes: tuple[int, ...], repeats: int = 5, device: str = "cpu",
                     **colorize_kwargs) -> dict[str, float]:
    """Median seconds of `repeats` calls of `model.colorize` on one random square gray image per size,
    after a warm-up; CUDA calls are synchronised before the clock is read."""
    out = {}
    for size in sizes:
        gray = torch.rand(1, 1, size, size, device=device)
        model.colorize(gray, **colorize_kwargs)  # warm-up
        times = []
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            model.colorize(gray, **colorize_kwargs)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        out[str(size)] = sorted(times)[len(times) // 2]
    return out
