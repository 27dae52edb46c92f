"""The pretrained ImageNet classifier, offline: MobileNetV2 1.0 converted from TFLite.

Baldassarre et al. 2017 fuse the 1001-d output of Inception-ResNet-v2; its
weights cannot be had offline here, so colorlab uses MobileNetV2 1.0 / 224
(same 1001 outputs, index 0 = background, ImageNet classes 1..1000 in sorted
wnid order), shipped as a uint8-quantised TensorFlow Lite model.
`colorlab.models.tflite` reads that flatbuffer with the `tflite` schema package
and dequantises every weight, (q - zero_point) * scale, and every int32 bias,
q * (input_scale * weight_scale), into a `MobileNetV2` module that runs on
batches, on any device. Converted weights are cached under
`cache_dir()/classifiers/`, keyed by the TFLite file's SHA-256 and the code
that converts them (`colorlab.keys`).

Two ways to run the converted network (`ClassifierConfig.uint8_activations`):
- 8-bit (default): the interpreter's own arithmetic. Weights and activations
  are the file's integers (q - zero point), held in float32 tensors, where
  every convolution is exact; each operator's output is requantised to its
  8-bit grid as XNNPACK does (one float32 multiply, round half to even, the
  fused ReLU6 as a clamp). Top-1 agrees with the TFLite interpreter on all of
  imagenet-sample in our test; about 1.5x the float mode's time on a CPU.
- float: the dequantised weights with float activations, the textbook
  network. Small rounding differences compound through 8-bit layers whose
  scales differ by 20x, so it agrees with the interpreter less often
  (measured in `tests/test_mobilenet_v2.py`).

Shared by both:
- Input: the TFLite model takes uint8 RGB with scale 1/128 and zero point 128,
  i.e. x = q / 128 - 1. `forward` takes rgb in [0, 1] with q = 255 * rgb, so an
  8-bit image gives exactly the interpreter's input.
- Padding: TF "SAME" pads asymmetrically at stride 2 (the extra pixel goes
  bottom/right); `SameConv2d` does the same, so feature maps line up.
- Output: the logits before the softmax (TFLite tensor
  "Logits/Conv2d_1c_1x1/BiasAdd"), dequantised and not rounded to that tensor's
  8-bit grid, so ties of the 8-bit output do not hide the ranking.
- Size: 224 x 224. `forward` squash-resizes other sizes (bilinear,
  antialiased); `prepare(rgb, crop=EVAL_CROP)` adds TF-slim's evaluation centre
  crop (87.5 % of each side, then resize), used for ImageNet accuracy.
  Colorization embeddings use the whole frame (no crop): the colorizer colours
  all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from colorlab import color, settings
from colorlab.models import tflite
from colorlab.models.layers import Grid, QuantConv2d, SameConv2d, add_multipliers, same_padding  # noqa: F401 - re-exported

DATASET = "mobilenet_v2"  # folder under settings.data_dir(), registered in colorlab.data
TFLITE_NAME = "mobilenet_v2_1.0_224_quant.tflite"
LABELS_NAME = "imagenet_labels.txt"
INPUT_SIZE = 224
NUM_CLASSES = 1001  # index 0 = background
EVAL_CROP = 0.875  # TF-slim inception_preprocessing central_fraction for evaluation
NAMES = ("mobilenet_v2", "mobilenet_v2_random", "inception_resnet_v2")

# (expansion t, channels c, repeats n, first stride s): Sandler et al. 2018, Table 2
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


@dataclass(frozen=True)
class ClassifierConfig:
    """Which frozen classifier gives the 1001-d embedding.

    name: "mobilenet_v2" (the TFLite model converted here), "mobilenet_v2_random"
    (same architecture, random weights: only for running the pipeline without
    data; its labels mean nothing) or "inception_resnet_v2" (the paper's, sec. 3.1;
    needs `weights` and is not implemented in colorlab: see `load`).
    """

    name: str = "mobilenet_v2"
    weights: str | None = None  # a .tflite file; None = the data mirror's
    seed: int = 0  # for "mobilenet_v2_random"
    # Round activations to the interpreter's 8-bit grids (as the TFLite model computes); False = a plain
    # float network with the dequantised weights. Both measured against the interpreter in the tests.
    uint8_activations: bool = True


# --- Architecture ---------------------------------------------------------------
def _conv(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, relu6: bool = True) -> QuantConv2d:
    return QuantConv2d(cin, cout, k, stride, groups, relu6)


class InvertedResidual(nn.Module):
    """Expand 1x1 + ReLU6, depthwise 3x3 + ReLU6, project 1x1 (linear), skip when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = _conv(cin, mid) if expand != 1 else None
        self.depthwise = _conv(mid, mid, 3, stride, groups=mid)
        self.project = _conv(mid, cout, relu6=False)
        self.residual = stride == 1 and cin == cout
        self.add = Grid()  # the ADD's output grid
        self.add_multipliers = (0, 0, 0)  # set by MobileNetV2.emulate_uint8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x  # (B, t*Cin, H, W)
        y = self.project(self.depthwise(y))  # (B, Cout, H/s, W/s)
        return x + y if self.residual else y

    def forward_int(self, x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, s = x, scale
        if self.expand is not None:
            y, s = self.expand.forward_int(y, s), self.expand.out.scale
        y, s = self.depthwise.forward_int(y, s), self.depthwise.out.scale
        y, s = self.project.forward_int(y, s), self.project.out.scale
        if not self.residual:
            return y, s
        # XNNPACK's uint8 ADD: 20-bit fixed-point multipliers, a right shift that rounds half up (exact in float64)
        a_mul, b_mul, shift = self.add_multipliers
        acc = torch.floor((x.double() * a_mul + y.double() * b_mul + 2.0 ** (shift - 1)) / 2.0**shift)
        return acc.float().clamp_(min=-self.add.zero, max=255 - self.add.zero), self.add.scale


class MobileNetV2(nn.Module):
    """MobileNetV2 1.0 with batch norm folded (as in the TFLite file): rgb in [0, 1] -> 1001 logits.

    Two ways to run it: float (the dequantised weights, float activations) or,
    after `emulate_uint8(True)`, the interpreter's integer arithmetic (every
    activation on its 8-bit grid; needs the grids of a converted file).
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.input = Grid()
        self.stem = _conv(3, 32, 3, 2)
        blocks, cin = [], 32
        for t, c, n, s in BLOCKS:
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv(cin, 1280)
        self.pool = Grid()
        self.logits = _conv(1280, num_classes, relu6=False)
        self.uint8 = False
        self.source = "untrained"  # what the weights are, for printing next to results
        self.pretrained = False

    def forward(self, rgb: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
        """rgb (B, 3, H, W) in [0, 1], squash-resized to size x size (the model's own: 224) -> (B, 1001) logits."""
        x = resize(rgb, size).contiguous(memory_format=torch.channels_last)  # (B, 3, 224, 224), faster on CPU
        if self.uint8:
            cudnn = torch.backends.cudnn
            # TF32 convolutions (a CUDA default) would round the integer sums: keep full float32 here
            with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                             allow_tf32=False):
                return self._forward_uint8(x)
        x = self.stem(x * (255 / 128) - 1)  # (B, 32, 112, 112); input q / 128 - 1 with q = 255 rgb (TFLite's)
        x = self.blocks(x)  # (B, 320, 7, 7)
        x = self.head(x)  # (B, 1280, 7, 7)
        x = x.mean(dim=(2, 3), keepdim=True)  # (B, 1280, 1, 1): AVERAGE_POOL_2D 7x7 VALID
        return self.logits(x).flatten(1)  # (B, 1001)

    def _forward_uint8(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.round(x.float() * 255).clamp_(0, 255).sub_(self.input.zero)  # (B, 3, 224, 224) q - zero
        x, s = self.stem.forward_int(x, self.input.scale), self.stem.out.scale  # (B, 32, 112, 112)
        for block in self.blocks:
            x, s = block.forward_int(x, s)  # (B, 320, 7, 7) after the last
        x, s = self.head.forward_int(x, s), self.head.out.scale  # (B, 1280, 7, 7)
        acc = x.sum(dim=(2, 3), keepdim=True)  # (B, 1280, 1, 1)
        x = self.pool.requant(acc, s / (self.pool.scale * (x.shape[-2] * x.shape[-1])))
        # the logits before their own 8-bit rounding: float, so ties do not hide the ranking
        return self.logits.forward_int(x, self.pool.scale, dequantize=True).flatten(1)  # (B, 1001)

    def convs(self) -> list[QuantConv2d]:
        """The convolutions in TFLite operator order."""
        out = [self.stem]
        for b in self.blocks:
            out += [m for m in (b.expand, b.depthwise, b.project) if m is not None]
        return out + [self.head, self.logits]

    def grids(self) -> list[Grid]:
        """The output grid of each TFLite operator, in operator order (logits included)."""
        out = [self.stem.out]
        for b in self.blocks:
            out += [b.expand.out] if b.expand is not None else []
            out += [b.depthwise.out, b.project.out] + ([b.add] if b.residual else [])
        return out + [self.head.out, self.pool, self.logits.out]

    def emulate_uint8(self, on: bool = True) -> "MobileNetV2":
        """Run as the interpreter does (integer arithmetic, 8-bit activations) or as a float network."""
        if on and float(self.input.scale) == 0:
            raise ValueError("emulate_uint8 needs the quantisation grids of a converted TFLite file")
        if on:
            for conv in self.convs():
                conv.integerize()
            scale = self.stem.out.scale
            for b in self.blocks:  # each ADD's multipliers from its two inputs' grids
                if b.residual:
                    b.add_multipliers = add_multipliers(float(scale), float(b.project.out.scale), float(b.add.scale))
                scale = b.add.scale if b.residual else b.project.out.scale
        self.uint8 = on
        return self

    def describe(self) -> str:
        return f"MobileNetV2 1.0 ({sum(p.numel() for p in self.parameters()) / 1e6:.2f} M parameters): {self.source}"


# --- Preprocessing ----------------------------------------------------------------
def resize(rgb: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Squash-resize (B, C, H, W) to size x size: bilinear, antialiased when shrinking."""
    if tuple(rgb.shape[-2:]) == (size, size):
        return rgb
    return F.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def center_crop(rgb: torch.Tensor, fraction: float) -> torch.Tensor:
    """The central `fraction` of each side, as tf.image.central_crop."""
    h, w = rgb.shape[-2:]
    top, left = int((h - h * fraction) / 2), int((w - w * fraction) / 2)
    return rgb[..., top : h - top, left : w - left]


def prepare(rgb: torch.Tensor, crop: float = EVAL_CROP) -> torch.Tensor:
    """Classification preprocessing: centre crop `crop`, resize to 224 -> (B, 3, 224, 224) in [0, 1]."""
    return resize(center_crop(rgb, crop) if crop < 1 else rgb, INPUT_SIZE).clamp(0, 1)


def prepare_uint8(rgb_u8: np.ndarray, crop: float = EVAL_CROP) -> np.ndarray:
    """`prepare` on uint8 (H, W, 3) -> uint8 (224, 224, 3): the 8-bit image the TFLite model is fed."""
    return color.to_uint8(prepare(color.to_float(rgb_u8), crop))[0]


# --- Locating the TFLite file and loading its weights ---------------------------------------
def tflite_path() -> Path:
    """The TFLite model in the data mirror; a clear error when it is absent."""
    try:
        from colorlab import data

        return Path(data.path(DATASET)) / TFLITE_NAME
    except (ImportError, AttributeError):  # registry without a path() helper
        path = settings.data_dir() / DATASET / TFLITE_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"MobileNetV2 classifier not found: {path} does not exist. It ships in the data mirror "
                f"(set COLORLAB_DATA), or fetch it with `colorlab data fetch {DATASET}`."
            ) from None
        return path


def available() -> bool:
    try:
        return tflite_path().is_file()
    except Exception:  # the registry's missing-dataset error, whatever its class
        return False


def labels() -> list[str]:
    """The 1001 class names (index 0 = background); the first synonym of each."""
    lines = (tflite_path().parent / LABELS_NAME).read_text().splitlines()
    return [line.split(",")[0].strip() for line in lines if line.strip()]


def load(cfg: ClassifierConfig = ClassifierConfig()) -> MobileNetV2:
    """The frozen classifier named by `cfg`, in eval mode, on the CPU."""
    if cfg.name == "inception_resnet_v2":
        raise NotImplementedError(
            "inception_resnet_v2 (the paper's classifier): weights not available here, and colorlab has no "
            "Inception-ResNet-v2 implementation; "
            + (f"{cfg.weights} was given, but " if cfg.weights else "")
            + "use ClassifierConfig(name='mobilenet_v2'), the offline stand-in with the same 1001 outputs."
        )
    if cfg.name == "mobilenet_v2_random":
        net = MobileNetV2()
        gen = torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():
            for conv in net.convs():  # He init, so activations neither vanish nor explode without BN
                fan_in = conv.weight[0].numel()
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
                conv.bias.zero_()
        net.source = f"RANDOMLY INITIALISED (seed {cfg.seed}): no pretrained weights, its labels mean nothing"
    elif cfg.name == "mobilenet_v2":
        path = Path(cfg.weights) if cfg.weights else tflite_path()
        if not path.is_file():
            raise FileNotFoundError(f"MobileNetV2 weights not found: {path}")
        net = MobileNetV2()
        digest = tflite.load_into(net, path)
        net.emulate_uint8(cfg.uint8_activations)
        net.pretrained = True
        net.source = (f"ImageNet weights dequantised from {path.name} (sha256 {digest[:12]}), "
                      f"{'8-bit' if cfg.uint8_activations else 'float'} activations")
    else:
        raise ValueError(f"unknown classifier {cfg.name!r}; choose one of {NAMES}")
    return net.to(memory_format=torch.channels_last).eval().requires_grad_(False)


def identity(cfg: ClassifierConfig) -> str:
    """A string naming the classifier's weights exactly (for cache keys)."""
    if cfg.name == "mobilenet_v2_random":
        return f"mobilenet_v2_random-seed{cfg.seed}"
    if cfg.name == "mobilenet_v2":
        key = tflite.weights_key(Path(cfg.weights) if cfg.weights else tflite_path(), MobileNetV2)[:16]
        return f"mobilenet_v2-{key}" + ("-u8" if cfg.uint8_activations else "-float")
    return f"{cfg.name}-{cfg.weights}"


def resolve(name: str = "mobilenet_v2", fallback_random: bool = False) -> ClassifierConfig:
    """`ClassifierConfig(name)`, or the random stand-in when the weights are absent and that is allowed."""
    if name == "mobilenet_v2" and fallback_random and not available():
        return ClassifierConfig("mobilenet_v2_random")
    return ClassifierConfig(name)
