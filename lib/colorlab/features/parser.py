"""Our stand-in for the paper's scene parser: a small fully convolutional net on GRAY input.

Cheng et al. 2015 (sec. 3.2.3, sec. 4) label each pixel with an FCN scene
parser (Long et al. 2015) over 47 object categories. No such parser ships
offline, so we train our own on the MiniPlaces object annotations
(`features.labels`: the 46 most frequent categories + "other_object"). It
sees the gray image, the same input as the colorizer.

Network (not the FCN-8s of the paper, which is far too large for a laptop):
a stride-8 encoder with dilated 3x3 convolutions, an image-level pooling
branch (ParseNet, Liu et al. 2015) and one skip at stride 4, then bilinear
upsampling of the logits.

This module is the network alone (`Config`, `PRESETS`, `build`, `SceneParser`
and its predict functions). Its label set (which raw annotation becomes which
class) is held in buffers, so a parser's state dict, or that of a Cheng model
holding one, says everything scoring needs. The training (AdamW + one-cycle,
pixel cross-entropy, labels IGNORE left out, flips) is `colorlab.experiments.parser`;
a trained parser comes from the run store (`colorlab.experiments.cheng2015.load_parser`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from colorlab import color
from colorlab.features.labels import IGNORE, KINDS, LabelSet

_PREDICT_BATCH = 64
NAME_BYTES = 32  # longest class name a parser stores (MiniPlaces' longest object name has 16)


@dataclass(frozen=True)
class ParserConfig:
    """The scene parser's data, labels, network and training. Paper values only where the paper has them."""

    dataset: str = "miniplaces"  # ours: MiniPlaces object annotations (the paper: SUN, sec. 4)
    labels: str = "objects"  # "objects" (annotations) | "colours" (smoke stand-in), see features.labels
    n_classes: int = 47  # sec. 4: 47 object categories
    size: int = 128  # working size (short side), the MiniPlaces resolution; not given in the paper
    width: int = 32  # channels of the first stage; not given (ours is not the paper's FCN)
    steps: int = 6000  # not given in the paper
    batch_size: int = 32  # not given
    lr: float = 3e-3  # peak of the one-cycle schedule; not given
    weight_decay: float = 1e-4  # not given
    flip: bool = True  # horizontal flips; not given
    seed: int = 0
    train_split: str = "train"
    val_split: str = "val"

    def __post_init__(self):
        if self.labels not in KINDS:
            raise ValueError(f"ParserConfig.labels must be one of {KINDS}, got {self.labels!r}")
        if not 2 <= self.n_classes <= IGNORE:
            raise ValueError(f"ParserConfig.n_classes must be in 2..{IGNORE}, got {self.n_classes}")


Config = ParserConfig  # the name `colorlab.runs` rebuilds a network module's config by

PRESETS: dict[str, ParserConfig] = {
    "paper": ParserConfig(),
    # ~150 epochs of the ~3,500 annotated images
    "gpu": ParserConfig(width=48, steps=8000, batch_size=64),
    # measured, 1 thread: 115 CPU-s to train (about a minute on 2 free cores), val pixel
    # accuracy 0.56, mIoU 0.09; width 24 took 209 CPU-s for 0.575 / 0.106
    "cpu": ParserConfig(size=64, width=16, steps=900, batch_size=32),
    # no data: colour-cluster pseudo-labels of the smoke photos, seconds on a CPU
    "smoke": ParserConfig(dataset="smoke", labels="colours", size=32, width=8, steps=40, batch_size=8, lr=1e-2),
}


def config(cfg_or_profile: ParserConfig | str = "cpu", **overrides) -> ParserConfig:
    """A ParserConfig from a profile name (`PRESETS`) or a config, with field overrides."""
    if isinstance(cfg_or_profile, str):
        try:
            cfg_or_profile = PRESETS[cfg_or_profile]
        except KeyError:
            raise KeyError(f"unknown parser preset {cfg_or_profile!r}; choose one of {sorted(PRESETS)}") from None
    return replace(cfg_or_profile, **overrides)


def build(cfg: ParserConfig) -> "SceneParser":
    """An untrained parser of `cfg` (placeholder labels until `set_labels` or `load_state_dict`)."""
    return SceneParser(cfg)


# --- the network -----------------------------------------------------------------
def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SceneParser(nn.Module):
    """Gray (B, 1, H, W) -> class logits (B, N, H, W); `labels` says what the classes are."""

    def __init__(self, cfg: ParserConfig, labels: LabelSet | None = None):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stage2 = nn.Sequential(_block(1, w, 2), _block(w, w))
        self.stage4 = nn.Sequential(_block(w, 2 * w, 2), _block(2 * w, 2 * w))
        # dilations widen the view at stride 8 without shrinking the map further
        self.stage8 = nn.Sequential(
            _block(2 * w, 4 * w, 2), _block(4 * w, 4 * w, dilation=2), _block(4 * w, 4 * w, dilation=4)
        )
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(4 * w, 4 * w, 1), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(nn.Conv2d(8 * w, 4 * w, 1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(inplace=True))
        self.decode = _block(6 * w, 2 * w)
        self.head = nn.Conv2d(2 * w, cfg.n_classes, 1)
        # the label set, as buffers: class names (UTF-8, zero-padded), the object table, the colour centres
        self.register_buffer("label_names", torch.zeros(cfg.n_classes, NAME_BYTES, dtype=torch.uint8))
        self.register_buffer("label_table", torch.full((256,), IGNORE, dtype=torch.uint8))
        self.register_buffer("label_centres", torch.zeros(cfg.n_classes, 2))
        self.set_labels(labels or placeholder_labels(cfg))

    @property
    def n_classes(self) -> int:
        return self.cfg.n_classes

    @property
    def labels(self) -> LabelSet:
        names = tuple(bytes(row).rstrip(b"\0").decode() for row in self.label_names.tolist())
        if self.cfg.labels == "objects":
            return LabelSet("objects", names, table=tuple(self.label_table.tolist()))
        return LabelSet("colours", names, centres=tuple(map(tuple, self.label_centres.tolist())))

    def set_labels(self, labels: LabelSet) -> None:
        """Store `labels` (fitted on the training data) in the buffers."""
        if labels.n_classes != self.cfg.n_classes:
            raise ValueError(f"label set has {labels.n_classes} classes, config says {self.cfg.n_classes}")
        if labels.kind != self.cfg.labels:
            raise ValueError(f"label set is of kind {labels.kind!r}, config says {self.cfg.labels!r}")
        names = torch.zeros_like(self.label_names)
        for i, name in enumerate(labels.names):
            raw = name.encode()
            if len(raw) > NAME_BYTES:
                raise ValueError(f"class name {name!r} is longer than {NAME_BYTES} bytes")
            names[i, : len(raw)] = torch.tensor(list(raw), dtype=torch.uint8)
        with torch.no_grad():
            self.label_names.copy_(names)
            if labels.table:
                self.label_table.copy_(torch.tensor(labels.table, dtype=torch.uint8))
            if labels.centres:
                self.label_centres.copy_(torch.tensor(labels.centres, dtype=torch.float32))

    @property
    def class_names(self) -> list[str]:
        return list(self.labels.names)

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        f2 = self.stage2(gray)  # (B, w, H/2, W/2)
        f4 = self.stage4(f2)  # (B, 2w, H/4, W/4)
        f8 = self.stage8(f4)  # (B, 4w, H/8, W/8)
        g = self.image_pool(f8).expand_as(f8)  # (B, 4w, H/8, W/8), the whole image's context
        f8 = self.fuse(torch.cat((f8, g), 1))  # (B, 4w, H/8, W/8)
        up = F.interpolate(f8, size=f4.shape[-2:], mode="bilinear", align_corners=False)  # (B, 4w, H/4, W/4)
        x = self.decode(torch.cat((up, f4), 1))  # (B, 2w, H/4, W/4)
        logits = self.head(x)  # (B, N, H/4, W/4)
        return F.interpolate(logits, size=gray.shape[-2:], mode="bilinear", align_corners=False)  # (B, N, H, W)

    def working_size(self, h: int, w: int) -> tuple[int, int]:
        """The size the parser runs at: short side = cfg.size, aspect kept (objects at the scale it learnt)."""
        s = self.cfg.size / min(h, w)
        return max(1, round(h * s)), max(1, round(w * s))

    @torch.no_grad()
    def _working_probabilities(self, gray: torch.Tensor) -> torch.Tensor:
        """Gray (B, 1, H, W) -> class probabilities (B, N, h, w) at the working size."""
        work = self.working_size(*gray.shape[-2:])
        x = gray.to(next(self.parameters()).device, torch.float32)
        if work != tuple(gray.shape[-2:]):
            x = F.interpolate(x, size=work, mode="bilinear", align_corners=False, antialias=True)  # (B, 1, h, w)
        return self(x).softmax(1).cpu()  # (B, N, h, w)

    def probabilities(self, gray: torch.Tensor) -> torch.Tensor:
        """Gray (B, 1, H, W) at any size -> class probabilities (B, N, H, W), run at the working size."""
        p = self._working_probabilities(gray)  # (B, N, h, w)
        if p.shape[-2:] != gray.shape[-2:]:
            p = F.interpolate(p, size=gray.shape[-2:], mode="bilinear", align_corners=False)  # (B, N, H, W), sums to 1
        return p

    def predict_proba(self, gray: np.ndarray) -> np.ndarray:
        """(H, W) gray in [0, 1] -> (H, W, N) float32 class probabilities at full resolution."""
        h, w = np.shape(gray)
        p = self._working_probabilities(torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32))[None, None])
        p = p[0].permute(1, 2, 0).contiguous().numpy()  # (h, w, N)
        if p.shape[:2] != (h, w):
            # the same bilinear (half-pixel centres) as F.interpolate, 10x faster on (H, W, N)
            p = cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)  # (H, W, N)
        return p

    def predict_labels(self, gray: torch.Tensor) -> torch.Tensor:
        """Gray (B, 1, H, W) -> most likely class (B, H, W) uint8."""
        return self.probabilities(gray).argmax(1).to(torch.uint8)


def placeholder_labels(cfg: ParserConfig) -> LabelSet:
    """The label set of an untrained parser: class_00 ... (trained weights bring the real one)."""
    names = tuple(f"class_{k:02d}" for k in range(cfg.n_classes))
    if cfg.labels == "objects":
        return LabelSet("objects", names, table=(IGNORE,) * 256)
    return LabelSet("colours", names, centres=((0.0, 0.0),) * cfg.n_classes)


def _gray(rgb_u8: np.ndarray) -> torch.Tensor:
    return color.rgb_to_gray(color.to_float(rgb_u8))  # (B, 1, H, W)


def predict_dataset(parser: SceneParser, rgb: np.ndarray) -> np.ndarray:
    """Most likely class uint8 (n, H, W) for every image of a uint8 (n, H, W, 3) array."""
    out = [parser.predict_labels(_gray(rgb[i : i + _PREDICT_BATCH])).numpy() for i in range(0, len(rgb), _PREDICT_BATCH)]
    return np.concatenate(out)
