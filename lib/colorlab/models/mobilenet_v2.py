"""The pretrained ImageNet classifier, offline: MobileNetV2 1.0 converted from TFLite.

Baldassarre et al. 2017 fuse the 1001-d output of Inception-ResNet-v2; its
weights cannot be had offline here, so colorlab uses MobileNetV2 1.0 / 224
(same 1001 outputs, index 0 = background, ImageNet classes 1..1000 in sorted
wnid order), shipped as a uint8-quantised TensorFlow Lite model. `convert`
reads that flatbuffer with the `tflite` schema package and dequantises every
weight, (q - zero_point) * scale, and every int32 bias, q * (input_scale *
weight_scale), into a `MobileNetV2` module that runs on batches, on any
device. Converted weights are cached under `cache_dir()/classifiers/`, keyed
by the TFLite file's SHA-256.

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

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from colorlab import color, settings

DATASET = "mobilenet_v2"  # folder under settings.data_dir(), registered in colorlab.data
TFLITE_NAME = "mobilenet_v2_1.0_224_quant.tflite"
LABELS_NAME = "imagenet_labels.txt"
INPUT_SIZE = 224
NUM_CLASSES = 1001  # index 0 = background
EVAL_CROP = 0.875  # TF-slim inception_preprocessing central_fraction for evaluation
CONVERSION_VERSION = 1  # part of the weight-cache key: bump when `convert` changes
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
def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding of one axis: (before, after), the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding (asymmetric at stride 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward_same(x, self.weight, self.bias)

    def _conv_forward_same(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if (top, left) != (bottom, right):  # the odd pixel after: an explicit pad, the symmetric part in conv2d
            x = F.pad(x, (0, right - left, 0, bottom - top))
        return F.conv2d(x, weight, bias, self.stride, (top, left), groups=self.groups)


class Grid(nn.Module):
    """A TFLite tensor's 8-bit grid, real = scale * (q - zero) with q in 0..255."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.zeros(()))  # 0 = unknown (a random model)
        self.register_buffer("zero", torch.zeros(()))

    def requant(self, acc: torch.Tensor, multiplier: torch.Tensor, relu6: bool = False) -> torch.Tensor:
        """Integer accumulator -> this grid's q - zero, as the interpreter rounds (all float32, exact integers).

        XNNPACK's "fp32" requantisation: one float32 multiplication, round half
        to even, then the fused activation's clamp in the integer domain.
        """
        lo = (self.zero if relu6 else 0) - self.zero
        hi = (torch.clamp(self.zero + torch.round(6 / self.scale), max=255) if relu6 else 255) - self.zero
        return acc.mul_(multiplier).round_().clamp_(min=lo, max=hi)  # in place: 3 passes over the tensor


class QuantConv2d(SameConv2d):
    """One TFLite CONV_2D / DEPTHWISE_CONV_2D: float weights, plus the scales that make them integers again."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, relu6: bool = True):
        super().__init__(cin, cout, k, stride=stride, groups=groups, bias=True)  # BN folded into the bias
        self.relu6 = relu6
        self.register_buffer("weight_scale", torch.zeros(()))  # () per tensor, (cout,) per channel
        self.register_buffer("bias_scale", torch.zeros(()))
        self.register_buffer("weight_int", None, persistent=False)  # set by `integerize`
        self.register_buffer("bias_int", None, persistent=False)
        self.out = Grid()

    @torch.no_grad()
    def integerize(self) -> None:
        """Recover the file's integers from the float weights (exact: q - zero = weight / scale, rounded)."""
        ws = self.weight_scale.reshape(-1, 1, 1, 1) if self.weight_scale.ndim else self.weight_scale
        self.weight_int = torch.round(self.weight / ws)  # (Cout, Cin/groups, k, k)
        self.bias_int = torch.round(self.bias / self.bias_scale)  # (Cout,) the int32 bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return F.relu6(y, inplace=True) if self.relu6 else y

    def forward_int(self, x: torch.Tensor, in_scale: torch.Tensor, dequantize: bool = False) -> torch.Tensor:
        """x = q - zero of the input grid -> q - zero of `self.out` (or the real values when `dequantize`).

        Integer weights and inputs make the float32 convolution exact (every
        partial sum is an integer below 2^24), so only the requantisation rounds.
        """
        acc = self._conv_forward_same(x, self.weight_int, self.bias_int)  # (B, Cout, H', W') integers
        real = (in_scale * self.weight_scale).reshape(1, -1, 1, 1) if self.weight_scale.ndim else in_scale * self.weight_scale
        if dequantize:
            return acc * real
        return self.out.requant(acc, real / self.out.scale, self.relu6)


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


def add_multipliers(a_scale: float, b_scale: float, out_scale: float) -> tuple[int, int, int]:
    """XNNPACK's fixed-point ADD parameters (xnn_init_qu8_add_minmax_scalar_params): multipliers, shift."""
    a, b = np.float32(a_scale) / np.float32(out_scale), np.float32(b_scale) / np.float32(out_scale)
    exponent = int(np.array(max(a, b), dtype=np.float32).view(np.uint32)) >> 23
    shift = 20 - (exponent - 127)  # the larger multiplier gets 20 bits
    return int(np.rint(a * np.float32(2.0**shift))), int(np.rint(b * np.float32(2.0**shift))), shift


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


# --- Locating and reading the TFLite file ---------------------------------------
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


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _tensor_array(model, graph, index: int) -> np.ndarray:
    """Dequantised float32 contents of a constant tensor (per-tensor or per-channel)."""
    import tflite

    t = graph.Tensors(index)
    dtypes = {tflite.TensorType.UINT8: np.uint8, tflite.TensorType.INT8: np.int8,
              tflite.TensorType.INT32: np.int32, tflite.TensorType.FLOAT32: np.float32}
    if t.Type() not in dtypes:
        raise ValueError(f"tensor {t.Name().decode()!r}: unsupported type {t.Type()}")
    raw = model.Buffers(t.Buffer()).DataAsNumpy()
    q = np.frombuffer(raw.tobytes(), dtype=dtypes[t.Type()]).reshape(t.ShapeAsNumpy())
    if t.Type() == tflite.TensorType.FLOAT32:
        return q.astype(np.float32)
    quant = t.Quantization()
    scale, zero = quant.ScaleAsNumpy().astype(np.float64), quant.ZeroPointAsNumpy().astype(np.float64)
    if scale.size > 1:  # per-channel: broadcast along the quantised axis
        shape = [1] * q.ndim
        shape[quant.QuantizedDimension()] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q.astype(np.float64) - zero) * scale).astype(np.float32)


def _grid_of(graph, index: int) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantised tensor; (0, 0) when it is float."""
    quant = graph.Tensors(index).Quantization()
    if quant is None or quant.ScaleLength() != 1:
        return 0.0, 0
    return float(quant.ScaleAsNumpy()[0]), int(quant.ZeroPointAsNumpy()[0])


def _scale_of(graph, index: int) -> torch.Tensor:
    """A constant tensor's scale: () per tensor, (C,) per channel."""
    scale = graph.Tensors(index).Quantization().ScaleAsNumpy().astype(np.float32)
    return torch.from_numpy(scale.reshape(()) if scale.size == 1 else scale)


def read_tflite(path: Path) -> dict:
    """The operators of a TFLite file that `MobileNetV2` mirrors, in order, with float weights.

    Returns {"ops": [...], "input_grid": (scale, zero), "counts": {op type: n}}. Each op:
    {"kind", "grid": its output's (scale, zero)} and, for CONV_2D / DEPTHWISE_CONV_2D,
    "weight" (torch layout OIHW), "bias", their scales, "stride", "padding", "activation".
    """
    import tflite

    path = Path(path)
    try:
        model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
        graph = model.Subgraphs(0)
    except Exception as e:
        raise ValueError(f"{path}: not a readable TFLite flatbuffer ({e})") from e
    op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    act_names = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
    ops, counts = [], {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        counts[name] = counts.get(name, 0) + 1
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D"):
            continue  # RESHAPE and SOFTMAX: the logits are our output
        entry = {"kind": name, "grid": _grid_of(graph, op.OutputsAsNumpy()[0])}
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            opts = tflite.Conv2DOptions() if name == "CONV_2D" else tflite.DepthwiseConv2DOptions()
            table = op.BuiltinOptions()
            opts.Init(table.Bytes, table.Pos)
            inputs = op.InputsAsNumpy()
            w = _tensor_array(model, graph, inputs[1])
            # CONV_2D weights are OHWI, DEPTHWISE_CONV_2D 1HW(C*multiplier); torch wants OIHW / (C,1,H,W)
            w = w.transpose(0, 3, 1, 2) if name == "CONV_2D" else w.transpose(3, 0, 1, 2)
            entry.update(
                weight=torch.from_numpy(np.ascontiguousarray(w)),
                bias=torch.from_numpy(_tensor_array(model, graph, inputs[2])),
                weight_scale=_scale_of(graph, inputs[1]),
                bias_scale=_scale_of(graph, inputs[2]),
                stride=(opts.StrideH(), opts.StrideW()),
                padding="SAME" if opts.Padding() == tflite.Padding.SAME else "VALID",
                activation=act_names.get(opts.FusedActivationFunction(), "?"),
            )
        ops.append(entry)
    return {"ops": ops, "input_grid": _grid_of(graph, graph.InputsAsNumpy()[0]), "counts": counts}


def _set_grid(grid: Grid, scale_zero: tuple[float, int]) -> None:
    grid.scale.fill_(scale_zero[0])
    grid.zero.fill_(scale_zero[1])


def convert(path: Path) -> MobileNetV2:
    """A float `MobileNetV2` with the dequantised weights (and activation grids) of the TFLite file at `path`."""
    graph = read_tflite(path)
    convs = [op for op in graph["ops"] if "weight" in op]
    net = MobileNetV2()
    targets = net.convs()
    counts = graph["counts"]
    residuals = sum(b.residual for b in net.blocks)
    if len(convs) != len(targets) or counts.get("ADD", 0) != residuals or counts.get("AVERAGE_POOL_2D", 0) != 1:
        raise ValueError(
            f"{path}: not a MobileNetV2 1.0 graph ({len(convs)} convolutions, {counts.get('ADD', 0)} ADD; "
            f"expected {len(targets)} and {residuals})"
        )
    with torch.no_grad():
        for i, (src, dst) in enumerate(zip(convs, targets)):
            expected_act = "RELU6" if dst.relu6 else "NONE"
            if src["weight"].shape != dst.weight.shape or src["stride"] != dst.stride or src["padding"] != "SAME" \
                    or src["activation"] != expected_act:
                raise ValueError(
                    f"{path}: convolution {i} ({src['kind']}, weight {tuple(src['weight'].shape)}, stride {src['stride']}, "
                    f"{src['padding']}, {src['activation']}) does not match MobileNetV2 layer {tuple(dst.weight.shape)}, "
                    f"stride {dst.stride}, SAME, {expected_act}"
                )
            dst.weight.copy_(src["weight"])
            dst.bias.copy_(src["bias"])
            dst.weight_scale, dst.bias_scale = src["weight_scale"].clone(), src["bias_scale"].clone()
        # every operator's output has a grid, in the same order (ADD and the pool included)
        for grid, op in zip(net.grids(), graph["ops"], strict=True):
            _set_grid(grid, op["grid"])
        _set_grid(net.input, graph["input_grid"])
    return net


def _cached_state(path: Path) -> tuple[dict, str]:
    """Converted weights from the cache, converting (once) when absent."""
    from colorlab import reports

    digest = sha256(path)
    cache = settings.cache_dir() / "classifiers" / f"mobilenet_v2-{digest[:16]}-v{CONVERSION_VERSION}.pt"
    if cache.is_file():
        return torch.load(cache, map_location="cpu", weights_only=True), digest
    state = convert(path).state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    reports.atomic_write_bytes(cache, buf.getvalue())
    return state, digest


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
        state, digest = _cached_state(path)
        net = MobileNetV2()
        for name, value in state.items():  # per-channel scales: give the buffer the file's shape first
            if name.endswith("_scale") and value.shape != net.get_buffer(name).shape:
                owner, _, attr = name.rpartition(".")
                setattr(net.get_submodule(owner), attr, value.clone())
        net.load_state_dict(state)
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
        digest = sha256(Path(cfg.weights) if cfg.weights else tflite_path())[:16]
        return f"mobilenet_v2-{digest}-v{CONVERSION_VERSION}" + ("-u8" if cfg.uint8_activations else "-float")
    return f"{cfg.name}-{cfg.weights}"


def resolve(name: str = "mobilenet_v2", fallback_random: bool = False) -> ClassifierConfig:
    """`ClassifierConfig(name)`, or the random stand-in when the weights are absent and that is allowed."""
    if name == "mobilenet_v2" and fallback_random and not available():
        return ClassifierConfig("mobilenet_v2_random")
    return ClassifierConfig(name)
