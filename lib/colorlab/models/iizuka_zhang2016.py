"""An extension, not a reproduction: Iizuka et al. 2016's network trained with the loss and readout of
Zhang, Isola & Efros 2016, "Colorful Image Colorization" (ECCV), sec. 3.1-3.2.

The mean squared error of Iizuka et al. (Eq. 6) makes a network predict, for every ambiguous pixel,
the mean of its plausible colours, which is grayer than any of them. Zhang et al. instead classify
each pixel's ab over Q bins of a 10-unit grid that fall in the sRGB gamut (313 in the paper), with

- soft targets: the 5 nearest bins of the true ab, Gaussian weights (sigma 5), sec. 3.1;
- class rebalancing: each pixel's loss weighted by w ~ ((1 - lambda) p~ + lambda / Q)^-1, normalised
  so that E_p~[w] = 1, where p~ is the bins' empirical prior smoothed by a Gaussian (sigma 5) and
  lambda = 1/2, Eq. 3-4. The paper's prior is ImageNet's; ours is counted over the training batches
  as they come (buffer `counts`, kept in checkpoints), uniform before the first batch;
- the annealed-mean readout: the mean of softmax(z / T) over the bin centres, T = 0.38, sec. 3.2.

Everything else (the two branches, fusion, the scene-classification term of Eq. 6, `colorize` at any
resolution) is `colorlab.models.iizuka2016`; only the output layer differs: a 1x1 convolution to Q
logits, as Zhang et al.'s last layer, in place of the 3x3 convolution and sigmoid to ab.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from colorlab import color
from colorlab.models import iizuka2016
from colorlab.models.iizuka2016 import count_parameters, fold_batchnorm  # noqa: F401 (the protocol's names)


@dataclass
class Config(iizuka2016.Config):
    grid: float = 10.0  # Zhang sec. 3.1: ab quantised with grid size 10
    ab_max: float = 110.0  # bin centres on [-ab_max, ab_max]^2, kept where some L gives an sRGB colour
    neighbours: int = 5  # soft encoding: the 5 nearest bins (sec. 3.1)
    sigma: float = 5.0  # their Gaussian weights, and the prior's smoothing (sec. 3.1)
    rebalance: float = 0.5  # lambda of Eq. 4; 0 = full rebalancing, 1 = none
    temperature: float = 0.38  # the annealed mean, sec. 3.2

    def __post_init__(self):
        super().__post_init__()
        if self.out_space != "lab":
            raise ValueError("the ab classification needs out_space='lab'")
        if self.color_loss != "mse":
            raise ValueError(f"color_loss={self.color_loss!r} is a loss of the regression; this net classifies ab bins")
        if not (0 < self.temperature <= 1 and 0 <= self.rebalance <= 1 and self.grid > 0 and self.neighbours >= 1):
            raise ValueError(f"need 0 < temperature <= 1, 0 <= rebalance <= 1, grid > 0, neighbours >= 1: {self}")


# The networks are Iizuka et al.'s presets (same widths and sizes), with Zhang et al.'s loss.
PRESETS = {name: Config(**vars(cfg)) for name, cfg in iizuka2016.PRESETS.items()}


def _axis(grid: float, ab_max: float) -> torch.Tensor:
    return torch.arange(-ab_max, ab_max + 1e-6, grid, dtype=torch.float64)  # (n,) centres along a and b


def gamut_bins(grid: float, ab_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, 2) ab centres of the grid cells that hold an sRGB colour at some lightness (313 at grid 10 in
    Zhang et al.; cells tested on a 5 x 5 sampling of each, L in 1..99), and the (n*n,) table from grid
    cell to bin: in the gamut its own bin, outside it the nearest bin."""
    axis = _axis(grid, ab_max)
    n = len(axis)
    offsets = torch.linspace(-grid / 2, grid / 2, 5, dtype=torch.float64)
    a = (axis[:, None] + offsets).flatten()  # (5n,) samples along a (and b)
    aa, bb = torch.meshgrid(a, a, indexing="ij")
    L = torch.linspace(1, 99, 50, dtype=torch.float64)
    lab = torch.stack(torch.broadcast_tensors(L[:, None, None], aa[None], bb[None]), dim=0)  # (3, 50, 5n, 5n)
    rgb = color.lab_to_rgb(lab.reshape(1, 3, 50, -1), clip=False)[0]  # (3, 50, 25 n^2)
    inside = ((rgb >= -1e-9) & (rgb <= 1 + 1e-9)).all(0).any(0).view(n, 5, n, 5).any(3).any(1).flatten()  # (n*n,)
    ca, cb = torch.meshgrid(axis, axis, indexing="ij")
    centres = torch.stack((ca.flatten(), cb.flatten()), 1)  # (n*n, 2)
    bins = centres[inside]
    table = torch.cdist(centres, bins).argmin(1)  # (n*n,)
    return bins.float(), table


class IizukaZhang2016(iizuka2016.Iizuka2016):
    def __init__(self, cfg: Config):
        super().__init__(cfg)
        bins, table = gamut_bins(cfg.grid, cfg.ab_max)
        self.register_buffer("bins", bins)  # (Q, 2)
        self.register_buffer("cell_bin", table, persistent=False)  # (n*n,) grid cell -> bin
        self.register_buffer("counts", torch.zeros(len(bins)))  # training pixels per nearest bin, so far
        smoothing = torch.exp(-torch.cdist(bins, bins).square() / (2 * cfg.sigma ** 2))  # (Q, Q) Gaussian, Eq. 4
        self.register_buffer("smoothing", smoothing, persistent=False)
        c32 = self.colorization[-2].in_channels
        self.colorization[-2] = nn.Conv2d(c32, len(bins), 1)  # Q logits per pixel, in place of 3x3 conv -> ab
        self.colorization[-1] = nn.Identity()  # no sigmoid: logits

    def nearest_bins(self, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ab (B, 2, h, w) -> (bins (N, k), Gaussian weights (N, k) summing to 1), N = B*h*w pixels in
        (b, y, x) order, nearest bin first: the sparse form of the soft target (sec. 3.1). On a grid the
        5 nearest centres lie among the 3 x 3 cells around the nearest one, so only those 9 are measured:
        exact inside the gamut; at its edge, the nearest bins among those cells (a cell outside the gamut
        stands for its nearest bin, which may then appear twice, its weights adding up)."""
        n = round(2 * self.cfg.ab_max / self.cfg.grid) + 1
        flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)  # (N, 2)
        cell = ((flat + self.cfg.ab_max) / self.cfg.grid).round().long()  # (N, 2) nearest grid cell
        step = torch.tensor([-1, 0, 1], device=ab.device)
        around = (cell[:, None, None, :] + torch.stack(torch.meshgrid(step, step, indexing="ij"), -1)).clamp(0, n - 1)
        cand = self.cell_bin[(around[..., 0] * n + around[..., 1]).reshape(len(flat), 9)]  # (N, 9) bin indices
        d2 = (flat[:, None, :] - self.bins[cand]).square().sum(-1)  # (N, 9)
        dist, pick = d2.topk(self.cfg.neighbours, dim=1, largest=False)  # (N, k)
        return cand.gather(1, pick), torch.softmax(-dist / (2 * self.cfg.sigma ** 2), dim=1)  # (N, k), (N, k)

    def soft_targets(self, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ab (B, 2, h, w) -> (dense soft target (B, Q, h, w), nearest bin (B, h, w)): `nearest_bins`
        scattered over all Q bins, for reading and plotting; the loss uses the sparse form."""
        idx, weight = self.nearest_bins(ab)  # (N, k), (N, k)
        target = weight.new_zeros(len(idx), len(self.bins)).scatter_add_(1, idx, weight)  # (N, Q)
        b, _, h, w = ab.shape
        return target.view(b, h, w, -1).permute(0, 3, 1, 2), idx[:, 0].view(b, h, w)

    def class_weights(self) -> torch.Tensor:
        """Eq. 3-4: (Q,) rebalancing weights from the smoothed prior of the bins seen so far."""
        q = len(self.bins)
        prior = self.counts / self.counts.sum() if self.counts.sum() > 0 else torch.full_like(self.counts, 1 / q)
        smooth = self.smoothing @ prior  # (Q,)
        smooth = smooth / smooth.sum()
        w = 1 / ((1 - self.cfg.rebalance) * smooth + self.cfg.rebalance / q)
        return w / (smooth * w).sum()  # E_p~[w] = 1

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Rebalanced cross-entropy over the ab bins (Zhang Eq. 2) + alpha * Iizuka's scene loss (Eq. 6)."""
        rgb = batch["rgb"]
        with torch.autocast(rgb.device.type, enabled=False):
            lab = color.rgb_to_lab(rgb.float())  # (B, 3, H, W)
            gray = color.L_to_gray(lab[:, :1])  # (B, 1, H, W)
        logits_ab, logits = self(gray)  # (B, Q, H/2, W/2), (B, n_classes) | None
        with torch.autocast(rgb.device.type, enabled=False):
            ab = F.interpolate(lab[:, 1:], size=logits_ab.shape[-2:], mode="area")  # (B, 2, H/2, W/2)
            idx, weight = self.nearest_bins(ab)  # (N, k), (N, k)
            if self.training:
                self.counts += torch.bincount(idx[:, 0], minlength=len(self.bins)).float()
            pixel_w = self.class_weights()[idx[:, 0]]  # (N,)
            z = logits_ab.permute(0, 2, 3, 1).reshape(len(idx), -1).float()  # (N, Q), a view under channels_last
            # -sum_q target_q log softmax(z)_q with the target's k non-zeros only (the weights sum to 1)
            ce = -(weight * F.log_softmax(z, dim=1).gather(1, idx)).sum(1)  # (N,)
            color_loss = (pixel_w * ce).mean()
        class_loss = color_loss.new_zeros(())
        labels = batch.get("label")
        if logits is not None and self.cfg.alpha > 0 and labels is not None and bool((labels >= 0).any()):
            class_loss = F.cross_entropy(logits.float(), labels, ignore_index=-1)
        total = color_loss + self.cfg.alpha * class_loss
        return total, {"color": color_loss.item(), "class": class_loss.item(), "total": total.item()}

    def annealed_mean(self, logits_ab: torch.Tensor) -> torch.Tensor:
        """(B, Q, h, w) logits -> (B, 2, h, w) ab: the mean of softmax(z / T) over the bin centres (sec. 3.2)."""
        z = logits_ab.permute(0, 2, 3, 1).float()  # (B, h, w, Q), a view under channels_last
        q = torch.softmax(z / self.cfg.temperature, dim=-1)  # (B, h, w, Q)
        return (q @ self.bins).permute(0, 3, 1, 2)  # (B, 2, h, w)

    @torch.no_grad()
    def colorize(self, gray: torch.Tensor, global_from: torch.Tensor | None = None) -> torch.Tensor:
        """gray (B, 1, H, W) in [0, 1] at any size -> sRGB (B, 3, H, W) keeping the input lightness."""
        if global_from is not None and not self.cfg.use_global:
            raise ValueError("global_from needs the global branch (use_global=True)")
        size = color.working_size(tuple(gray.shape[-2:]), multiple=8)
        net_in = color.to_working(gray, size)  # (B, 1, h, w)
        logits_ab, _ = self(net_in, global_from)  # (B, Q, h/2, w/2)
        return color.from_working(gray, self.annealed_mean(logits_ab), "lab")  # (B, 3, H, W)


def build(cfg: Config) -> IizukaZhang2016:
    return IizukaZhang2016(cfg)
