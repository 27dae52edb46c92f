"""Work spread over processes of one thread each: how the study trains and scores runs side by side.

    from colorlab import processes
    results = processes.side_by_side(fn, [(a, b), (c, d)], workers=2)   # [fn(a, b), fn(c, d)]

On a 2-core CPU two one-thread processes get more done than one process on both
threads where the work is small convolutions (`make bench`'s `thread_layout`) or
mostly single-threaded numpy and OpenCV (Cheng et al.'s features). The workers are
spawned (fresh interpreters: no inherited thread pools), so `fn` must be a
module-level function, the jobs must pickle, and a script that calls this runs its
top level under `if __name__ == "__main__":`.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import cv2
import torch
from tqdm.auto import tqdm


def one_thread() -> None:
    """Keep this process to one thread: torch's pool and OpenCV's."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def side_by_side(fn: Callable, jobs: list[tuple], workers: int = 1, progress: bool = False, desc: str = "") -> list:
    """`[fn(*job) for job in jobs]`: here when workers <= 1 (or one job), else in `workers` processes of one
    thread each, results in the jobs' order."""
    if workers <= 1 or len(jobs) < 2:
        return [fn(*job) for job in tqdm(jobs, desc=desc, disable=not progress, leave=False)]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=one_thread) as pool:
        return list(tqdm(pool.map(fn, *zip(*jobs)), total=len(jobs), desc=desc, disable=not progress, leave=False))
