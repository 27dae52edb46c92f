"""How fast a CNN's cpu preset trains here: images/s and GFLOP/s per dtype and memory layout, and the
thread layout a 2-core sweep should use (one run on every thread, or one run per core).

`colorlab bench` calls these (`iizuka2016_train`, `koalarization2017_train`) and sets their
GFLOP/s beside the conv and matmul ceilings of the same run (`bench.ceiling_fractions`);
`compiled_step` (bench `iizuka2016_train_compiled`, on request) times `torch.compile`.
A step is the preset's forward, backward and optimizer update, straight on the model:
the loop (`colorlab train`) adds batching, validation and checkpoints on top.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import torch

from colorlab import measure, models, train

LAYOUTS = ("contiguous", "channels_last")


def _step(name: str, quick: bool, dtype: str, layout: str, compiled: bool = False):
    """(step function, batch size, GFLOP of one step) of model `name`'s cpu (quick: smoke) preset."""
    from colorlab import experiments

    profile = "smoke" if quick else "cpu"
    cfg = experiments.module(name).default_config(profile)
    if name == "koalarization2017":
        cfg = dataclasses.replace(cfg, classifier="mobilenet_v2_random")  # the embedding comes with the batch
    tcfg = experiments.train_config(name, profile, cfg)
    batch_size, size = (4, cfg.train_size) if quick else (tcfg.batch_size, cfg.train_size)
    module = models.get(name)
    batch = {"rgb": torch.rand(batch_size, 3, size, size), "label": torch.randint(0, 100, (batch_size,))}
    flop_inputs = (torch.rand(1, 1, size, size),)
    if name == "koalarization2017":
        batch["embedding"] = torch.randn(batch_size, 1001)
        flop_inputs += (torch.randn(1, 1001),)
    else:
        batch["label"] %= cfg.n_classes
    gflop = 3 * measure.count_flops(module.build(cfg).eval(), *flop_inputs) * batch_size / 1e9
    torch.manual_seed(0)
    net = module.build(cfg).train()
    if layout == "channels_last":
        net = net.to(memory_format=torch.channels_last)
    if compiled:
        net.compile()  # in place: `training_loss` calls self(...), which is then the compiled module
    opt = train.make_optimizer(net.parameters(), tcfg)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss, _ = net.training_loss(batch)
        loss.backward()
        opt.step()

    return step, batch_size, gflop, tcfg


def _preset_layout(name: str, quick: bool) -> tuple[str, str]:
    """(dtype, layout) of model `name`'s cpu preset on this CPU (quick: fp32)."""
    from colorlab import experiments

    tcfg = experiments.train_config(name, "cpu", experiments.module(name).default_config("cpu"))
    dtype = "bf16" if tcfg.bf16 and "bf16" in measure.dtypes() and not quick else "fp32"
    return dtype, "channels_last" if tcfg.channels_last else "contiguous"


def compiled_step(name: str, quick: bool = False, repeats: int = 10) -> dict:
    """A training step of the preset (its dtype and layout) eager and under `torch.compile` (the
    network compiled in place, forward and backward; the optimizer eager): the steady images/s of
    each, the seconds the first compiled steps took beyond eager ones (compiling), and the steps
    a run needs before compiling pays (None when it does not)."""
    import time

    dtype, layout = _preset_layout(name, quick)
    repeats = 2 if quick else repeats
    step, batch_size, _, _ = _step(name, quick, dtype, layout)
    eager = measure.timed(step, repeats=repeats, warmup=2)
    step_c, _, _, _ = _step(name, quick, dtype, layout, compiled=True)
    start = time.perf_counter()
    for _ in range(2):  # the first calls trace and compile the forward, then the backward
        step_c()
    first = time.perf_counter() - start
    compiled = measure.timed(step_c, repeats=repeats, warmup=1)
    gain = eager["median_s"] - compiled["median_s"]
    compile_s = first - 2 * compiled["median_s"]
    return {"model": name, "dtype": dtype, "layout": layout, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "eager": {**eager, "images_per_s": batch_size / eager["median_s"]},
            "compiled": {**compiled, "images_per_s": batch_size / compiled["median_s"]},
            "speedup": eager["median_s"] / compiled["median_s"], "compile_seconds": compile_s,
            "break_even_steps": compile_s / gain if gain > 0 else None}


def step_bench(name: str, quick: bool = False) -> dict:
    """Images/s and GFLOP/s of a training step, for every dtype this CPU computes natively and both layouts;
    the preset's own layout (`TrainConfig.channels_last`) is reported as the dtype's result."""
    out: dict = {"model": name, "preset": "smoke" if quick else "cpu", "threads": torch.get_num_threads(),
                 **({} if "bf16" in measure.dtypes() else {"bf16": measure.EMULATED_BF16})}
    for dtype in measure.dtypes():
        by_layout = {}
        for layout in LAYOUTS:
            step, batch_size, gflop, tcfg = _step(name, quick, dtype, layout)
            t = measure.timed(step, repeats=2 if quick else 10, warmup=2)
            by_layout[layout] = {**t, "images_per_s": batch_size / t["median_s"], "gflops": gflop / t["median_s"]}
        preset_layout = "channels_last" if tcfg.channels_last else "contiguous"
        out[dtype] = {**by_layout[preset_layout], "layout": preset_layout, "layouts": by_layout}
        out.update(batch_size=batch_size, size=tcfg.crop or tcfg.data_size, optimizer=tcfg.optimizer, gflop_per_step=gflop)
    return out


def _one_thread_rate(name: str, quick: bool, dtype: str, layout: str, seconds: float) -> float:
    """Images/s of steps for about `seconds`, on one thread (run in a pool worker)."""
    import time

    torch.set_num_threads(1)
    step, batch_size, _, _ = _step(name, quick, dtype, layout)
    step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    return n * batch_size / (time.perf_counter() - start)


def thread_layout(name: str, quick: bool = False, processes: int = 2) -> dict:
    """Training images/s of one process on all threads against `processes` processes of one thread
    each, stepping at the same time (the layout of `budget.train(workers=...)`), in the preset's
    dtype and layout. `gain` > 1: independent runs are better trained side by side."""
    dtype, layout = _preset_layout(name, quick)
    seconds = 1.0 if quick else 8.0
    step, batch_size, _, _ = _step(name, quick, dtype, layout)
    together = measure.timed(step, repeats=2 if quick else 10, warmup=2)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        rates = list(pool.map(_one_thread_rate, *zip(*[(name, quick, dtype, layout, seconds)] * processes)))
    one = batch_size / together["median_s"]
    return {"model": name, "dtype": dtype, "layout": layout, "threads": torch.get_num_threads(),
            "one_process_images_per_s": one, "processes": processes, "per_process_images_per_s": rates,
            "side_by_side_images_per_s": sum(rates), "gain": sum(rates) / one}
