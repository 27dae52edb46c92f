"""Baldassarre, Morin, Rodes-Guirao 2017, "Deep Koalarization" (arXiv 1712.03400), Table 1.

An encoder-decoder on the lightness L, with the 1001-d output of a frozen
ImageNet classifier tiled over the encoder's H/8 x W/8 map and fused by a
1x1 conv (the fusion layer of Iizuka et al. 2016). The paper's classifier is
Inception-ResNet-v2 on the gray image replicated to 3 channels; its weights
are not available offline, so colorlab uses MobileNetV2 1.0 (same 1001
outputs, `colorlab.models.mobilenet_v2`), and records which in the config.

Training reads the embedding from `batch["embedding"]` (precomputed once per
image by `colorlab.embeddings`, on the un-augmented image: see there);
`colorize(gray)` computes it itself, from the photo the encoder sees.
`use_embedding=False` is the ablation: the same network without the classifier.

Sizes: the paper scales every image to 224 x 224 for the encoder (Fig. 1).
`colorize` does the same at `cfg.train_size` (squash, antialiased), upsamples
the predicted ab bilinearly to H x W and joins it with the full-resolution L,
so any input size works and the output keeps the input's lightness exactly.
`colorize(gray, native=True)` instead runs the fully convolutional net at the
input's own resolution, rounded to the nearest multiple of 8 per side (the
encoder halves three times).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from colorlab import color
from colorlab.models import mobilenet_v2
from colorlab.models.layers import SameConv2d

EMBEDDINGS = ("logits", "softmax")
# The loss of sec. 3: the squared error ("mse"), or the absolute error ("l1"), an option of ours that is not in the
# paper (README, "An L1 colour loss").
COLOR_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}


@dataclass
class Config:
    train_size: int = 224  # encoder input 224 x 224, sec. 3.1 / Fig. 1 ("Scaling 224x224")
    width: float = 1.0  # channel multiplier; 1.0 = Table 1
    use_embedding: bool = True  # False = the ablation: no classifier, fusion sees the encoder alone
    # The paper fuses Inception-ResNet-v2 (sec. 3.1); not available offline: MobileNetV2 1.0,
    # or "mobilenet_v2_random" to run the pipeline with no data (see mobilenet_v2.resolve).
    classifier: str = "mobilenet_v2"
    classifier_weights: str | None = None  # None = the data mirror's file
    # The classifier's input side: 299 for Inception-ResNet-v2 in the paper's code; 224 is MobileNetV2's own.
    embed_size: int = 224
    # The official code stores the logits (pre-softmax); whether the paper did is not stated.
    embedding: str = "logits"
    color_loss: str = "mse"  # sec. 3's squared error; "l1" is an option of ours (COLOR_LOSSES)
    # Training: Adam, lr 0.001, batch 100 (official code train.py): colorlab.experiments.koalarization2017.TRAIN.

    def __post_init__(self):
        if self.embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {self.embedding!r}")
        if self.color_loss not in COLOR_LOSSES:
            raise ValueError(f"color_loss must be one of {tuple(COLOR_LOSSES)}, got {self.color_loss!r}")
        if self.width <= 0 or self.train_size < 8 or self.embed_size < 32:
            raise ValueError(f"width must be > 0, train_size >= 8 and embed_size >= 32, got {self}")
        if self.classifier not in mobilenet_v2.NAMES:
            raise ValueError(f"classifier must be one of {mobilenet_v2.NAMES}, got {self.classifier!r}")

    def classifier_config(self) -> mobilenet_v2.ClassifierConfig:
        return mobilenet_v2.ClassifierConfig(self.classifier, self.classifier_weights)


PRESETS = {
    "paper": Config(),
    "gpu": Config(train_size=128),  # MiniPlaces is 128 x 128: the paper's network at the data's size
    # cpu profile: a quarter of the channels at 64 x 64, 0.13 CPU-seconds per training step of 32
    # (one thread, measured). The classifier sees the 64 px photos at 128 x 128, a third of 224's cost: on
    # imagenet-sample photos shrunk to 64 px it gets top-1 38 % there, 44 % at 224 and 19 % at 64 (measured).
    "cpu": Config(train_size=64, width=0.25, embed_size=128),
    "smoke": Config(train_size=32, width=1 / 16, embed_size=64),
}
EMBED_DIM = mobilenet_v2.NUM_CLASSES  # 1001


def _conv(cin: int, cout: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    # TF "same" padding, asymmetric at stride 2, as the official Keras code
    return nn.Sequential(SameConv2d(cin, cout, k, stride=stride), nn.ReLU(inplace=True))


class Koalarization2017(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        c = lambda n: max(1, round(n * cfg.width))  # noqa: E731
        # Table 1, encoder: 8 convs, three of stride 2 -> H/8 x W/8 x 256
        self.encoder = nn.Sequential(
            _conv(1, c(64), 2), _conv(c(64), c(128)), _conv(c(128), c(128), 2), _conv(c(128), c(256)),
            _conv(c(256), c(256), 2), _conv(c(256), c(512)), _conv(c(512), c(512)), _conv(c(512), c(256)),
        )
        # Table 1, fusion: [embedding tiled; encoder] = 1001 + 256 = 1257 channels -> 1x1 conv 256 + ReLU
        fused_in = c(256) + (EMBED_DIM if cfg.use_embedding else 0)
        self.fusion = _conv(fused_in, c(256), k=1)
        # Table 1, decoder: nearest upsampling, tanh ab
        self.decoder = nn.Sequential(
            _conv(c(256), c(128)), nn.Upsample(scale_factor=2, mode="nearest"),
            _conv(c(128), c(64)), _conv(c(64), c(64)), nn.Upsample(scale_factor=2, mode="nearest"),
            _conv(c(64), c(32)), SameConv2d(c(32), 2, 3), nn.Tanh(), nn.Upsample(scale_factor=2, mode="nearest"),
        )
        self._classifier: list[nn.Module] = []  # loaded on first use; a list keeps it out of state_dict

    # --- the frozen classifier --------------------------------------------------------
    def classifier(self, device: torch.device | None = None) -> nn.Module:
        """The frozen classifier (`cfg.classifier`), loaded once, on `device`."""
        if not self._classifier:
            self._classifier.append(mobilenet_v2.load(self.cfg.classifier_config()))
        net = self._classifier[0]
        return net.to(device) if device is not None else net

    def set_classifier(self, net: nn.Module) -> None:
        """Use `net` (rgb (B,3,H,W) in [0,1] -> (B,1001)) instead of loading `cfg.classifier`."""
        self._classifier[:] = [net.eval().requires_grad_(False)]

    @torch.no_grad()
    def embed(self, gray: torch.Tensor) -> torch.Tensor:
        """gray (B, 1, H, W) in [0, 1] -> (B, 1001) classifier logits of the gray photo as RGB."""
        return embed_gray(self.classifier(gray.device), gray, self.cfg.embed_size)

    # --- the network ---------------------------------------------------------------
    def forward(self, L_in: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """L_in (B, 1, H, W) in [-1, 1] (`color.koala_L_to_input`), embedding (B, 1001) -> ab/128 (B, 2, H', W').

        H' = 8 ceil(H / 8): the encoder rounds odd sizes up at each stride 2.
        """
        x = self.encoder(L_in)  # (B, 256, H/8, W/8)
        if self.cfg.use_embedding:
            if embedding is None:
                raise ValueError("this model fuses the classifier embedding: pass `embedding` (B, 1001)")
            e = embedding.to(x.dtype)
            e = torch.softmax(e.float(), dim=1).to(x.dtype) if self.cfg.embedding == "softmax" else e  # (B, 1001)
            tiled = e[:, :, None, None].expand(-1, -1, *x.shape[-2:])  # (B, 1001, H/8, W/8)
            x = torch.cat((tiled, x), dim=1)  # (B, 1257, H/8, W/8)
        x = self.fusion(x)  # (B, 256, H/8, W/8)
        return self.decoder(x)  # (B, 2, H, W) in (-1, 1)

    # --- the model protocol (colorlab.models) ----------------------------------------
    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of Baldassarre et al. 2017 (Eq. in sec. 3): 1/(2HW) sum over a, b and pixels of the squared error.

        That is the mean squared error of the tanh output against ab / 128 (`Config.color_loss="l1"`: the mean
        absolute error, an option of ours).
        The embedding comes from `batch["embedding"]`; when absent it is
        computed here from the batch's gray images (slower, same result).
        """
        rgb = batch["rgb"]
        lab = color.rgb_to_lab(rgb)  # (B, 3, H, W)
        emb = None
        if self.cfg.use_embedding:
            emb = batch.get("embedding")
            emb = self.embed(color.L_to_gray(lab[:, :1])) if emb is None else emb  # (B, 1001)
        out = self(color.koala_L_to_input(lab[:, :1]), emb)  # (B, 2, H', W')
        target = color.koala_ab_to_target(lab[:, 1:])  # (B, 2, H, W)
        loss = COLOR_LOSSES[self.cfg.color_loss](out[..., : rgb.shape[-2], : rgb.shape[-1]].float(), target.float())
        return loss, {"color": float(loss.detach())}

    @torch.no_grad()
    def colorize(self, gray: torch.Tensor, native: bool = False) -> torch.Tensor:
        """gray (B, 1, H, W) in [0, 1], any size -> sRGB (B, 3, H, W) with the input's lightness.

        The net sees the gray photo squash-resized to train_size (the paper's
        224 x 224), or with `native` its own size rounded to a multiple of 8; the
        predicted ab is resized bilinearly to H x W and joined with the full-res L.
        The classifier embeds that same resized photo (at `embed_size`). Without
        `native` that is the photo at the training size, as the training embeddings
        are (sec. 3.1: the 224 x 224 image, rescaled for the classifier); with
        `native` it is the photo at its own scale, which training never showed it.
        """
        gray = gray.float()
        hw = tuple(gray.shape[-2:])
        size = color.working_size(hw, multiple=8) if native else color.working_size(hw, square=self.cfg.train_size)
        net_in = color.to_working(gray, size)  # (B, 1, h, w)
        emb = self.embed(net_in) if self.cfg.use_embedding else None  # (B, 1001), of the photo the encoder sees
        dtype = next(self.parameters()).dtype
        out = self(color.koala_L_to_input(color.gray_to_L(net_in)).to(dtype), emb)  # (B, 2, 8 ceil(h/8), ..)
        ab = color.koala_target_to_ab(out[..., : size[0], : size[1]].float())  # (B, 2, h, w)
        return color.from_working(gray, ab, "lab")  # (B, 3, H, W)


@torch.no_grad()
def embed_gray(classifier: nn.Module, gray: torch.Tensor, size: int = mobilenet_v2.INPUT_SIZE) -> torch.Tensor:
    """gray (B, 1, H, W) in [0, 1] -> (B, 1001) logits of the gray photo replicated to RGB, seen at size x size.

    The paper feeds the classifier the gray image stacked three times (sec. 3.1).
    """
    rgb = color.gray_to_rgb(gray.float())  # (B, 3, H, W)
    return classifier(rgb, size=size).float()  # (B, 1001)


def fold_batchnorm(model: Koalarization2017) -> Koalarization2017:
    """The network has no BatchNorm (Table 1): inference uses it as it is."""
    return model


def build(cfg: Config) -> Koalarization2017:
    return Koalarization2017(cfg)


def count_parameters(model: Koalarization2017) -> dict[str, int]:
    """Trainable parameters per block of Table 1 (the frozen classifier excluded)."""
    counts = {k: sum(p.numel() for p in getattr(model, k).parameters()) for k in ("encoder", "fusion", "decoder")}
    counts["total"] = sum(counts.values())
    return counts
