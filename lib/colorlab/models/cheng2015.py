"""Cheng, Yang & Sheng, "Deep Colorization" (ICCV 2015; journal version arXiv 1605.00075).

A per-pixel regressor (Alg. 1 and 2 of the paper): every pixel p gets a
feature vector x_p = [7x7 gray patch; DAISY; semantic probabilities] (sec. 3.2,
`colorlab.features`), a small fully connected net maps it to the pixel's YUV
chrominance (sec. 3.1), a joint bilateral filter guided by the gray image
cleans the U, V maps (sec. 3.2.5), and the input gray is kept as Y.
`ClusteredCheng` is the journal version: one net per cluster of reference
images (Alg. 3, `colorlab.clustering`).

Training (`train`, `train_clustered`): features of `pixels_per_image` random
pixels of each reference image (`DATA[profile]`: SUN8 train) are computed once
and cached (`pixel_samples`); the nets train on pixels through the shared loop
(`colorlab.train.fit`, runs keyed in `colorlab.runs`), Adam (`TRAIN[profile]`).

Rebuilding from a checkpoint: `build(Config(**ckpt["config"]))` then
`load_state_dict(ckpt["model"])`, for both kinds: `clusters = k > 0` in the
config builds the clustered model with k nets, its cluster centres and
descriptor statistics being buffers of the state dict. So `final.pt` of a run,
`runs.load_run("cheng2015", key).model`, `runs.export` and `colorlab colorize
--model cheng2015 --run KEY` work for either. The scene parser is not part of
the weights: it is loaded by preset name (`Config.parser`,
`features.load_parser`) on first use, trained once if it is not cached.

The rest of the module is notebook 01's study (`variants`, `feature_ablation`,
`bilateral_sensitivity`, `feature_views`) and `benchmark` (run by `colorlab bench`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from colorlab import clustering, color, features, metrics, reports, settings
from colorlab import train as training
from colorlab.features.descriptor import check_gray
from colorlab.profiles import DataSpec


@dataclass
class Config:
    # --- features, sec. 3.2 and sec. 4 ----------------------------------------------------
    levels: tuple[str, ...] = ("patch", "daisy", "semantic")  # sec. 3.2: x_p = [x^L; x^M; x^H]
    patch_size: int = 7  # sec. 4: the 7x7 patch, 49-d
    semantic_classes: int = 47  # sec. 4: N = 47 object categories (must match the parser)
    parser: str = "paper"  # our scene parser's preset (`features.load_parser`); the paper used an FCN (sec. 3.2.3)
    # --- the net, sec. 3.1.2 and sec. 4 ------------------------------------------------------
    hidden: int = 64  # sec. 4: "half of that in the input layer" (128 -> 64); kept at 64 in the ablation
    layers: int = 3  # sec. 4: three hidden layers; "more hidden layers cannot further improve"
    # --- training pixels: not given in the paper (REFERENCES sec. 5) --------------------------
    # uniform random pixels per reference image, seeded per image. Paper preset: 72 x 1,483 SUN8
    # images = 107k ~ e^11.6, the largest set of Fig. 12 if its log is natural (inferred)
    pixels_per_image: int = 72
    sample_seed: int = 0
    # --- inference -------------------------------------------------------------------------
    work_size: int | None = None  # None: features at full resolution (Alg. 2); else the short side is
    #                               reduced to this, U, V upsampled before refinement (not in the paper)
    tile_pixels: int = 1 << 17  # features of at most ~this many pixels held at once (row tiles);
    #                             bounds memory for large images, does not change the result
    # --- refinement, sec. 3.2.5: joint bilateral filter; the values are not given in the paper ---
    refine: bool = True
    sigma_s: float = 3.0  # pixels
    sigma_r: float = 0.08  # gray units in [0, 1] (about 20 / 255)
    diameter: int = 0  # window side; 0 = OpenCV's choice from sigma_s
    # --- adaptive clustering, journal Alg. 3; none of these values is given -------------------
    clusters: int = 0  # 0 = one net for all images (ICCV); k > 0 = k cluster nets (set by train_clustered)
    cluster_n0: int = 4  # N^0, clusters on the top layer
    cluster_mu: int = 40  # mu, the fewest reference images one net is trained on
    cluster_epsilon: float = -25.0  # E(I) = -PSNR: images colourised at >= 25 dB leave (about half of
    #                                 SUN8's training images with one net on the cpu preset, measured)
    cluster_max_layers: int = 3  # not in the paper: ends the loop if images never get below epsilon
    semantic_weight: float = 1.0  # weight of the semantic histogram in the test-time distance
    cluster_init: str = "scratch"  # cluster nets start from random weights ("scratch") or from the single
    #                                net trained on every reference image ("global"); not given in the paper

    def __post_init__(self):
        self.levels = tuple(self.levels)  # a JSON round trip gives a list
        if self.cluster_init not in ("scratch", "global"):
            raise ValueError(f"cluster_init must be 'scratch' or 'global', got {self.cluster_init!r}")


PRESETS = {
    "paper": Config(),
    "gpu": Config(parser="gpu", pixels_per_image=1000),
    "cpu": Config(parser="cpu", pixels_per_image=256, work_size=128, cluster_mu=60),
    "smoke": Config(parser="smoke", pixels_per_image=64, work_size=64, cluster_n0=2, cluster_mu=8, cluster_epsilon=-32.0),
}


def build(cfg: Config) -> nn.Module:
    """The ICCV net, or the journal's clustered model when `cfg.clusters > 0`."""
    return ClusteredCheng(cfg) if cfg.clusters else ChengNet(cfg)


def feature_config(cfg: Config) -> features.FeatureConfig:
    return features.FeatureConfig(patch_size=cfg.patch_size, levels=cfg.levels, semantic_classes=cfg.semantic_classes)


def input_dim(cfg: Config) -> int:
    return features.dims(feature_config(cfg))["total"]


# --- refinement ---------------------------------------------------------------------------------
def refine_uv(gray: np.ndarray, uv: np.ndarray, cfg: Config) -> np.ndarray:
    """Sec. 3.2.5: joint bilateral filter (Petschnigg et al. 2004) of (H, W, 2) U, V guided by (H, W) gray."""
    src = np.dstack([uv, np.zeros(uv.shape[:2], np.float32)]).astype(np.float32)  # OpenCV filters 1 or 3 channels
    out = cv2.ximgproc.jointBilateralFilter(np.ascontiguousarray(gray, np.float32), src, cfg.diameter or -1,
                                            cfg.sigma_r, cfg.sigma_s)
    return out[:, :, :2]


def working_gray(gray: np.ndarray, work_size: int | None) -> np.ndarray:
    """The gray image the features are computed on: its short side reduced to `work_size` (never enlarged)."""
    h, w = gray.shape
    if work_size is None or min(h, w) <= work_size:
        return gray
    scale = work_size / min(h, w)
    return cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


# --- the models ---------------------------------------------------------------------------------
class _Pipeline(nn.Module):
    """Alg. 2: features at every pixel -> net -> joint bilateral refinement -> join with the input Y."""

    cfg: Config

    def parser(self):
        """The scene parser of `cfg.parser`, loaded (or trained once, then cached) on first use."""
        if "semantic" not in self.cfg.levels:
            return None
        if self.__dict__.get("_parser") is None:  # kept out of the state dict: the parser has its own cache
            with torch.inference_mode(False), torch.enable_grad():  # a first use may train it, even inside colorize
                self.__dict__["_parser"] = features.load_parser(self.cfg.parser)
        return self.__dict__["_parser"]

    def set_parser(self, parser) -> None:
        self.__dict__["_parser"] = parser

    def forget_semantic_maps(self) -> None:
        """Drop the semantic maps kept on the parser, so the next colourisation parses again (timing)."""
        parser = self.__dict__.get("_parser")
        if parser is not None:
            parser.__dict__.pop("_semantic_memo", None)

    def semantic_map(self, gray: np.ndarray) -> np.ndarray | None:
        """(H, W, N) smoothed class probabilities of the whole image (not local, so never tiled)."""
        if "semantic" not in self.cfg.levels:
            return None
        parser, fcfg = self.parser(), feature_config(self.cfg)
        # Variants that share a parser (the ablation, the clustered model) see the same photos:
        # keep the last few maps on the parser, keyed by the image and the smoothing settings.
        memo = parser.__dict__.setdefault("_semantic_memo", {})
        key = (hashlib.blake2b(np.ascontiguousarray(gray).tobytes(), digest_size=16).hexdigest(), gray.shape, repr(fcfg))
        if key not in memo:
            while len(memo) >= SEMANTIC_MEMO:
                memo.pop(next(iter(memo)))
            memo[key] = features.high_level(gray, parser, fcfg)
        return memo[key]

    def net_for(self, gray: np.ndarray, semantic: np.ndarray | None) -> "ChengNet":
        raise NotImplementedError

    def chroma(self, gray: np.ndarray, refine: bool | None = None) -> np.ndarray:
        """(H, W) gray in [0, 1] -> (H, W, 2) predicted U, V in YUV units."""
        gray = check_gray(gray)
        work = working_gray(gray, self.cfg.work_size)
        semantic = self.semantic_map(work)
        uv = self.net_for(work, semantic).predict_uv(work, semantic)  # (h, w, 2)
        if work.shape != gray.shape:
            uv_t = torch.from_numpy(uv).permute(2, 0, 1)[None]  # (1, 2, h, w)
            uv = color.resize_to(uv_t, gray.shape)[0].permute(1, 2, 0).numpy()  # (H, W, 2)
        if self.cfg.refine if refine is None else refine:
            uv = refine_uv(gray, uv, self.cfg)
        return np.ascontiguousarray(uv, dtype=np.float32)

    @torch.inference_mode()
    def colorize(self, gray: torch.Tensor, refine: bool | None = None) -> torch.Tensor:
        """(B, 1, H, W) gray -> (B, 3, H, W) sRGB with Y = the input gray (sec. 3.1.1)."""
        if gray.ndim != 4 or gray.shape[1] != 1:
            raise ValueError(f"colorize expects gray images (B, 1, H, W), got shape {tuple(gray.shape)}")
        uv = np.stack([self.chroma(g[0].detach().cpu().float().numpy(), refine) for g in gray])  # (B, H, W, 2)
        uv_t = torch.from_numpy(uv).permute(0, 3, 1, 2).to(gray)  # (B, 2, H, W)
        return color.join_yuv(gray, uv_t)  # (B, 3, H, W)


SEMANTIC_MEMO = 4  # semantic maps kept per parser (N x 4 bytes per pixel of the working image)
STD_FLOOR = 0.1  # every feature lies in [0, 1]: a smaller spread is scaled up at most 10x


class ChengNet(_Pipeline):
    """Sec. 3.1.2: D -> 3 x 64 ReLU -> 2 (U, V), the output "just the weighted combination" (Eq. 2)."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        d = input_dim(cfg)
        widths = (d,) + (cfg.hidden,) * cfg.layers
        body = [m for a, b in zip(widths[:-1], widths[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
        self.mlp = nn.Sequential(*body, nn.Linear(widths[-1], 2))
        # not in the paper: inputs z-scored with the first training batch's statistics, so the
        # three feature levels (gray values, DAISY histograms, probabilities) share one scale;
        # the std floor (STD_FLOOR) keeps rare classes' near-constant probabilities from exploding
        self.register_buffer("x_mean", torch.zeros(d))
        self.register_buffer("x_std", torch.ones(d))
        self.register_buffer("stats_ready", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.x_mean) / self.x_std  # (N, D)
        return self.mlp(x)  # (N, 2), normalised U, V (color.cheng_uv_to_target)

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        x, target = batch["x"].float(), batch["uv"].float()  # (B, D), (B, 2)
        if self.training and not bool(self.stats_ready):
            with torch.no_grad():
                self.x_mean.copy_(x.mean(0))
                self.x_std.copy_(x.std(0).clamp(min=STD_FLOOR))
                self.stats_ready.fill_(True)
        loss = least_squares(self(x), target)
        return loss, {"color": float(loss.detach())}

    def net_for(self, gray, semantic) -> "ChengNet":
        return self

    @torch.inference_mode()
    def predict_uv(self, gray: np.ndarray, semantic: np.ndarray | None) -> np.ndarray:
        """(H, W) gray -> (H, W, 2) U, V, computing the local features in row tiles.

        Each tile is cut with `features.context_radius` extra rows on both
        sides, so its interior gets exactly the features of the whole image.
        """
        fcfg = feature_config(self.cfg)
        h, w = gray.shape
        margin, rows = features.context_radius(fcfg), max(1, self.cfg.tile_pixels // w)
        out = np.empty((h, w, 2), np.float32)
        for r0 in range(0, h, rows):
            r1 = min(r0 + rows, h)
            a, b = max(r0 - margin, 0), min(r1 + margin, h)
            sem = None if semantic is None else semantic[a:b]
            x = features.extract(gray[a:b], fcfg, semantic=sem)[r0 - a : r1 - a]  # (rows, W, D)
            y = self(torch.from_numpy(np.ascontiguousarray(x)).reshape(-1, x.shape[-1]))  # (rows*W, 2)
            y = y.reshape(1, r1 - r0, w, 2).permute(0, 3, 1, 2)  # (1, 2, rows, W)
            out[r0:r1] = color.cheng_target_to_uv(y)[0].permute(1, 2, 0).numpy()  # (rows, W, 2)
        return out


def least_squares(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 1 of Cheng et al. 2015: sum_p ||F(x_p) - c_p||^2, here averaged over the pixels of a batch."""
    return ((pred - target) ** 2).sum(dim=1).mean()


class ClusteredCheng(_Pipeline):
    """Journal version: one `ChengNet` per image cluster, chosen per image by global descriptor and
    semantic histogram (Alg. 2 step 0, Alg. 3; `colorlab.clustering`)."""

    def __init__(self, cfg: Config):
        super().__init__()
        if cfg.clusters < 1:
            raise ValueError("ClusteredCheng needs cfg.clusters >= 1 (the number of cluster nets)")
        self.cfg = cfg
        self.nets = nn.ModuleList(ChengNet(replace(cfg, clusters=0)) for _ in range(cfg.clusters))
        g = clustering.THUMB**2 + clustering.GRAY_BINS
        n = cfg.semantic_classes if "semantic" in cfg.levels else 0
        self.register_buffer("centres", torch.zeros(cfg.clusters, g))  # standardised global descriptors
        self.register_buffer("histograms", torch.zeros(cfg.clusters, n))  # mean semantic histograms
        self.register_buffer("desc_mean", torch.zeros(g))
        self.register_buffer("desc_std", torch.ones(g))
        self.register_buffer("layer", torch.zeros(cfg.clusters, dtype=torch.long))

    def standardize(self, desc: np.ndarray) -> np.ndarray:
        return clustering.Standardizer(self.desc_mean.numpy(), self.desc_std.numpy())(desc)

    def select(self, gray: np.ndarray, semantic: np.ndarray | None) -> int:
        """Index of the nearest cluster (global descriptor + semantic histogram)."""
        desc = self.standardize(clustering.global_descriptor(gray))
        hist = np.zeros(0, np.float32) if semantic is None else clustering.semantic_histogram(semantic)
        return clustering.nearest(desc, hist, self.centres.numpy(), self.histograms.numpy(), self.cfg.semantic_weight)

    def net_for(self, gray, semantic) -> ChengNet:
        return self.nets[self.select(gray, semantic)]

    def training_loss(self, batch):
        raise NotImplementedError("the clustered model is trained by cheng2015.train_clustered (Alg. 3), not by train.fit")




# --- reference images and training --------------------------------------------------------------
# Reference images (sec. 4: 2,688 SUN images, not public as a list): SUN8's train split, decoded
# square at the working size. Validation pixels come from SUN8 test (loss curves only, no selection).
DATA = {
    "paper": (DataSpec("sun8", "train", 256), DataSpec("sun8", "test", 256, limit=80)),
    "gpu": (DataSpec("sun8", "train", 256), DataSpec("sun8", "test", 256, limit=80)),
    "cpu": (DataSpec("sun8", "train", 128, limit=480), DataSpec("sun8", "test", 128, limit=40)),
    "smoke": (DataSpec("smoke", "train", 64), DataSpec("smoke", "val", 64)),
}
# Optimizer, learning rate, batch and length are not given (sec. 3.1.2: "classical error
# back-propagation"): Adam at 1e-3 on batches of random pixels, our choice.
TRAIN = {
    "paper": dict(steps=20_000, batch_size=256, optimizer="adam", lr=1e-3, flip=False, eval_every=1000, ckpt_every=5000, log_every=100),
    "gpu": dict(steps=50_000, batch_size=1024, optimizer="adam", lr=1e-3, flip=False, eval_every=2000, ckpt_every=10_000, log_every=100),
    # cpu: validation loss stops improving after ~1000 steps on 480 images (measured), 1500 is enough
    "cpu": dict(steps=1500, batch_size=512, optimizer="adam", lr=1e-3, flip=False, eval_every=250, ckpt_every=1500, log_every=50),
    "smoke": dict(steps=200, batch_size=256, optimizer="adam", lr=3e-3, flip=False, eval_every=100, ckpt_every=200, log_every=20),
}
SAMPLER_VERSION = 1  # part of the pixel cache key: bump when `pixel_samples` changes


@dataclass
class PixelSamples:
    """Training pixels of a set of reference images, and one global summary per image."""

    x: np.ndarray  # (n, D) float32 features, levels of `levels`
    uv: np.ndarray  # (n, 2) float32 normalised U, V targets (color.cheng_uv_to_target)
    image: np.ndarray  # (n,) int32 index of the pixel's image
    gray: np.ndarray  # (n,) float32 gray value (the Y the colourisation keeps)
    truth: np.ndarray  # (n, 3) uint8 ground-truth RGB
    descriptors: np.ndarray  # (m, G) float32 clustering.global_descriptor of each image
    histograms: np.ndarray  # (m, N) float32 clustering.semantic_histogram (N = 0 without semantics)
    levels: tuple[str, ...]
    key: str = ""

    def arrays(self, cfg: Config | None = None) -> dict[str, np.ndarray]:
        """{"x", "uv"} for train.fit; `cfg` picks the columns of its feature levels (the ablation)."""
        return {"x": self.x if cfg is None else self.x[:, self.columns(cfg)], "uv": self.uv}

    def columns(self, cfg: Config) -> np.ndarray:
        have = features.dims(replace(feature_config(cfg), levels=self.levels))
        missing = [lv for lv in cfg.levels if lv not in self.levels]
        if missing:
            raise ValueError(f"these pixel samples hold levels {self.levels}, not {missing}")
        starts = np.cumsum([0] + [have[lv] for lv in self.levels])
        return np.concatenate([np.arange(starts[i], starts[i + 1]) for i, lv in enumerate(self.levels) if lv in cfg.levels])


def _source_digest() -> str:
    """The code that makes pixel samples: colorlab.features, clustering's descriptors, SAMPLER_VERSION."""
    files = sorted(Path(features.__file__).parent.glob("*.py")) + [Path(clustering.__file__)]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]


def pixel_samples(cfg: Config, spec: DataSpec, progress: bool = True) -> PixelSamples:
    """Features of `cfg.pixels_per_image` random pixels of every reference image, cached on disk.

    Computing features is the expensive part of training, so it is done once
    per (feature config, parser, data, sampling) and kept as .npy files under
    `cache_dir()/cheng2015/pixels/<key>/` (written to a temporary folder, then renamed).
    """
    from colorlab import data

    fcfg = feature_config(cfg)
    parser = features.load_parser(cfg.parser, progress=progress) if "semantic" in cfg.levels else None
    payload = {"features": asdict(fcfg), "parser": getattr(parser, "key", None), "data": asdict(spec),
               "pixels": cfg.pixels_per_image, "seed": cfg.sample_seed, "code": [SAMPLER_VERSION, _source_digest()]}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    folder = settings.cache_dir() / "cheng2015" / "pixels" / key[:16]
    names = [f.name for f in fields(PixelSamples) if f.name not in ("levels", "key")]
    if (folder / "done").exists():
        return PixelSamples(**{n: np.load(folder / f"{n}.npy") for n in names}, levels=fcfg.levels, key=key)
    dec = data.decoded(spec.name, spec.split, spec.size, spec.limit)
    parts = {n: [] for n in names}
    for i in tqdm(range(len(dec.rgb)), desc=f"Cheng features {spec.name}/{spec.split}", disable=not progress):
        for n, v in _sample_image(np.asarray(dec.rgb[i]), i, fcfg, parser, cfg).items():
            parts[n].append(v)
    out = {n: np.concatenate(v) if n not in ("descriptors", "histograms") else np.stack(v) for n, v in parts.items()}
    tmp = Path(tempfile.mkdtemp(dir=_mkdir(folder.parent), prefix=f".{folder.name}."))
    for n, v in out.items():
        np.save(tmp / f"{n}.npy", v)
    (tmp / "payload.json").write_text(json.dumps(payload, indent=2, default=str))
    (tmp / "done").touch()
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return PixelSamples(**out, levels=fcfg.levels, key=key)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sample_image(rgb: np.ndarray, index: int, fcfg, parser, cfg: Config) -> dict[str, np.ndarray]:
    """Features and targets of `cfg.pixels_per_image` pixels drawn uniformly without replacement."""
    rgb_t = color.to_float(rgb)  # (1, 3, H, W)
    gray = color.rgb_to_gray(rgb_t)[0, 0].numpy()  # (H, W)
    uv = color.rgb_to_yuv(rgb_t)[0, 1:].permute(1, 2, 0).reshape(-1, 2).numpy()  # (H*W, 2)
    x = features.extract(gray, fcfg, parser)  # (H, W, D)
    rng = np.random.default_rng([cfg.sample_seed, index])
    idx = rng.choice(gray.size, size=min(cfg.pixels_per_image, gray.size), replace=False)
    n_sem = fcfg.semantic_classes if "semantic" in fcfg.levels else 0
    return {
        "x": x.reshape(gray.size, -1)[idx],
        "uv": color.cheng_uv_to_target_np(uv[idx]).astype(np.float32),
        "image": np.full(len(idx), index, np.int32),
        "gray": gray.ravel()[idx],
        "truth": rgb.reshape(-1, 3)[idx],
        "descriptors": clustering.global_descriptor(gray),
        "histograms": clustering.semantic_histogram(x[:, :, x.shape[2] - n_sem :]) if n_sem else np.zeros(0, np.float32),
    }


def train_config(profile: str, base: "training.TrainConfig | None" = None, **overrides) -> "training.TrainConfig":
    """`TRAIN[profile]` (or `base`, e.g. from `colorlab train --set`) with overrides."""
    return replace(base, **overrides) if base is not None else training.TrainConfig(**{**TRAIN[profile], **overrides})


def train(cfg: Config, profile: str, seed: int = 0, samples: PixelSamples | None = None,
          val: PixelSamples | None = None, progress: bool = True, *, train_cfg=None, resume: bool = True,
          **train_overrides):
    """The trained single-net model (ICCV) of `cfg` on `profile`'s reference images, as a `runs.Run`.

    Reuses a finished run with the same config, data and code. `samples`
    (e.g. all three levels, for the ablation) may hold more levels than `cfg` uses.
    `train_cfg` replaces `TRAIN[profile]` (and `seed`) when given.
    """
    from colorlab import runs

    spec, val_spec = DATA[profile]
    samples = samples or pixel_samples(cfg, spec, progress)
    val = val or pixel_samples(cfg, val_spec, progress)
    tcfg = train_config(profile, train_cfg, **train_overrides) if train_cfg else train_config(profile, seed=seed, **train_overrides)
    data_id = {"train": samples.key, "val": val.key, "levels": list(cfg.levels)}
    return runs.train_or_load_arrays("cheng2015", cfg, tcfg, samples.arrays(cfg), val.arrays(cfg), data_id,
                                     progress=progress, resume=resume)


def train_run(profile: str, cfg: Config, train_cfg: "training.TrainConfig", progress: bool = True, resume: bool = True):
    """The `colorlab.train.train_profile` hook: Cheng trains on cached per-pixel features, not images."""
    if cfg.clusters > 0:
        return train_clustered(cfg, profile, seed=train_cfg.seed, progress=progress)
    return train(cfg, profile, seed=train_cfg.seed, progress=progress, train_cfg=train_cfg, resume=resume)


def _pixels_by_image(image: np.ndarray, m: int) -> list[np.ndarray]:
    order = np.argsort(image, kind="stable")
    return np.split(order, np.cumsum(np.bincount(image, minlength=m))[:-1])


def image_psnr(net: ChengNet, x: np.ndarray, gray: np.ndarray, truth: np.ndarray) -> float:
    """PSNR of a net's colourisation of one image, estimated on its sampled pixels (no refinement)."""
    with torch.inference_mode():
        y = net.eval()(torch.from_numpy(np.ascontiguousarray(x)))  # (P, 2)
        uv = color.cheng_target_to_uv(y.T[None, :, :, None])  # (1, 2, P, 1)
        rgb = color.join_yuv(torch.from_numpy(gray)[None, None, :, None], uv)  # (1, 3, P, 1)
    return metrics.psnr(color.to_uint8(rgb)[0], truth[:, None, :])


def train_clustered(cfg: Config, profile: str, seed: int = 0, samples: PixelSamples | None = None,
                    progress: bool = True, **train_overrides):
    """The journal version (Alg. 3, `colorlab.clustering`): one net per image cluster, as a `runs.Run`.

    Each cluster net trains for the profile's steps times its share of the
    reference images (at least a quarter of them). E(I) = -PSNR of I's
    colourisation, estimated on I's sampled pixels without refinement (the
    journal does not say how it is computed). The run folder is that of
    `colorlab.runs` (config.json, final.pt, done), so `runs.load_run` and
    `Run.model` rebuild the clustered model; `metrics.json` holds the clusters.
    """
    from colorlab import runs

    spec, _ = DATA[profile]
    samples = samples or pixel_samples(cfg, spec, progress)
    base = replace(cfg, clusters=0)
    tcfg = train_config(profile, seed=seed, **train_overrides)
    data = {"arrays": {"train": samples.key, "levels": list(cfg.levels)}, "algorithm": "adaptive clustering"}
    key = runs.run_key("cheng2015", base, tcfg, data)
    folder = runs.run_dir("cheng2015", key)
    if (folder / "done").exists() and (folder / "final.pt").exists():
        return runs.Run(key, folder, json.loads((folder / "config.json").read_text()))
    m = len(samples.descriptors)
    pixels = _pixels_by_image(samples.image, m)
    x = samples.x[:, samples.columns(base)]
    scaler = clustering.Standardizer.fit(samples.descriptors)

    def train_net(members: np.ndarray, index: int) -> ChengNet:
        idx = np.concatenate([pixels[i] for i in members])
        steps = max(tcfg.steps // 4, round(tcfg.steps * len(members) / m))
        t = replace(tcfg, steps=steps, eval_every=steps, ckpt_every=steps, log_every=min(tcfg.log_every, steps))
        training.seed_everything(seed + 1000 * index)  # the initial weights
        net = ChengNet(base)
        if cfg.cluster_init == "global":
            net.load_state_dict(train(base, profile, seed, samples, progress=progress, **train_overrides).model.state_dict())
        return training.fit(net, {"x": x[idx], "uv": samples.uv[idx]}, None, t,
                            folder / "nets" / f"{index:02d}", progress=False).model

    def error(net: ChengNet, members: np.ndarray) -> np.ndarray:
        return np.array([-image_psnr(net, x[pixels[i]], samples.gray[pixels[i]], samples.truth[pixels[i]]) for i in members])

    hists = samples.histograms if "semantic" in cfg.levels else np.zeros((m, 0), np.float32)
    found = clustering.adaptive_clustering(scaler(samples.descriptors), hists, train_net, error,
                                           cfg.cluster_n0, cfg.cluster_mu, cfg.cluster_epsilon,
                                           cfg.cluster_max_layers, seed, print if progress else None)
    if not found:
        raise ValueError(f"no cluster reached mu={cfg.cluster_mu} of {m} reference images; lower cluster_mu or cluster_n0")
    final = replace(cfg, clusters=len(found))
    model = ClusteredCheng(final)
    for net, c in zip(model.nets, found):
        net.load_state_dict(c.net.state_dict())
    with torch.no_grad():
        model.centres.copy_(torch.from_numpy(np.stack([c.centre for c in found])))
        model.histograms.copy_(torch.from_numpy(np.stack([c.histogram for c in found])))
        model.desc_mean.copy_(torch.from_numpy(scaler.mean))
        model.desc_std.copy_(torch.from_numpy(scaler.std))
        model.layer.copy_(torch.tensor([c.layer for c in found]))
    config = training._jsonable({"key": key, "model_name": "cheng2015", "model_config": asdict(final),
                                 "train_config": asdict(tcfg), "data": data, "code_version": runs.code_version("cheng2015"),
                                 "created": datetime.datetime.now().isoformat(timespec="seconds")})
    summary = [{"cluster": i, "layer": c.layer, "images": len(c.members), "mean_psnr": float(-c.errors.mean()),
                "left": int((c.errors <= cfg.cluster_epsilon).sum())} for i, c in enumerate(found)]
    reports.atomic_write_text(folder / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    training.atomic_save({"model": model.state_dict(), "config": config["model_config"], "model_name": "cheng2015",
                          "key": key}, folder / "final.pt")
    reports.atomic_write_text(folder / "metrics.json", json.dumps({"clusters": summary, "reference_images": m}, indent=2) + "\n")
    reports.atomic_write_text(folder / "done", datetime.datetime.now().isoformat(timespec="seconds") + "\n")
    run = runs.Run(key, folder, config)
    run._model = model.eval()
    return run


# --- the study (notebook 01) --------------------------------------------------------------------
ABLATION = {"patch": ("patch",), "patch+daisy": ("patch", "daisy"), "patch+daisy+semantic": features.LEVELS}
# Cheng et al. 2015 print one PSNR under each result figure (sec. 4): single images, not test sets.
PAPER_PSNR = [
    ("Fig. 8", "road scene, ours", 33), ("Fig. 9", "city", 30), ("Fig. 9", "road", 31), ("Fig. 9", "house", 23),
    ("Fig. 9", "forest", 23), ("Fig. 9", "building", 29), ("Fig. 9", "beach", 27), ("Fig. 9", "field", 25),
    ("Fig. 10", "ours (vs. Gupta et al. 19/17/18)", 22),
]


def paper_psnr() -> pd.DataFrame:
    return pd.DataFrame(PAPER_PSNR, columns=["figure", "image", "psnr_db"])


def variants(profile: str, seed: int = 0, progress: bool = True) -> dict[str, nn.Module]:
    """Every model notebook 01 compares, trained once and cached: the feature-level ablation (with
    refinement), the full model without refinement, and the clustered (journal) model."""
    return _variant_runs(profile, seed, progress)[0]


def _variant_runs(profile: str, seed: int, progress: bool) -> tuple[dict[str, nn.Module], Path]:
    """`variants` and the folder of the full model's run (its key covers the preset, the seed and the code)."""
    cfg = PRESETS[profile]
    spec, val_spec = DATA[profile]
    samples, val = pixel_samples(cfg, spec, progress), pixel_samples(cfg, val_spec, progress)
    trained = {name: train(replace(cfg, levels=lv), profile, seed, samples, val, progress) for name, lv in ABLATION.items()}
    out = {name: run.model for name, run in trained.items()}
    full = out["patch+daisy+semantic"]
    out["no refinement"] = build(replace(full.cfg, refine=False)).eval()
    out["no refinement"].load_state_dict(full.state_dict())
    out["clustered"] = train_clustered(cfg, profile, seed, samples, progress).model
    parser = full.parser()
    for model in out.values():
        model.set_parser(parser)
    return out, trained["patch+daisy+semantic"].dir


def eval_sets(profile: str, limit: int | None = None) -> list:
    """SUN8 test, MiniPlaces val and Kodak24 at full resolution (smoke: the smoke val set)."""
    from colorlab import profiles, study

    limit = profiles.eval_limit(profile) if limit is None else limit
    return [study.load_eval_set(d, s, limit) for d, s in profiles.eval_sets(profile)
            if d in ("sun8", "miniplaces", "kodak24", "smoke")]


def feature_ablation(profile: str, seeds=(0,), limit: int | None = None, progress: bool = True,
                     datasets: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Per-image scores (colorlab.study columns + seed) of every `variants` model on every eval set
    (or those named in `datasets`), scored once and cached in the full model's run folder."""
    from colorlab import study

    sets = [s for s in eval_sets(profile, limit) if datasets is None or s.dataset in datasets]
    if not sets:
        raise ValueError(f"no evaluation set among {datasets} at profile {profile!r}")
    frames = []
    for seed in seeds:
        methods, folder = _variant_runs(profile, seed, progress)
        frames += [study.evaluate_cached(methods, s, folder, "ablation", progress).assign(seed=seed) for s in sets]
    return pd.concat(frames, ignore_index=True)


def bilateral_sensitivity(model: _Pipeline, eval_set, sigma_s=(1.5, 3.0, 6.0), sigma_r=(0.04, 0.16)) -> pd.DataFrame:
    """PSNR, SSIM and colourfulness ratio per image without refinement (sigma_s = 0) and with each
    (sigma_s, sigma_r) of the joint bilateral filter (sec. 3.2.5; the values are not given in the paper)."""
    rows = []
    for name, rgb in zip(eval_set.names, eval_set.rgb):
        gray = color.rgb_to_gray(color.to_float(rgb))  # (1, 1, H, W)
        raw = model.chroma(gray[0, 0].numpy(), refine=False)  # (H, W, 2)
        for s, r in [(0.0, 0.0)] + [(s, r) for s in sigma_s for r in sigma_r]:
            uv = raw if s == 0 else refine_uv(gray[0, 0].numpy(), raw, replace(model.cfg, sigma_s=s, sigma_r=r))
            pred = color.to_uint8(color.join_yuv(gray, torch.from_numpy(uv).permute(2, 0, 1)[None]))[0]  # (H, W, 3)
            rows.append({"sigma_s": s, "sigma_r": r, "image": name, "psnr": metrics.psnr(pred, rgb),
                         "ssim": metrics.ssim(pred, rgb), "colorfulness_ratio": metrics.colorfulness_ratio(pred, rgb)})
    return pd.DataFrame(rows)


def feature_views(gray: np.ndarray, cfg: Config, parser=None) -> dict[str, np.ndarray]:
    """The three feature levels of one image as pictures: patch and DAISY as their first three principal
    components (RGB), semantic as the most likely class (colour-coded) and its probability."""
    from matplotlib import colormaps
    from sklearn.decomposition import PCA

    fcfg = feature_config(replace(cfg, levels=features.LEVELS))

    def pca_rgb(x: np.ndarray) -> np.ndarray:
        z = PCA(3, random_state=0).fit_transform(x.reshape(-1, x.shape[-1]))  # (H*W, 3)
        lo, hi = np.percentile(z, 1, axis=0), np.percentile(z, 99, axis=0)
        return np.clip((z - lo) / np.maximum(hi - lo, 1e-8), 0, 1).reshape(*x.shape[:2], 3)

    probs = features.high_level(gray, parser, fcfg)  # (H, W, N)
    labels = probs.argmax(-1)
    return {"gray": gray, "patch": pca_rgb(features.low_level(gray, fcfg.patch_size)),
            "daisy": pca_rgb(features.mid_level(gray, fcfg)),
            "semantic": colormaps["tab20"](labels % 20)[..., :3], "confidence": probs.max(-1), "labels": labels}


def benchmark(quick: bool = False, sizes=(256,), preset: str = "cpu", repeats: int = 5) -> dict:
    """Seconds to colourise one gray photo at full resolution: features + net + joint bilateral filter.

    The paper: 4.9 s for 256 x 256 in Matlab (sec. 3.3, hardware not given).
    Random weights (the time does not depend on them); the preset's parser. Every repeat
    parses the photo anew, as a new photo would be (the maps kept for the study's variants
    are dropped first).
    """
    from skimage import data as skdata

    if quick:
        sizes, preset, repeats = (32, 64), "smoke", 2
    model = build(replace(PRESETS[preset], work_size=None)).eval()
    model.parser()  # load (or train once) outside the timing
    photo = color.rgb_to_gray(color.to_float(skdata.astronaut()))[0, 0].numpy()
    out = {"preset": preset, "threads": torch.get_num_threads(), "paper_matlab_256_s": 4.9, "sizes": {}}
    for size in sizes:
        gray = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
        gray_t = torch.from_numpy(gray)[None, None]
        times, parts = [], {"semantic_s": [], "features_and_net_s": [], "refine_s": []}
        model.colorize(gray_t)  # warm-up
        for _ in range(repeats):
            model.forget_semantic_maps()  # time the parser too, as a new photo would
            t0 = time.perf_counter()
            sem = model.semantic_map(gray)
            t1 = time.perf_counter()
            uv = model.predict_uv(gray, sem)
            t2 = time.perf_counter()
            refine_uv(gray, uv, model.cfg)
            model.forget_semantic_maps()
            t3 = time.perf_counter()
            model.colorize(gray_t)
            times.append(time.perf_counter() - t3)
            for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                parts[k].append(v)
        out["sizes"][str(size)] = {"median_s": float(np.median(times)), "min_s": float(min(times)),
                                   **{k: float(np.median(v)) for k, v in parts.items()}}
    return out
