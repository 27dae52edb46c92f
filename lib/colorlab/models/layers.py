"""Layers shared by the networks: TensorFlow's "SAME" convolution and the 8-bit TFLite operators.

`SameConv2d` pads as TF "SAME" does (asymmetric at stride 2, the odd pixel
bottom/right), so networks ported from TensorFlow line up pixel for pixel
(MobileNetV2, Koalarization's encoder). `Grid`, `QuantConv2d` and
`add_multipliers` reproduce the TFLite interpreter's uint8 arithmetic
(XNNPACK's requantisation), for `colorlab.models.mobilenet_v2`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


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



def add_multipliers(a_scale: float, b_scale: float, out_scale: float) -> tuple[int, int, int]:
    """XNNPACK's fixed-point ADD parameters (xnn_init_qu8_add_minmax_scalar_params): multipliers, shift."""
    a, b = np.float32(a_scale) / np.float32(out_scale), np.float32(b_scale) / np.float32(out_scale)
    exponent = int(np.array(max(a, b), dtype=np.float32).view(np.uint32)) >> 23
    shift = 20 - (exponent - 127)  # the larger multiplier gets 20 bits
    return int(np.rint(a * np.float32(2.0**shift))), int(np.rint(b * np.float32(2.0**shift))), shift
