"""Batches for the training loop: which samples make global batch `step`, their augmentation, and tensors.

Data order and augmentation are pure functions of (seed, step), so a resumed
run sees exactly the batches an uninterrupted one would, and torchrun
processes each take their slice of the same global batch.
"""

from __future__ import annotations

import numpy as np
import torch

from colorlab import color


class BatchOrder:
    """Which samples make up global batch `step`: seeded per-epoch permutations, end to end.

    A pure function of (seed, step), so resuming needs no generator state.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < 1:
            raise ValueError("no training samples")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self._perms: dict[int, np.ndarray] = {}

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            self._perms[epoch] = np.random.default_rng([self.seed, 0, epoch]).permutation(self.n)
        return self._perms[epoch]

    def indices(self, step: int) -> np.ndarray:
        pos = np.arange(step * self.batch_size, (step + 1) * self.batch_size, dtype=np.int64)
        epoch, offset = np.divmod(pos, self.n)
        out = np.empty_like(pos)
        for e in np.unique(epoch):  # one or two epochs, unless the batch is larger than the data
            at = epoch == e
            out[at] = self.permutation(int(e))[offset[at]]
        return out


def augmentation(step: int, seed: int, count: int, hw: tuple[int, int], crop: int | None,
                 flip: bool) -> dict[str, np.ndarray]:
    """Crop offsets and flips of the `count` samples of global batch `step` (sec. 3.4)."""
    rng = np.random.default_rng([seed, 1, step])
    oy = rng.integers(0, 1 + (0 if crop is None else hw[0] - crop), size=count)
    ox = rng.integers(0, 1 + (0 if crop is None else hw[1] - crop), size=count)
    flips = rng.random(count) < 0.5 if flip else np.zeros(count, dtype=bool)
    return {"oy": oy, "ox": ox, "flip": flips}


def crop_flip(x: np.ndarray, oy: np.ndarray, ox: np.ndarray, flips: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """(B, H, W, ...) -> (B, h, w, ...): per-sample crop at (oy, ox) and left-right flip, in one gather."""
    r, c = np.arange(out_hw[0]), np.arange(out_hw[1])
    rows = oy[:, None] + r  # (B, h)
    cols = ox[:, None] + np.where(flips[:, None], out_hw[1] - 1 - c, c)  # (B, w)
    return x[np.arange(len(x))[:, None, None], rows[:, :, None], cols[:, None, :]]


def spatial_keys(arrays: dict[str, np.ndarray]) -> list[str]:
    if "rgb" not in arrays:
        return []
    hw = arrays["rgb"].shape[1:3]
    return [k for k, a in arrays.items() if a.ndim >= 3 and a.shape[1:3] == hw]


def check_arrays(arrays: dict[str, np.ndarray], what: str = "training") -> int:
    """Number of samples; a clear error when the arrays are not index-aligned or `rgb` is not uint8 images."""
    if not arrays:
        raise ValueError(f"no {what} arrays given")
    lengths = {k: len(a) for k, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{what} arrays are not index-aligned (lengths {lengths})")
    rgb = arrays.get("rgb")
    if rgb is not None and (rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[-1] != 3):
        raise ValueError(f"{what} 'rgb' must be uint8 (N, H, W, 3), got {rgb.dtype} {rgb.shape}")
    return next(iter(lengths.values()))


def make_batch(arrays: dict[str, np.ndarray], idx: np.ndarray, device: torch.device,
               aug: dict[str, np.ndarray] | None = None, out_hw: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """Gather samples `idx` (crop/flip spatial arrays by `aug`) into tensors on `device`."""
    spatial = set(spatial_keys(arrays))
    batch = {}
    for key, array in arrays.items():
        x = np.asarray(array[idx])  # fancy indexing also reads memmaps in one go
        if key in spatial and aug is not None:
            x = crop_flip(x, aug["oy"], aug["ox"], aug["flip"], out_hw)
        if key == "rgb":
            t = color.to_float(x).contiguous()  # (B, 3, h, w) in [0, 1]
        else:
            t = torch.from_numpy(np.ascontiguousarray(x))
        batch[key] = t.to(device, non_blocking=True)
    return batch
