"""`colorlab bench`: how fast the networks run here, and how close to the machine's ceiling.

    colorlab bench --out results/bench.json [--quick] [--only NAME ...] [--checkpoint FILE]

Every benchmark is a function in `BENCHES` (name -> fn(Options) -> JSON-able dict;
`register(name)` adds one), plus each experiment's `benchmark(...)` as bench `<model
name>`, called with whichever of `quick`, `sizes`, `preset`, `repeats` it takes.

What is measured (the Iizuka et al. 2016 net, Table 3 of the paper):
- `matmul`, `conv`: the ceilings, GFLOP/s of a square torch.mm and of one 3x3 conv.
- `iizuka2016_inference`: seconds per image (median of N after a warm-up) at
  224..2048 for the paper-size net with random weights, BatchNorm folded,
  eval mode, `torch.inference_mode`. At 512 every variant is timed (fp32 /
  bf16 autocast x contiguous / channels_last x eager / `torch.jit.trace` +
  `freeze`); the fastest per dtype is used at every size. bf16 variants keep
  their weights in bf16 (autocast would cast them on every call; the result is
  bit-identical, the casts are saved). FLOPs are counted
  from the conv and linear shapes (2 Cin Cout k k Hout Wout, on a meta-device
  copy), so GFLOP/s = FLOPs / seconds.
- `iizuka2016_train`, `koalarization2017_train`: training images/s and GFLOP/s
  of the `cpu` presets (forward, backward, the preset's optimizer), contiguous and
  channels_last (`colorlab.training_speed`); `training_vs_ceilings` gives each as a
  fraction of the conv and matmul ceilings of the same run.
- `thread_layout`: one training process on all threads against one per core, side by side.
- `iizuka2016_train_compiled` (only with `--only`: compiling takes about a minute): Iizuka's
  training step under `torch.compile` against eager, with the compile time and the steps it
  takes to pay for itself.
- bf16 only where the CPU computes it natively (`dtypes()`); elsewhere the JSON says it was skipped.
- `iizuka2016_bf16_quality`: PSNR on Kodak24 of bf16 vs fp32 inference, with
  `--checkpoint`, else the newest finished iizuka2016 run, else random weights
  (flagged: a quality number needs trained weights).

The machine may be shared: load averages before and after are recorded,
medians and minima of wall time are both kept, and so is the process CPU time
(`cpu_s`; GFLOP per CPU second is the per-core efficiency, which other
people's jobs disturb far less than wall time). Results are written atomically.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import inspect
import json
import os
import platform
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from colorlab import machine as colorlab_machine
from colorlab import atomic, color, models, settings, training_speed
from colorlab.measure import EMULATED_BF16, count_flops, dtypes, timed  # noqa: F401 (bench.timed, ...)

TARGET_512_S = 0.15  # the target for one 512 x 512 image on 2 cores (paper: 1.676 s, 8-core i7)
PAPER_CPU_S = {224: 0.399, 512: 1.676, 1024: 5.629, 2048: 20.116}  # Table 3, 8-core i7-5960X


@dataclass
class Options:
    quick: bool = False  # tiny sizes and the smoke preset: checks the plumbing in seconds
    checkpoint: Path | None = None  # trained Iizuka weights for the bf16 quality check
    threads: int | None = None  # None = physical cores
    sizes: tuple[int, ...] | None = None  # inference sizes; None = 224, 512, 1024, 2048 (quick: 32, 64)


BENCHES: dict[str, Callable[[Options], dict]] = {}
ON_REQUEST: set[str] = set()  # benches that run only when named (`--only`): too slow for `make bench`


def register(name: str, on_request: bool = False):
    def add(fn: Callable[[Options], dict]) -> Callable[[Options], dict]:
        BENCHES[name] = fn
        if on_request:
            ON_REQUEST.add(name)
        return fn
    return add


def _autocast(dtype: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")


def machine() -> dict:
    """`colorlab.machine.describe()`: CPU model, ISA, cores, threads, torch."""
    return colorlab_machine.describe()


# --- benches -------------------------------------------------------------------------
@register("matmul")
def bench_matmul(opts: Options) -> dict:
    """The ceiling: GFLOP/s of one n x n x n torch.mm (2 n^3 FLOPs) per dtype."""
    n = 512 if opts.quick else 4096
    out = {"n": n, **({} if "bf16" in dtypes() else {"bf16": EMULATED_BF16})}
    for dtype in dtypes():
        a = torch.rand(n, n, dtype=torch.float32 if dtype == "fp32" else torch.bfloat16)
        t = timed(lambda: torch.mm(a, a), repeats=3 if opts.quick else 7)
        gflop = 2 * n**3 / 1e9
        out[dtype] = {**t, "gflops": gflop / t["median_s"], "gflops_best": gflop / t["min_s"],
                      "gflops_per_cpu_s": gflop / max(t["cpu_s"], 1e-9)}
    return out


@register("conv")
def bench_conv(opts: Options) -> dict:
    """The convolution ceiling: GFLOP/s of one 3x3 conv at the cpu presets' scale (64 -> 64 channels,
    64 x 64, batch 32), forward alone and forward + backward (3x the forward FLOPs), per dtype."""
    b, c, size = (4, 16, 16) if opts.quick else (32, 64, 64)
    flop = 2 * c * c * 9 * size * size * b / 1e9
    out = {"batch": b, "channels": c, "size": size, **({} if "bf16" in dtypes() else {"bf16": EMULATED_BF16})}
    for dtype in dtypes():
        torch.manual_seed(0)
        conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        x = torch.rand(b, c, size, size, requires_grad=True)

        def forward():
            with torch.no_grad(), _autocast(dtype):
                conv(x)

        def train_step():
            with _autocast(dtype):
                y = conv(x)
            y.float().sum().backward()

        fwd, both = timed(forward, 3 if opts.quick else 10), timed(train_step, 3 if opts.quick else 10)
        out[dtype] = {"forward": {**fwd, "gflops": flop / fwd["median_s"]},
                      "forward_backward": {**both, "gflops": 3 * flop / both["median_s"]}}
    return out


def _variant(net: nn.Module, gray: torch.Tensor, dtype: str, layout: str, mode: str):
    """A callable running `net` on `gray` the given way; returns (fn, setup seconds)."""
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    net = copy.deepcopy(net).to(memory_format=fmt)
    if dtype == "bf16":  # the weight casts autocast would redo on every call, done once: same numbers
        net = net.to(torch.bfloat16)
    x = gray.contiguous(memory_format=fmt)
    start = time.perf_counter()
    if mode == "jit":
        with torch.inference_mode(), _autocast(dtype), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the trace specialises on the input size, which is what we time
            net = torch.jit.freeze(torch.jit.trace(net, x, check_trace=False))
            net(x)

    def fn():
        with torch.inference_mode(), _autocast(dtype):
            return net(x)[0]

    return fn, time.perf_counter() - start


@register("iizuka2016_inference")
def bench_iizuka_inference(opts: Options) -> dict:
    from colorlab.models import iizuka2016 as iz

    preset = "smoke" if opts.quick else "paper"
    sizes = tuple(opts.sizes or ((32, 64) if opts.quick else (224, 512, 1024, 2048)))
    pick_at = 512 if 512 in sizes else sizes[-1]  # where the variants are compared
    repeats = lambda s: 2 if opts.quick else 10 if s <= 256 else 7 if s <= 512 else 3  # noqa: E731
    net = iz.fold_batchnorm(iz.build(iz.PRESETS[preset]))
    torch.manual_seed(0)
    gray = {s: torch.rand(1, 1, s, s) for s in sizes}
    out = {"model": "iizuka2016", "preset": preset, "weights": "random", "batch_norm": "folded",
           "target_512_s": TARGET_512_S, "paper_table3_i7_s": {str(k): v for k, v in PAPER_CPU_S.items()},
           "gflop": {str(s): count_flops(net, gray[s]) / 1e9 for s in sizes}, "variants": {}, "best": {}, "sizes": {}}
    with torch.inference_mode():
        ref = net(gray[pick_at])[0].float()
    if "bf16" not in dtypes():
        out["bf16"] = EMULATED_BF16
    for dtype in dtypes():
        for layout in ("contiguous", "channels_last"):
            for mode in ("eager",) if opts.quick else ("eager", "jit"):
                fn, setup = _variant(net, gray[pick_at], dtype, layout, mode)
                t = timed(fn, repeats(pick_at))
                err = float((fn().float() - ref).abs().max())
                out["variants"][f"{dtype}/{layout}/{mode}"] = {**t, "setup_s": setup, "max_abs_diff_vs_fp32": err}
        mine = {k: v for k, v in out["variants"].items() if k.startswith(dtype)}
        out["best"][dtype] = min(mine, key=lambda k: mine[k]["median_s"])
    for dtype in dtypes():
        _, layout, mode = out["best"][dtype].split("/")
        for s in sizes:
            if s == pick_at:
                t = out["variants"][out["best"][dtype]]
            else:
                t = timed(_variant(net, gray[s], dtype, layout, mode)[0], repeats(s))
            gflop = out["gflop"][str(s)]
            out["sizes"].setdefault(str(s), {})[dtype] = {**t, "gflops": gflop / t["median_s"],
                                                          "gflops_best": gflop / t["min_s"],
                                                          "gflops_per_cpu_s": gflop / max(t["cpu_s"], 1e-9)}
    # what a user waits for: the whole colorize (resize, net, Lab join) at 512, eager
    s = pick_at
    _, layout, _ = out["best"][dtypes()[-1]].split("/")
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    for dtype in dtypes():
        full = copy.deepcopy(net).to(memory_format=fmt, dtype=torch.bfloat16 if dtype == "bf16" else torch.float32)
        with _autocast(dtype):
            out["sizes"][str(s)][f"colorize_end_to_end_{dtype}_eager"] = timed(lambda: full.colorize(gray[s]), repeats(s))
    best512 = min(out["sizes"][str(pick_at)][d]["median_s"] for d in dtypes())
    out["meets_target_512"] = bool(not opts.quick and pick_at == 512 and best512 <= TARGET_512_S)
    return out


@register("iizuka2016_train")
def bench_iizuka_train(opts: Options) -> dict:
    return training_speed.step_bench("iizuka2016", opts.quick)


@register("koalarization2017_train")
def bench_koalarization_train(opts: Options) -> dict:
    return training_speed.step_bench("koalarization2017", opts.quick)


@register("iizuka2016_train_compiled", on_request=True)
def bench_iizuka_train_compiled(opts: Options) -> dict:
    return training_speed.compiled_step("iizuka2016", opts.quick)


@register("thread_layout")
def bench_thread_layout(opts: Options) -> dict:
    """Iizuka's cpu preset on all threads against one process per core side by side (`budget.train`)."""
    return training_speed.thread_layout("iizuka2016", opts.quick, processes=max(2, colorlab_machine.physical_cores()))


def ceiling_fractions(results: dict) -> dict:
    """Each training bench's GFLOP/s as a fraction of the conv (forward + backward) and matmul ceilings
    measured in the same run, per dtype: how much of the machine a training step uses."""
    conv, mm = results.get("conv", {}), results.get("matmul", {})
    out = {}
    for name, res in results.items():
        if not name.endswith("_train"):
            continue
        for dtype in ("fp32", "bf16"):
            if not isinstance(res.get(dtype), dict):
                continue
            c = conv.get(dtype, {}).get("forward_backward", {}).get("gflops") if isinstance(conv.get(dtype), dict) else None
            m = mm.get(dtype, {}).get("gflops") if isinstance(mm.get(dtype), dict) else None
            g = res[dtype]["gflops"]
            out[f"{name}/{dtype}"] = {"gflops": g, "images_per_s": res[dtype]["images_per_s"],
                                      "of_conv_ceiling": g / c if c else None, "of_matmul_ceiling": g / m if m else None}
    return out


def _quality_model(opts: Options):
    from colorlab.colorize import load_model
    from colorlab.models import iizuka2016 as iz

    if opts.checkpoint is not None:
        return load_model("iizuka2016", checkpoint=opts.checkpoint), f"checkpoint {opts.checkpoint}"
    if not opts.quick:
        from colorlab import runs

        finished = runs.find_runs("iizuka2016")
        if finished:
            return iz.fold_batchnorm(finished[-1].model), f"run {finished[-1].key[:12]}"
    return iz.fold_batchnorm(iz.build(iz.PRESETS["smoke" if opts.quick else "paper"])), "random"


@register("iizuka2016_bf16_quality")
def bench_iizuka_bf16_quality(opts: Options) -> dict:
    """Mean PSNR on Kodak24 of fp32 and bf16-autocast inference, and of bf16 against fp32."""
    from colorlab import data, metrics

    try:
        samples = data.samples("kodak24", "all")
    except data.DatasetMissingError as err:
        return {"skipped": f"Kodak24 not found: {err}"}
    samples = samples[:2] if opts.quick else samples
    model, weights = _quality_model(opts)
    rows = []
    for s in samples:
        truth = data.read_rgb(s.path)
        gray = color.rgb_to_gray(color.to_float(truth))
        with torch.inference_mode():
            fp32 = color.to_uint8(model.colorize(gray))[0]
            with _autocast("bf16"):
                bf16 = color.to_uint8(model.colorize(gray))[0]
        rows.append((metrics.psnr(fp32, truth), metrics.psnr(bf16, truth), metrics.psnr(bf16, fp32)))
    psnr_fp32, psnr_bf16, agree = (float(np.mean(c)) for c in zip(*rows))
    out = {"images": len(rows), "weights": weights, "psnr_fp32_db": psnr_fp32, "psnr_bf16_db": psnr_bf16,
           "delta_db": psnr_bf16 - psnr_fp32, "psnr_bf16_vs_fp32_db": agree}
    if weights == "random":
        out["note"] = "needs trained weights: with random weights the delta says nothing about quality"
    return out


def _model_benches() -> dict[str, Callable[[Options], dict]]:
    """Each experiment's `benchmark` (`protocol.ExperimentModule`), other than Iizuka's, which lives here."""
    from colorlab import experiments

    found = {}
    for name in experiments.MODULES:
        if name == "iizuka2016":
            continue
        try:
            fn = experiments.module(name).benchmark
        except Exception as err:  # noqa: BLE001 - a model that does not import is reported, not fatal
            fn = _failing(err)
        found[name] = _calling(fn)
    return found


def _failing(err: Exception) -> Callable:
    def fn(**_):
        raise err
    return fn


def _calling(fn: Callable) -> Callable[[Options], dict]:
    params = inspect.signature(fn).parameters

    def bench(opts: Options) -> dict:
        quick = {"quick": True, "sizes": (32, 64), "preset": "smoke", "repeats": 2}
        return fn(**{k: v for k, v in quick.items() if k in params}) if opts.quick else fn(
            **({"quick": False} if "quick" in params else {}))

    return bench


# --- running -------------------------------------------------------------------------
def run_benches(opts: Options, only: list[str] | None = None, progress: Callable[[str], None] | None = print) -> dict:
    """Run the chosen benches (all by default) into one JSON-able dict; a failing bench records its error."""
    available = {**BENCHES, **_model_benches()}
    unknown = sorted(set(only or ()) - set(available))
    if unknown:
        raise KeyError(f"unknown bench {unknown}; choose from {sorted(available)}")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(opts.threads or colorlab_machine.physical_cores())
    try:
        return _run(opts, only or [n for n in available if n not in ON_REQUEST], available, progress)
    finally:
        torch.set_num_threads(threads_before)


def _run(opts: Options, names: list[str], available: dict, progress) -> dict:
    out = {"created": _dt.datetime.now().isoformat(timespec="seconds"), "quick": opts.quick, "machine": machine(),
           "load_average_before": list(os.getloadavg()), "results": {}}
    for name in names:
        if progress:
            progress(f"bench {name} ...")
        start = time.perf_counter()
        try:
            result = available[name](opts)
        except Exception as err:  # noqa: BLE001 - one broken bench must not lose the others' numbers
            result = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=5)}
        result["bench_seconds"] = time.perf_counter() - start
        out["results"][name] = result
    out["load_average_after"] = list(os.getloadavg())
    out["training_vs_ceilings"] = ceiling_fractions(out["results"])
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: results/bench.json)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and networks: check that it runs")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this bench (repeatable)")
    parser.add_argument("--checkpoint", type=Path, help="trained iizuka2016 weights for the bf16 quality check")
    parser.add_argument("--threads", type=int, help="torch threads (default: physical cores)")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="N", help="inference sizes (default 224 512 1024 2048)")


def run(args: argparse.Namespace) -> int:
    out_path = args.out or settings.results_dir() / "bench.json"
    opts = Options(quick=args.quick, checkpoint=args.checkpoint, threads=args.threads,
                   sizes=tuple(args.sizes) if args.sizes else None)
    try:
        result = run_benches(opts, args.only, progress=lambda m: print(m, file=sys.stderr))
    except KeyError as err:
        print(f"colorlab bench: {err.args[0]}", file=sys.stderr)
        return 2
    atomic.write_text(Path(out_path), json.dumps(result, indent=2, sort_keys=True) + "\n")
    failed = [k for k, v in result["results"].items() if "error" in v]
    print(f"wrote {out_path}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
