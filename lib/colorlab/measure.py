"""Measuring tools of the benchmarks: wall and CPU time of a call, FLOPs of a network, the dtypes worth timing."""

from __future__ import annotations

import copy
import time
from typing import Callable

import numpy as np
import torch
from torch import nn


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> dict:
    """Median and minimum wall seconds of `repeats` calls after `warmup` calls, and the median
    process CPU seconds (on a shared machine, wall time includes waiting for other people's jobs)."""
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"median_s": float(np.median(times)), "min_s": float(min(times)), "cpu_s": float(np.median(cpu)), "runs": repeats}


def count_flops(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-adds x 2 of every Conv2d and Linear in one forward, from their shapes only (meta device)."""
    meta = copy.deepcopy(model).to("meta")
    total = 0

    def hook(mod, _inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total += 2 * mod.in_channels // mod.groups * mod.out_channels * k * out[0, 0].numel() * out.shape[0]
        else:
            total += 2 * mod.in_features * mod.out_features * out.shape[0]

    for mod in meta.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            mod.register_forward_hook(hook)
    with torch.inference_mode():
        meta(*(x.to("meta") for x in inputs))
    return total


EMULATED_BF16 = "skipped: this CPU has no native bf16 (no AVX-512 BF16 / AMX); emulated bf16 is slower than fp32"


def dtypes() -> tuple[str, ...]:
    """fp32, and bf16 where the CPU computes it natively: emulated bf16 can take minutes and says nothing useful."""
    from colorlab import train

    return ("fp32", "bf16") if train.native_bf16() else ("fp32",)
