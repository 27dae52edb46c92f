"""Our stand-in for the paper's scene parser: a small fully convolutional net on GRAY input.

Cheng et al. 2015 (sec. 3.2.3, sec. 4) label each pixel with an FCN scene
parser (Long et al. 2015) over 47 object categories. No such parser ships
offline, so we train our own on the MiniPlaces object annotations
(`features.labels`: the 46 most frequent categories + "other_object"). It
sees the gray image, the same input as the colorizer.

Network (not the FCN-8s of the paper, which is far too large for a laptop):
a stride-8 encoder with dilated 3x3 convolutions, an image-level pooling
branch (ParseNet, Liu et al. 2015) and one skip at stride 4, then bilinear
upsampling of the logits. Trained with AdamW + a one-cycle schedule, pixel
cross-entropy, labels IGNORE left out, horizontal flips.

A trained parser is cached under `settings.runs_dir()/parser/<key>/`, keyed
by a hash of its config, the data's file list and this code; a second call
with the same config loads it. There is no mid-run resume: the cpu preset
trains in about a minute or two.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

import colorlab
from colorlab import color, reports, settings
from colorlab.features.labels import IGNORE, KINDS, LabelSet, fit_colours, fit_objects
from colorlab.features.segmentation import segmentation_scores

_PREDICT_BATCH = 64


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


# --- the network -----------------------------------------------------------------
def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SceneParser(nn.Module):
    """Gray (B, 1, H, W) -> class logits (B, N, H, W); `labels` says what the classes are."""

    def __init__(self, cfg: ParserConfig, labels: LabelSet, key: str = "", metrics: dict | None = None):
        super().__init__()
        if labels.n_classes != cfg.n_classes:
            raise ValueError(f"label set has {labels.n_classes} classes, config says {cfg.n_classes}")
        self.cfg, self.labels, self.key, self.metrics = cfg, labels, key, dict(metrics or {})
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

    @property
    def n_classes(self) -> int:
        return self.cfg.n_classes

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


# --- data --------------------------------------------------------------------------
def parser_data(
    cfg: ParserConfig, split: str, labels: LabelSet | None = None, size: int | None = None, progress: bool = True
):
    """(rgb uint8 (n, s, s, 3), class ids uint8 (n, s, s), LabelSet) for a split.

    Only images with at least one annotated pixel are kept for `objects`;
    `labels=None` fits the label set on this split (do that on train only).
    """
    from colorlab import data

    dec = data.decoded(cfg.dataset, split, size or cfg.size, progress=progress)
    rgb, objects = dec.rgb, dec.objects
    if cfg.labels == "objects":
        if objects is None:
            raise ValueError(f"dataset {cfg.dataset!r} has no object annotations; use ParserConfig(labels='colours')")
        keep = np.flatnonzero((np.asarray(objects) != IGNORE).reshape(len(objects), -1).any(1))
        rgb, objects = np.asarray(rgb[keep]), np.asarray(objects[keep])
    else:
        rgb, objects = np.asarray(rgb), None
    if len(rgb) == 0:
        raise ValueError(f"no usable images for the scene parser in {cfg.dataset!r} {split!r}")
    if labels is None:
        if cfg.labels == "objects":
            labels = fit_objects(objects, data.object_names(cfg.dataset), cfg.n_classes)
        else:
            labels = fit_colours(rgb, cfg.n_classes, cfg.seed)
    return rgb, labels.apply(rgb=rgb, objects=objects), labels


def _gray(rgb_u8: np.ndarray) -> torch.Tensor:
    return color.rgb_to_gray(color.to_float(rgb_u8))  # (B, 1, H, W)


def predict_dataset(parser: SceneParser, rgb: np.ndarray) -> np.ndarray:
    """Most likely class uint8 (n, H, W) for every image of a uint8 (n, H, W, 3) array."""
    out = [parser.predict_labels(_gray(rgb[i : i + _PREDICT_BATCH])).numpy() for i in range(0, len(rgb), _PREDICT_BATCH)]
    return np.concatenate(out)


def parser_quality(parser: SceneParser, split: str = "val", size: int | None = None) -> dict:
    """Pixel accuracy and mean IoU of `parser` on the annotated images of its dataset's `split`.

    Scored at `size` (default: the parser's working size) against labels made
    by the parser's own label set; IGNORE pixels are left out. Returns
    pixel_accuracy, mean_iou, n_images, n_pixels and per_class (DataFrame).
    """
    rgb, truth, _ = parser_data(parser.cfg, split, parser.labels, size)
    scores = segmentation_scores(predict_dataset(parser, rgb), truth, parser.class_names)
    return {**scores, "n_images": len(rgb)}


# --- training and the cache -------------------------------------------------------------
def _source_digest() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in ("parser.py", "labels.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()


def parser_key(cfg: ParserConfig) -> str:
    """Hash of the config, the data (file names of both splits) and the code version."""
    from colorlab import data

    files = {
        s: [(x.name, x.objects is not None) for x in data.samples(cfg.dataset, s)]
        for s in (cfg.train_split, cfg.val_split)
    }
    blob = {
        "config": asdict(cfg),
        "data": hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest(),
        "code": [colorlab.__version__, _source_digest()],
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def parser_dir(cfg: ParserConfig, key: str | None = None) -> Path:
    return settings.runs_dir() / "parser" / (key or parser_key(cfg))[:16]


def _batches(n: int, batch: int, steps: int, rng: np.random.Generator):
    """Indices of `steps` batches, a fresh permutation each epoch."""
    order = np.empty(0, dtype=np.int64)
    for _ in range(steps):
        if len(order) < batch:
            order = np.concatenate((order, rng.permutation(n)))
        idx, order = order[:batch], order[batch:]
        yield np.sort(idx)  # sorted: reads from a memory-mapped array go forward


def fit(cfg: ParserConfig, progress: bool = True) -> dict:
    """Train a parser from scratch; returns the checkpoint dict (plain types and tensors only)."""
    rgb, y, labels = parser_data(cfg, cfg.train_split, progress=progress)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rng = np.random.default_rng(cfg.seed)
    history = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        # channels-last: measured 1.5-2.4x faster steps on 2 CPU threads (oneDNN), no change on 1
        net = SceneParser(cfg, labels).to(dev, memory_format=torch.channels_last).train()
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
        batches = _batches(len(rgb), min(cfg.batch_size, len(rgb)), cfg.steps, rng)
        bar = tqdm(batches, total=cfg.steps, desc="scene parser", disable=not progress)
        for step, idx in enumerate(bar, 1):
            gray = _gray(rgb[idx]).to(dev).contiguous(memory_format=torch.channels_last)  # (B, 1, s, s)
            target = torch.from_numpy(y[idx]).to(dev, torch.long)  # (B, s, s)
            if cfg.flip:
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5).to(dev)
                gray = torch.where(flip.view(-1, 1, 1, 1), gray.flip(-1), gray)
                target = torch.where(flip.view(-1, 1, 1), target.flip(-1), target)
            loss = F.cross_entropy(net(gray), target, ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history.append({"step": step, "loss": loss.item(), "lr": sched.get_last_lr()[0]})
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    net = net.cpu().to(memory_format=torch.contiguous_format).eval()
    val_rgb, val_y, _ = parser_data(cfg, cfg.val_split, labels, progress=progress)
    scores = segmentation_scores(predict_dataset(net, val_rgb), val_y, list(labels.names))
    metrics = {"val_pixel_accuracy": scores["pixel_accuracy"], "val_mean_iou": scores["mean_iou"],
               "n_train_images": len(rgb), "n_val_images": len(val_rgb)}
    return {
        "model": net.state_dict(), "config": asdict(cfg), "labels": labels.to_dict(), "metrics": metrics, "history": history
    }


def _save(ckpt: dict, run: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=run, prefix=".parser.pt.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, run / "parser.pt")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    reports.atomic_write_text(run / "config.json", json.dumps({"key": ckpt["key"], **ckpt["config"]}, indent=2) + "\n")
    reports.atomic_write_text(run / "metrics.json", json.dumps(ckpt["metrics"], indent=2) + "\n")
    reports.atomic_write_text(run / "history.csv", pd.DataFrame(ckpt["history"]).to_csv(index=False))


def load_checkpoint(path: Path) -> SceneParser:
    """Rebuild a parser from its `parser.pt` (weights_only: plain types and tensors only)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        net = SceneParser(ParserConfig(**ckpt["config"]), LabelSet(**ckpt["labels"]), ckpt.get("key", ""), ckpt["metrics"])
        net.load_state_dict(ckpt["model"])
    except Exception as e:
        raise RuntimeError(f"{path}: cannot load this scene parser checkpoint ({e}); delete the folder to retrain") from e
    return net.eval()


def train_parser(
    cfg_or_profile: ParserConfig | str = "cpu", progress: bool = True, force: bool = False, **overrides
) -> SceneParser:
    """The trained parser for a config or preset: loaded from the cache, or trained once and cached."""
    cfg = config(cfg_or_profile, **overrides)
    key = parser_key(cfg)
    run = parser_dir(cfg, key)
    if (run / "parser.pt").exists() and not force:
        return load_checkpoint(run / "parser.pt")
    ckpt = fit(cfg, progress=progress)
    ckpt["key"] = key
    _save(ckpt, run)
    return load_checkpoint(run / "parser.pt")


def load_parser(profile: ParserConfig | str = "cpu", progress: bool = True) -> SceneParser:
    """The parser of a profile (`PRESETS`), trained on first use and reused after that."""
    return train_parser(profile, progress=progress)
