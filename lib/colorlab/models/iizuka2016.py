"""Iizuka, Simo-Serra, Ishikawa 2016, "Let there be Color!" (SIGGRAPH), Table 1.

A two-branch network on the grayscale photo: shared low-level features feed
a mid-level branch at full resolution and a global branch on a fixed-size
rescale (224 x 224 in the paper); the global 256-d vector is tiled over the
mid-level map (the fusion layer, Eq. 5), and a small decoder predicts the
chrominance at H/2 x W/2 through a sigmoid. A classification head on the
global features adds the scene-label loss of Eq. 6.

`colorize` runs on any size: the net sees the gray photo resized to the
nearest multiple of 8 (as the official colorize.lua does), the predicted
chroma is upsampled to the input size and joined with the input's own,
full-resolution lightness, so the output keeps every detail of the photo.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from colorlab import color

OUT_SPACES = ("lab", "yuv", "rgb")
# The colour term of Eq. 6: the paper's squared error ("mse"), or the absolute error ("l1"), an option of ours
# that is not in the paper (README, "An L1 colour loss"): it rewards the per-channel median of the plausible
# colours, not their mean.
COLOR_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}


@dataclass
class Config:
    n_classes: int = 205  # Places, sec. 4; our MiniPlaces presets use 100
    width: float = 1.0  # channel multiplier; 1.0 = Table 1
    global_size: int = 224  # the global branch sees a 224 x 224 rescale, sec. 3.2.1
    train_size: int = 224  # random 224 crops of 256 x 256 images, sec. 3.4
    alpha: float = 1 / 300  # classification weight, Eq. 6 / sec. 4
    use_global: bool = True  # False = the sec. 4 baseline: no global branch, 3x3 conv fusion, alpha 0
    out_space: str = "lab"  # sec. 4.8 compares "lab" (the paper's), "yuv" and "rgb"
    batch_norm: bool = True  # Conv-BN-ReLU "throughout the entire network", sec. 3.4
    input_mean: float = 0.5  # colorize.lua subtracts a stored mean whose value is not given; we centre at 0.5
    color_loss: str = "mse"  # Eq. 6's squared error; "l1" is an option of ours (COLOR_LOSSES)

    def __post_init__(self):
        if self.out_space not in OUT_SPACES:
            raise ValueError(f"out_space must be one of {OUT_SPACES}, got {self.out_space!r}")
        if self.color_loss not in COLOR_LOSSES:
            raise ValueError(f"color_loss must be one of {tuple(COLOR_LOSSES)}, got {self.color_loss!r}")
        if self.width <= 0 or self.global_size < 8 or self.train_size < 8:
            raise ValueError(f"width must be > 0 and sizes >= 8, got {self}")


PRESETS = {
    "paper": Config(),
    # MiniPlaces has 100 scene classes; the network is the paper's.
    "gpu": Config(n_classes=100),
    # One cpu-profile training run of a few thousand steps in ~2-3 min on 2 cores:
    # a quarter of the channels at 64 x 64, the global branch sharing that size.
    "cpu": Config(n_classes=100, width=0.25, global_size=64, train_size=64),
    "smoke": Config(n_classes=100, width=1 / 16, global_size=32, train_size=32),
}

# The paper states no parameter counts; these are `count_parameters` of the
# paper preset (Table 1 with BN, 205 classes), kept as a regression check.
PAPER_PARAMETERS = {
    "low": 2_288_832,
    "global": 35_790_336,  # 25.7 M of it in the 7 x 7 x 512 -> 1024 FC
    "mid": 3_540_480,
    "fusion": 131_584,
    "colorization": 425_090,
    "classification": 184_269,
    "total": 42_360_591,
}


def _conv(cin: int, cout: int, stride: int = 1, k: int = 3, bn: bool = True) -> nn.Sequential:
    """Conv -> BN -> ReLU (sec. 3.4: BN before the transfer function)."""
    layers = [nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=not bn)]
    layers += [nn.BatchNorm2d(cout)] if bn else []
    return nn.Sequential(*layers, nn.ReLU(inplace=True))


def _fc(fin: int, fout: int, bn: bool = True) -> nn.Sequential:
    layers = [nn.Linear(fin, fout, bias=not bn)]
    layers += [nn.BatchNorm1d(fout)] if bn else []
    return nn.Sequential(*layers, nn.ReLU(inplace=True))


def _after_strides(n: int, strides: int) -> int:
    for _ in range(strides):  # 3x3, stride 2, padding 1: ceil(n / 2)
        n = (n + 1) // 2
    return n


class Iizuka2016(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        c = lambda n: max(1, round(n * cfg.width))  # noqa: E731
        bn = cfg.batch_norm
        # Table 1, low-level features: stride 2 instead of pooling, shared by both branches
        self.low = nn.Sequential(
            _conv(1, c(64), 2, bn=bn), _conv(c(64), c(128), bn=bn),
            _conv(c(128), c(128), 2, bn=bn), _conv(c(128), c(256), bn=bn),
            _conv(c(256), c(256), 2, bn=bn), _conv(c(256), c(512), bn=bn),
        )
        self.mid = nn.Sequential(_conv(c(512), c(512), bn=bn), _conv(c(512), c(256), bn=bn))
        if cfg.use_global:
            g = _after_strides(cfg.global_size, 5)  # 7 at 224
            self.global_conv = nn.Sequential(
                _conv(c(512), c(512), 2, bn=bn), _conv(c(512), c(512), bn=bn),
                _conv(c(512), c(512), 2, bn=bn), _conv(c(512), c(512), bn=bn),
            )
            self.global_fc = nn.Sequential(
                _fc(c(512) * g * g, c(1024), bn), _fc(c(1024), c(512), bn), _fc(c(512), c(256), bn),
            )
            # Eq. 5: W is 256 x 512 over [global; mid], i.e. a 1x1 conv after tiling
            self.fusion = _conv(c(256) + c(256), c(256), k=1, bn=bn)
            # BN on the hidden classification layer is not given in the paper; we keep it "throughout"
            self.classifier = nn.Sequential(_fc(c(512), c(256), bn), nn.Linear(c(256), cfg.n_classes))
        else:
            self.fusion = _conv(c(256), c(256), bn=bn)  # sec. 4 baseline: a 3x3 conv in place of fusion
        n_out = 3 if cfg.out_space == "rgb" else 2
        self.colorization = nn.Sequential(
            _conv(c(256), c(128), bn=bn), nn.Upsample(scale_factor=2, mode="nearest"),
            _conv(c(128), c(64), bn=bn), _conv(c(64), c(64), bn=bn), nn.Upsample(scale_factor=2, mode="nearest"),
            _conv(c(64), c(32), bn=bn),
            # whether the output layer has BN is not given in the paper: none, the sigmoid sees the conv
            nn.Conv2d(c(32), n_out, 3, padding=1), nn.Sigmoid(),
        )

    def _global(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global branch on low-level features of the global_size rescale -> (256-d, 512-d)."""
        x = self.global_conv(low)  # (B, 512, G/32, G/32)
        x = torch.flatten(x, 1)  # (B, 512 * G/32 * G/32)
        x512 = self.global_fc[1](self.global_fc[0](x))  # (B, 512)
        return self.global_fc[2](x512), x512  # (B, 256), (B, 512)

    def _global_input(self, gray: torch.Tensor) -> torch.Tensor:
        g = self.cfg.global_size
        if tuple(gray.shape[-2:]) == (g, g):
            return gray
        # antialiased resize has no bfloat16 kernel on CPU: resize in float32
        return color.to_working(gray, (g, g))  # (B, 1, g, g)

    def forward(self, gray: torch.Tensor, global_gray: torch.Tensor | None = None):
        """gray (B, 1, H, W) in [0, 1] -> (chroma in [0, 1] (B, 2|3, H/2, W/2), class logits (B, N) | None).

        The global branch sees `global_gray` (default: `gray`) rescaled to
        global_size; when that is `gray` itself at global_size the low-level
        features are computed once and shared (the paper's training setup).
        """
        low = self.low(gray - self.cfg.input_mean)  # (B, 512, H/8, W/8)
        mid = self.mid(low)  # (B, 256, H/8, W/8)
        logits = None
        if self.cfg.use_global:
            g_in = self._global_input(gray if global_gray is None else global_gray)  # (B' = B or 1, 1, G, G)
            g_low = low if g_in is gray else self.low(g_in - self.cfg.input_mean)  # (B', 512, G/8, G/8)
            g256, g512 = self._global(g_low)  # (B', 256), (B', 512)
            logits = self.classifier(g512)  # (B', n_classes)
            tiled = g256[:, :, None, None].expand(mid.shape[0], -1, *mid.shape[-2:])  # (B, 256, H/8, W/8)
            mid = torch.cat((tiled, mid), dim=1)  # (B, 512, H/8, W/8)
        fused = self.fusion(mid)  # (B, 256, H/8, W/8)
        out = self.colorization(fused)  # (B, 2|3, H/2, W/2)
        return out, logits

    # --- the model protocol (colorlab.models) ----------------------------------
    def _target(self, rgb: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        """Ground-truth output in [0, 1]: ab (lab), uv (yuv) or rgb, all normalised as sec. 4.8."""
        if self.cfg.out_space == "lab":
            return color.iizuka_ab_to_unit(lab[:, 1:])
        if self.cfg.out_space == "yuv":
            return color.yuv_uv_to_unit(color.rgb_to_yuv(rgb)[:, 1:])
        return rgb

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 6 of Iizuka et al. 2016: colour MSE (the absolute error with `color_loss="l1"`, an option of ours)
        + alpha * cross-entropy of the scene label.

        The colour target is the ground truth resized (area average) to the
        H/2 x W/2 output. Labels -1 carry no class loss; with alpha = 0 or the
        baseline the class term is skipped. The class loss reaches only the
        classification, global and low-level networks (sec. 3.3), by construction.
        """
        rgb = batch["rgb"]
        with torch.autocast(rgb.device.type, enabled=False):  # colour maths in float32 even under bf16 training
            lab = color.rgb_to_lab(rgb.float())  # (B, 3, H, W), once: the gray input is its L
            gray, target = color.L_to_gray(lab[:, :1]), self._target(rgb.float(), lab)
        out, logits = self(gray)
        target = F.interpolate(target, size=out.shape[-2:], mode="area")
        color_loss = COLOR_LOSSES[self.cfg.color_loss](out.float(), target.float())
        class_loss = color_loss.new_zeros(())
        labels = batch.get("label")
        if logits is not None and self.cfg.alpha > 0 and labels is not None and bool((labels >= 0).any()):
            if int(labels.max()) >= self.cfg.n_classes:
                raise ValueError(f"label {int(labels.max())} out of range for n_classes={self.cfg.n_classes}")
            class_loss = F.cross_entropy(logits.float(), labels, ignore_index=-1)
        total = color_loss + self.cfg.alpha * class_loss
        return total, {"color": color_loss.item(), "class": class_loss.item(), "total": total.item()}

    @torch.no_grad()
    def colorize(self, gray: torch.Tensor, global_from: torch.Tensor | None = None) -> torch.Tensor:
        """gray (B, 1, H, W) in [0, 1] at any size -> sRGB (B, 3, H, W) keeping the input lightness.

        The net runs on `gray` resized to the nearest multiple of 8 per side
        (colorize.lua's rule, at least 8); its H/2 x W/2 chroma is upsampled
        bilinearly to H x W and joined with the full-resolution L (lab) or
        Y = gray (yuv; rgb outputs are turned into YUV and Y replaced, sec. 4.8).
        `global_from` (1 or B gray images, any size) supplies the global
        features instead: the style transfer of sec. 4.5.
        """
        if global_from is not None and not self.cfg.use_global:
            raise ValueError("global_from needs the global branch (use_global=True)")
        size = color.working_size(tuple(gray.shape[-2:]), multiple=8)
        net_in = color.to_working(gray, size)  # (B, 1, 8 round(H/8), 8 round(W/8))
        if global_from is not None and global_from.shape[0] not in (1, gray.shape[0]):
            raise ValueError(f"global_from holds {global_from.shape[0]} images for {gray.shape[0]} inputs; give 1 or the same number")
        out, _ = self(net_in, global_from)  # (B, 2 or 3, h/2, w/2)
        out = out.float()
        if self.cfg.out_space == "lab":
            return color.from_working(gray, color.iizuka_unit_to_ab(out), "lab")  # (B, 3, H, W)
        uv = color.yuv_unit_to_uv(out) if self.cfg.out_space == "yuv" else color.rgb_to_yuv(out)[:, 1:]  # (B, 2, h/2, w/2)
        return color.from_working(gray, uv, "yuv")  # (B, 3, H, W)

    @torch.no_grad()
    def classify(self, gray: torch.Tensor) -> torch.Tensor:
        """gray (B, 1, H, W) -> scene logits (B, n_classes) from the global_size rescale."""
        if not self.cfg.use_global:
            raise ValueError("the baseline (use_global=False) has no classification head")
        g_in = self._global_input(gray)
        return self.classifier(self._global(self.low(g_in - self.cfg.input_mean))[1])


def build(cfg: Config) -> Iizuka2016:
    return Iizuka2016(cfg)


def fold_batchnorm(model: Iizuka2016) -> Iizuka2016:
    """A copy in eval mode whose convs and linears absorb their BN's running statistics.

    Same outputs as `model.eval()` (to float rounding), fewer kernels per layer.
    """
    folded = copy.deepcopy(model).eval()
    for seq in folded.modules():
        if not isinstance(seq, nn.Sequential) or len(seq) < 2:
            continue
        layer, bn = seq[0], seq[1]
        if isinstance(layer, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            seq[0] = fuse_conv_bn_eval(layer, bn)
        elif isinstance(layer, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
            seq[0] = fuse_linear_bn_eval(layer, bn)
        else:
            continue
        seq[1] = nn.Identity()
    return folded


def count_parameters(model: Iizuka2016) -> dict[str, int]:
    """Trainable parameters per sub-network of Table 1 (BN scale and shift included)."""
    groups = {
        "low": [model.low],
        "global": [getattr(model, "global_conv", None), getattr(model, "global_fc", None)],
        "mid": [model.mid],
        "fusion": [model.fusion],
        "colorization": [model.colorization],
        "classification": [getattr(model, "classifier", None)],
    }
    counts = {k: sum(p.numel() for m in ms if m is not None for p in m.parameters()) for k, ms in groups.items()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
