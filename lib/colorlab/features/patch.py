"""Low-level feature of Cheng et al. 2015 (sec. 3.2.1): the gray patch around each pixel."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def low_level(gray: np.ndarray, size: int = 7) -> np.ndarray:
    """(H, W) gray -> (H, W, size*size): the size x size neighbourhood of every pixel, row by row.

    Sec. 3.2.1 of Cheng et al. 2015: "the sequential gray values of the 7x7
    patch centred at p". Pixels outside the image are mirrored (reflect
    padding, edge pixel not repeated) so border pixels get a full patch.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"patch size must be a positive odd number, got {size}")
    r = size // 2
    padded = np.pad(np.asarray(gray, dtype=np.float32), r, mode="reflect")  # (H+2r, W+2r)
    windows = sliding_window_view(padded, (size, size))  # (H, W, size, size), a view
    return windows.reshape(*windows.shape[:2], size * size)  # (H, W, size*size), one copy
