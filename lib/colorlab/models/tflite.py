"""Reading MobileNetV2's TFLite flatbuffer, converting it to torch weights, and caching the result.

`read_tflite` lists the operators with dequantised float weights: every uint8
weight (q - zero_point) * scale, every int32 bias q * (input_scale *
weight_scale). `convert` copies them, and every operator's 8-bit output grid,
into a `colorlab.models.mobilenet_v2.MobileNetV2`. `load_into` keeps the
converted state dict under `cache_dir()/classifiers/`, keyed (`colorlab.keys`,
`weights_key`) by the file's SHA-256 and the code of this module and of the
network's, and loads it from there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from colorlab import atomic, keys, settings
from colorlab.models.layers import Grid


sha256 = keys.file_sha256


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


def convert(path: Path, net: nn.Module) -> nn.Module:
    """`net` (a fresh `MobileNetV2`) given the dequantised weights (and activation grids) of the TFLite file at `path`."""
    graph = read_tflite(path)
    convs = [op for op in graph["ops"] if "weight" in op]
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


def weights_key(path: Path, network: type) -> str:
    """The key of `network`'s weights converted from `path`: the file's SHA-256, this module's code and the network's."""
    return keys.key({"tflite_sha256": sha256(path), "network": network.__qualname__}, [__name__, network.__module__])


def cache_path(path: Path, network: type) -> Path:
    stem = network.__module__.rpartition(".")[2]
    return settings.cache_dir() / "classifiers" / f"{stem}-{weights_key(path, network)[:16]}.pt"


def load_into(net: nn.Module, path: Path) -> str:
    """Give `net` the weights of the TFLite file at `path`, converted once and then read from the cache.

    Returns the file's SHA-256.
    """
    cache = cache_path(path, type(net))
    if not cache.is_file():
        atomic.save_torch(convert(path, type(net)()).state_dict(), cache)
    state = torch.load(cache, map_location="cpu", weights_only=True)
    for name, value in state.items():  # per-channel scales: give the buffer the file's shape first
        if name.endswith("_scale") and value.shape != net.get_buffer(name).shape:
            owner, _, attr = name.rpartition(".")
            setattr(net.get_submodule(owner), attr, value.clone())
    net.load_state_dict(state)
    return sha256(path)
