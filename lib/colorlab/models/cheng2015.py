"""Cheng, Yang & Sheng, "Deep Colorization" (ICCV 2015; journal version arXiv 1605.00075).

A per-pixel regressor (Alg. 1 and 2 of the paper): every pixel p gets a
feature vector x_p = [7x7 gray patch; DAISY; semantic probabilities] (sec. 3.2,
`colorlab.features`), a small fully connected net maps it to the pixel's YUV
chrominance (sec. 3.1), a joint bilateral filter guided by the gray image
cleans the U, V maps (sec. 3.2.5), and the input gray is kept as Y.
`ClusteredCheng` is the journal version: one net per cluster of reference
images (Alg. 3, `colorlab.clustering`).

This module is the network alone. The scene parser of the semantic level is
a submodule (`scene_parser`, built from `Config.parser`), its weights in the
state dict: `build(Config(**ckpt["config"]))` + `load_state_dict(ckpt["model"])`
rebuilds either kind (`clusters = k > 0`: k cluster nets, centres and descriptor
statistics as buffers). The network never trains or loads a parser: the
experiment (`colorlab.experiments.cheng2015`) puts trained parser weights in,
trains on cached pixel features and holds the data and training presets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
import torch.nn as nn

from colorlab import clustering, color, features
from colorlab.features import memo
from colorlab.features import parser as scene_parser
from colorlab.features.descriptor import check_gray


@dataclass
class Config:
    # --- features, sec. 3.2 and sec. 4 ----------------------------------------------------
    levels: tuple[str, ...] = ("patch", "daisy", "semantic")  # sec. 3.2: x_p = [x^L; x^M; x^H]
    patch_size: int = 7  # sec. 4: the 7x7 patch, 49-d
    semantic_classes: int = 47  # sec. 4: N = 47 object categories (must match the parser)
    parser: str = "paper"  # our scene parser's preset (`features.parser.PRESETS`); the paper used an FCN (sec. 3.2.3)
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
    tile_pixels: int = 1 << 17  # features of at most ~this many pixels at once (row tiles): bounds memory, same result
    # --- refinement, sec. 3.2.5: joint bilateral filter; the values are not given in the paper ---
    refine: bool = True
    sigma_s: float = 3.0  # pixels
    sigma_r: float = 0.08  # gray units in [0, 1] (about 20 / 255)
    diameter: int = 0  # window side; 0 = OpenCV's choice from sigma_s
    # --- adaptive clustering, journal Alg. 3; none of these values is given -------------------
    clusters: int = 0  # 0 = one net for all images (ICCV); k > 0 = k cluster nets (found by Alg. 3)
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
STD_FLOOR = 0.1  # every feature lies in [0, 1]: a smaller spread is scaled up at most 10x

def build(cfg: Config) -> nn.Module:
    """The ICCV net, or the journal's clustered model when `cfg.clusters > 0`."""
    return ClusteredCheng(cfg) if cfg.clusters else ChengNet(cfg)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """The identity: the nets have no BatchNorm (the parser's costs little beside the features)."""
    return model


def feature_config(cfg: Config) -> features.FeatureConfig:
    return features.FeatureConfig(patch_size=cfg.patch_size, levels=cfg.levels, semantic_classes=cfg.semantic_classes)


def input_dim(cfg: Config) -> int:
    return features.dims(feature_config(cfg))["total"]


def parser_config(cfg: Config) -> scene_parser.ParserConfig:
    """The ParserConfig of the model's scene parser (`features.parser.PRESETS[cfg.parser]`)."""
    return scene_parser.config(cfg.parser)


def least_squares(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 1 of Cheng et al. 2015: sum_p ||F(x_p) - c_p||^2, here averaged over the pixels of a batch."""
    return ((pred - target) ** 2).sum(dim=1).mean()


def refine_uv(gray: np.ndarray, uv: np.ndarray, cfg: Config) -> np.ndarray:
    """Sec. 3.2.5: joint bilateral filter (Petschnigg et al. 2004) of (H, W, 2) U, V guided by (H, W) gray."""
    src = np.dstack([uv, np.zeros(uv.shape[:2], np.float32)]).astype(np.float32)  # OpenCV filters 1 or 3 channels
    out = cv2.ximgproc.jointBilateralFilter(np.ascontiguousarray(gray, np.float32), src, cfg.diameter or -1,
                                            cfg.sigma_r, cfg.sigma_s)
    return out[:, :, :2]


# --- the models ---------------------------------------------------------------------------------
class _Pipeline(nn.Module):
    """Alg. 2: features at every pixel -> net -> upsample -> joint bilateral refinement -> join with the input Y."""

    cfg: Config

    def _add_parser(self) -> None:
        """The scene parser as a submodule (its weights in the state dict) when the semantic level is used."""
        semantic = "semantic" in self.cfg.levels
        self.scene_parser = scene_parser.build(parser_config(self.cfg)).eval() if semantic else None
        if semantic and self.scene_parser.n_classes != self.cfg.semantic_classes:
            raise ValueError(f"parser preset {self.cfg.parser!r} has {self.scene_parser.n_classes} classes, "
                             f"Config.semantic_classes is {self.cfg.semantic_classes}")

    def train(self, mode: bool = True):
        super().train(mode)
        if getattr(self, "scene_parser", None) is not None:
            self.scene_parser.eval()  # trained by its own run: never updated here (its BatchNorm included)
        return self

    def parser(self):
        """The parser of the semantic level: the one `set_parser` gave, else the `scene_parser` submodule."""
        if "semantic" not in self.cfg.levels:
            return None
        return self.__dict__.get("_stand_in") or getattr(self, "scene_parser", None)

    def set_parser(self, parser) -> None:
        """Use `parser`: a `SceneParser` of the config's preset becomes the submodule (shared, its weights in
        the state dict); anything else with `n_classes` and `predict_proba` stands in, outside the state dict."""
        if "semantic" not in self.cfg.levels:
            return
        if isinstance(parser, scene_parser.SceneParser):
            if parser.cfg != parser_config(self.cfg):
                raise ValueError(f"the parser's config differs from preset {self.cfg.parser!r} of this model")
            self.scene_parser = parser.eval()
            self.__dict__.pop("_stand_in", None)
        else:
            self.__dict__["_stand_in"] = parser

    def semantic_map(self, gray: np.ndarray) -> np.ndarray | None:
        """(H, W, N) smoothed class probabilities of the whole image (not local, so never tiled). Nets that colour
        the same photos inside `memo.shared_maps` (scoring runs, the ablation) make them once per parser."""
        if "semantic" not in self.cfg.levels:
            return None
        parser, fcfg = self.parser(), feature_config(self.cfg)
        def key():  # None for a stand-in that is not a network: never kept
            weights = memo.weights_digest(parser)
            smoothing = (fcfg.smooth_sigma_spatial, fcfg.smooth_sigma_color, fcfg.smooth_iterations)
            return None if weights is None else ("semantic", memo.image_digest(gray), weights, repr(parser.cfg), smoothing)
        return memo.kept(key, lambda: features.high_level(gray, parser, fcfg))

    def net_for(self, gray: np.ndarray, semantic: np.ndarray | None) -> "ChengNet":
        raise NotImplementedError

    @torch.inference_mode()
    def chroma(self, gray: np.ndarray, refine: bool | None = None) -> np.ndarray:
        """(H, W) gray in [0, 1] -> (H, W, 2) predicted U, V in YUV units, at the gray image's size."""
        gray = check_gray(gray)
        gray_t = torch.from_numpy(gray)[None, None]  # (1, 1, H, W)
        size = color.working_size(gray.shape, shorter=self.cfg.work_size)
        work = color.to_working(gray_t, size)[0, 0].numpy()  # (h, w)
        semantic = self.semantic_map(work)  # (h, w, N) or None
        uv = self.net_for(work, semantic).predict_uv(work, semantic)  # (h, w, 2)
        uv_t = color.resize_to(torch.from_numpy(uv).permute(2, 0, 1)[None], gray.shape)  # (1, 2, H, W)
        uv = uv_t[0].permute(1, 2, 0).numpy()  # (H, W, 2)
        if self.cfg.refine if refine is None else refine:
            uv = refine_uv(gray, uv, self.cfg)  # (H, W, 2)
        return np.ascontiguousarray(uv, dtype=np.float32)

    @torch.inference_mode()
    def colorize(self, gray: torch.Tensor, refine: bool | None = None) -> torch.Tensor:
        """(B, 1, H, W) gray -> (B, 3, H, W) sRGB with Y = the input gray (sec. 3.1.1)."""
        if gray.ndim != 4 or gray.shape[1] != 1:
            raise ValueError(f"colorize expects gray images (B, 1, H, W), got shape {tuple(gray.shape)}")
        uv = np.stack([self.chroma(g[0].detach().cpu().float().numpy(), refine) for g in gray])  # (B, H, W, 2)
        uv_t = torch.from_numpy(uv).permute(0, 3, 1, 2).to(gray)  # (B, 2, H, W)
        return color.from_working(gray, uv_t, "yuv")  # (B, 3, H, W)


class ChengNet(_Pipeline):
    """Sec. 3.1.2: D -> 3 x 64 ReLU -> 2 (U, V), the output "just the weighted combination" (Eq. 2).
    `with_parser=False` leaves the scene parser out (the cluster nets of `ClusteredCheng`, which holds one)."""

    def __init__(self, cfg: Config, with_parser: bool = True):
        super().__init__()
        self.cfg = cfg
        if with_parser:
            self._add_parser()
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
                self.x_mean.copy_(x.mean(0))  # (D,)
                self.x_std.copy_(x.std(0).clamp(min=STD_FLOOR))  # (D,)
                self.stats_ready.fill_(True)
        loss = least_squares(self(x), target)  # ()
        return loss, {"color": float(loss.detach())}

    def net_for(self, gray, semantic) -> "ChengNet":
        return self

    @torch.inference_mode()
    def predict_uv(self, gray: np.ndarray, semantic: np.ndarray | None) -> np.ndarray:
        """(H, W) gray -> (H, W, 2) U, V, computing the local features in row tiles.

        Each tile is cut with `features.context_radius` extra rows on both sides, so its interior gets exactly
        the features of the whole image. Inside `memo.shared_maps` nets of the same local levels make them once.
        """
        fcfg = feature_config(self.cfg)
        h, w = gray.shape
        local = tuple(lv for lv in fcfg.levels if lv != "semantic")  # patch | daisy; the semantic maps come whole
        lcfg = replace(fcfg, levels=local) if local else None
        if semantic is not None and semantic.shape != (h, w, fcfg.semantic_classes):
            raise ValueError(f"semantic maps must be {(h, w, fcfg.semantic_classes)}, got {semantic.shape}")
        margin, rows = features.context_radius(fcfg), max(1, self.cfg.tile_pixels // w)
        out = np.empty((h, w, 2), np.float32)
        for r0 in range(0, h, rows):
            r1 = min(r0 + rows, h)
            a, b = max(r0 - margin, 0), min(r1 + margin, h)
            tile, parts = gray[a:b], []
            if lcfg is not None:
                local_x = memo.kept(lambda: ("local", memo.image_digest(tile), repr(lcfg)),
                                    lambda: features.extract(tile, lcfg))
                parts.append(local_x[r0 - a : r1 - a])  # (rows, W, 49 + 32)
            if semantic is not None:
                parts.append(np.asarray(semantic[r0:r1], dtype=np.float32))  # (rows, W, N)
            x = np.concatenate(parts, axis=2) if len(parts) > 1 else np.array(parts[0])  # (rows, W, D), this net's copy
            y = self(torch.from_numpy(x).reshape(-1, x.shape[-1]))  # (rows*W, 2)
            y = y.reshape(1, r1 - r0, w, 2).permute(0, 3, 1, 2)  # (1, 2, rows, W)
            out[r0:r1] = color.cheng_target_to_uv(y)[0].permute(1, 2, 0).numpy()  # (rows, W, 2)
        return out


class ClusteredCheng(_Pipeline):
    """Journal version: one `ChengNet` per image cluster, chosen per image by global descriptor and
    semantic histogram (Alg. 2 step 0, Alg. 3; `colorlab.clustering`). One scene parser serves all nets."""

    def __init__(self, cfg: Config):
        super().__init__()
        if cfg.clusters < 1:
            raise ValueError("ClusteredCheng needs cfg.clusters >= 1 (the number of cluster nets)")
        self.cfg = cfg
        self._add_parser()
        self.nets = nn.ModuleList(ChengNet(replace(cfg, clusters=0), with_parser=False) for _ in range(cfg.clusters))
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
        raise NotImplementedError("the clustered model is trained by Alg. 3 (experiments.cheng2015), not train.fit")
