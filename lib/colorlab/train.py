"""One training loop for every network in colorlab, on one process or many (torchrun).

`fit(model, train_arrays, val_arrays, cfg, run_dir)` trains any model that
follows the protocol of `colorlab.models` (`training_loss(batch)`), from
per-sample arrays that are index-aligned:

- `"rgb"` uint8 (N, H, W, 3) becomes float (B, 3, H, W) in [0, 1] once per batch,
  randomly cropped to `cfg.crop` and flipped left-right with p = 0.5 when `cfg.flip`
  (Iizuka et al. 2016 sec. 3.4: 256 x 256 images, random 224 x 224 crops, flips).
  Every other *spatial* array, one shaped (N, H, W, ...) with the H, W of `"rgb"`
  (e.g. per-pixel object maps), gets the same crop and flip as its image.
- `"label"` int64 (N,); any other key passes through as a tensor batch of its own
  dtype (Koalarization's `"embedding"` (N, 1001), Cheng's `"x"` / `"uv"`).

Data order and augmentation are pure functions of (seed, step): global batch
`step` is positions [step*B, (step+1)*B) of the epochs' seeded permutations
laid end to end, and its crops/flips come from a generator seeded with
(seed, step). So a resumed run sees exactly the batches an uninterrupted one
would, and P torchrun processes each take their 1/P slice of the same global
batch that one process would take whole.

Checkpoints (`checkpoint.pt`, written atomically every `ckpt_every` steps and at
the end) hold the model, the optimizer, both configs, the step, the history and
the torch / numpy / Python RNG states as plain types and tensors, so they load
with `torch.load(..., weights_only=True)`. `final.pt` holds the trained weights
as a self-describing dict {"model", "config", "model_name", ...}.

Distributed (`torchrun --nproc-per-node P -m colorlab.train ...`): gloo on CPU,
nccl on CUDA. The loss is each process's mean over its shard; DDP averages the
gradients, so for a loss that is a mean over samples the update equals the
one-process update on the whole batch. BatchNorm: on CUDA, layers are turned
into `SyncBatchNorm` (`cfg.sync_bn`); on CPU torch refuses SyncBatchNorm inside
DDP ("SyncBatchNorm layers only work with GPU modules", torch 2.13), so each
process normalises with its own shard's statistics and the curves of P and 1
processes agree only approximately; without BatchNorm they agree to float
rounding (tests/test_distributed.py; 1e-7 relative, measured). A loss averaged
over the *labelled* samples only (Iizuka's class term) is a per-process mean,
so there too the match is approximate. Only rank 0 writes files.

Validation: every `eval_every` steps and at the end, in eval mode, the loss
parts averaged over the validation arrays (batch means weighted by batch size),
and top-1 / top-5 scene accuracy over labelled samples when the model has
`classify(gray)`.

This module is the loop alone: it imports colour, batches and the networks
it is handed, never the run store (`colorlab.runs`, which calls `fit`) or
the experiments (`colorlab.experiments`, which hold the presets).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from colorlab import atomic, batches, color, keys
from colorlab.devices import World, init_distributed, resolve_device
from colorlab.seeding import rng_state, seed_everything, set_rng_state

OPTIMIZERS = ("adadelta", "adam", "adamw", "sgd")
SCHEDULES = ("constant", "warmup_cosine")


@dataclass
class TrainConfig:
    """How a network is trained. Defaults are Iizuka et al. 2016 sec. 3.4."""

    steps: int = 200_000  # sec. 3.4: 200,000 iterations (~11 epochs of Places)
    batch_size: int = 128  # sec. 3.4; the GLOBAL batch, split evenly over torchrun processes
    optimizer: str = "adadelta"  # sec. 3.4: ADADELTA (Zeiler 2012); "adam" (Baldassarre et al. 2017), "adamw", "sgd"
    lr: float = 1.0  # ADADELTA has no global learning rate (sec. 3.4): lr 1.0 applies its update as is
    schedule: str = "constant"  # the papers' constant rate; "warmup_cosine": linear warm-up, then cosine to 0
    warmup: float = 0.0  # warmup_cosine: the fraction of `steps` spent warming up linearly
    rho: float = 0.9  # ADADELTA decay: not given in the paper (torch's default)
    eps: float | None = None  # None = torch's default (ADADELTA 1e-6, Adam 1e-8): not given in the paper
    betas: tuple[float, float] = (0.9, 0.999)  # Adam: not given in Baldassarre et al. (TF/torch default)
    momentum: float = 0.0  # SGD only; no paper here uses SGD (Cheng: "classical back-propagation")
    weight_decay: float = 0.0  # none of the papers mentions any
    grad_clip: float | None = None  # none in the papers
    seed: int = 0
    bf16: bool = False  # bfloat16 autocast (CPU or CUDA); weights, optimizer and loss stay float32
    data_size: int | None = None  # decoded image size; None = the model's working size
    crop: int | None = None  # random square crop (sec. 3.4: 224 of 256); None = the whole image
    flip: bool = True  # left-right flip with p = 0.5 (sec. 3.4)
    eval_every: int = 1000  # validation loss (and top-1/5 when the model classifies) every this many steps
    ckpt_every: int = 1000
    log_every: int = 1  # one history row per this many steps: the mean training loss over them
    val_batch_size: int | None = None  # None = batch_size
    sync_bn: bool = True  # SyncBatchNorm across processes where torch supports it (CUDA only)
    device: str = "auto"  # "auto" = this process's CUDA device when there is one, else "cpu"
    channels_last: bool = False  # NHWC convolutions (oneDNN / cuDNN): faster, same maths up to float rounding

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"TrainConfig.warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        for name in ("steps", "batch_size", "eval_every", "ckpt_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.crop is not None and self.data_size is not None and self.crop > self.data_size:
            raise ValueError(f"crop {self.crop} is larger than the images (data_size {self.data_size})")
        self.betas = tuple(self.betas)


# Fields that change neither which samples are seen nor the maths of an update:
# they may differ between a checkpoint and the config that resumes it, and they
# are left out of a run's key (colorlab.runs).
NOT_IN_KEY = ("eval_every", "ckpt_every", "log_every", "val_batch_size", "device")
_RESUMABLE_CHANGES = ("steps",) + NOT_IN_KEY


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN: AVX-512 BF16 / AMX on x86, BF16 on Arm)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


# --- optimizers, checkpoints, RNG --------------------------------------------------
def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    extra = {} if cfg.eps is None else {"eps": cfg.eps}
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.lr, rho=cfg.rho, weight_decay=cfg.weight_decay, **extra)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **extra)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **extra)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The rate of update `step` (0-based): a pure function of the step, so resuming needs no scheduler state."""
    if cfg.schedule == "constant":
        return cfg.lr
    warm = max(1, round(cfg.warmup * cfg.steps)) if cfg.warmup > 0 else 0
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return float(cfg.lr * 0.5 * (1 + np.cos(np.pi * (step - warm) / max(1, cfg.steps - warm))))


def config_dict(cfg: Any) -> dict:
    return asdict(cfg) if dataclasses.is_dataclass(cfg) else {}


def _scalar(x) -> float:
    return x.detach().item() if isinstance(x, torch.Tensor) else float(x)




# --- the loop ----------------------------------------------------------------------
class _LossModule(nn.Module):
    """DDP hooks into `forward`, so the loss is computed inside one."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.training_loss(batch)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from; `path` names it."""

    def __init__(self, message: str, path: Path):
        super().__init__(f"{path}: {message}")
        self.path = Path(path)


@dataclass
class TrainResult:
    history: pd.DataFrame
    model: nn.Module
    run_dir: Path
    steps_trained: int = 0  # by this call (0 when the checkpoint was already complete)
    seconds: float = 0.0  # wall time of this call's training steps


def _reduce_mean(values: dict[str, float], world: World, device: torch.device) -> dict[str, float]:
    if world.size == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, (t / world.size).tolist()))


def _sync_buffers(model: nn.Module, world: World) -> None:
    """Rank 0's BatchNorm running statistics everywhere (they drift apart on CPU, see module doc)."""
    if world.size > 1:
        for b in model.buffers():
            dist.broadcast(b, 0)


def _center(arrays: dict[str, np.ndarray], crop: int | None) -> tuple[dict | None, tuple[int, int] | None]:
    """No augmentation for validation: the centre crop of the training crop's size."""
    if crop is None or "rgb" not in arrays:
        return None, None
    n, h, w = arrays["rgb"].shape[:3]
    if crop > min(h, w):
        raise ValueError(f"crop {crop} is larger than the validation images ({h} x {w})")
    return {"oy": (h - crop) // 2, "ox": (w - crop) // 2}, (crop, crop)


@torch.no_grad()
def evaluate(model: nn.Module, arrays: dict[str, np.ndarray], cfg: TrainConfig, device: torch.device | None = None,
             world: World = World()) -> dict[str, float]:
    """Mean validation loss parts in eval mode (no augmentation; centre crop to `cfg.crop`),
    plus top-1 / top-5 scene accuracy when the model has `classify` and the arrays have labels.
    Under torchrun each process scores its share and the sums are reduced."""
    device = device or next(model.parameters()).device
    n = batches.check_arrays(arrays, "validation")
    center, out_hw = _center(arrays, cfg.crop)
    mine = np.array_split(np.arange(n), world.size)[world.rank]
    bs = cfg.val_batch_size or cfg.batch_size
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    counts = {"n": 0.0, "labelled": 0.0, "top1": 0.0, "top5": 0.0}
    can_classify = hasattr(model, "classify") and "label" in arrays and "rgb" in arrays
    for start in range(0, len(mine), bs):
        idx = mine[start : start + bs]
        aug = None if center is None else {"oy": np.full(len(idx), center["oy"]), "ox": np.full(len(idx), center["ox"]),
                                           "flip": np.zeros(len(idx), dtype=bool)}
        batch = batches.make_batch(arrays, idx, device, aug, out_hw)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss, parts = model.training_loss(batch)
            logits = None
            if can_classify:
                try:
                    logits = model.classify(color.rgb_to_gray(batch["rgb"]))
                except ValueError:  # e.g. Iizuka's baseline has no classification head
                    can_classify = False
        for k, v in {"loss": _scalar(loss), **{k: _scalar(v) for k, v in parts.items() if k != "loss"}}.items():
            sums[k] = sums.get(k, 0.0) + v * len(idx)
        counts["n"] += len(idx)
        if logits is not None:
            labels = batch["label"]
            known = labels >= 0
            top = logits.float().topk(min(5, logits.shape[1]), dim=1).indices  # (B, 5)
            hit = top == labels[:, None]
            counts["labelled"] += float(known.sum())
            counts["top1"] += float((hit[:, 0] & known).sum())
            counts["top5"] += float((hit.any(1) & known).sum())
    model.train(was_training)
    keys = sorted(sums)
    values = [sums[k] for k in keys] + [counts[k] for k in ("n", "labelled", "top1", "top5")] + [float(can_classify)]
    if world.size > 1:
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        values = t.tolist()
    n_all, labelled, top1, top5, classified = values[len(keys):]
    out = {k: v / max(n_all, 1) for k, v in zip(keys, values)}
    if classified and labelled > 0:
        out.update(top1=top1 / labelled, top5=top5 / labelled)
    return out


def _check_resume(saved: dict, cfg: TrainConfig, path: Path) -> None:
    now, saved = keys.jsonable(asdict(cfg)), keys.jsonable(saved)
    resumable = _RESUMABLE_CHANGES if cfg.schedule == "constant" else NOT_IN_KEY  # a schedule is laid over `steps`
    diff = {k: (saved.get(k), v) for k, v in now.items() if k not in resumable and saved.get(k) != v}
    if diff:
        raise ValueError(f"{path} was written with a different TrainConfig ({diff} as (checkpoint, now)); "
                         "resume=False to start over, or use another run directory")


def _write_history(rows: list[dict], run_dir: Path) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    atomic.write_text(run_dir / "history.csv", df.to_csv(index=False))
    return df


def fit(model: nn.Module, train_arrays: dict[str, np.ndarray], val_arrays: dict[str, np.ndarray] | None,
        cfg: TrainConfig, run_dir: Path, resume: bool = True, progress: bool = True,
        meta: dict | None = None) -> TrainResult:
    """Train `model` for `cfg.steps` global steps, checkpointing into `run_dir`.

    `resume=True` continues from `run_dir/checkpoint.pt` when there is one and
    ends with the same weights as an uninterrupted run. `meta` (JSON-able) is
    stored in the checkpoints and in `final.pt` (colorlab.runs passes the model
    name and run key).
    Returns the history (one row per logged / evaluated step).
    """
    run_dir = Path(run_dir)
    device = resolve_device(cfg.device)
    world = init_distributed(device)
    n = batches.check_arrays(train_arrays)
    if val_arrays is not None:
        batches.check_arrays(val_arrays, "validation")
    if cfg.batch_size % world.size:
        raise ValueError(f"batch_size {cfg.batch_size} does not split evenly over {world.size} processes")
    local = cfg.batch_size // world.size
    spatial = batches.spatial_keys(train_arrays)
    hw = tuple(train_arrays["rgb"].shape[1:3]) if "rgb" in train_arrays else None
    if cfg.crop is not None:
        if hw is None:
            raise ValueError("crop needs an 'rgb' array")
        if cfg.crop > min(hw):
            raise ValueError(f"crop {cfg.crop} is larger than the training images {hw}")
    augmenting = bool(spatial) and (cfg.crop is not None or cfg.flip)
    out_hw = hw if cfg.crop is None else (cfg.crop, cfg.crop)

    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if world.size > 1 and device.type == "cuda" and cfg.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = make_optimizer(model.parameters(), cfg)
    seed_everything(cfg.seed + world.rank)
    step, rows, seconds_before = 0, [], 0.0
    ckpt = run_dir / "checkpoint.pt"
    if resume and ckpt.exists():
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(f"cannot read the checkpoint (corrupt, or not written by colorlab.train: "
                                  f"{type(err).__name__}); resume=False starts over", ckpt) from err
        _check_resume(state["train_config"], cfg, ckpt)
        if state["step"] > cfg.steps:
            raise ValueError(f"{ckpt} is at step {state['step']}, beyond steps={cfg.steps}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, rows = int(state["step"]), list(state["history"])
        seconds_before = float(rows[-1]["time_s"]) if rows else 0.0
        states = state["rng"]
        if len(states) == world.size:
            set_rng_state(states[world.rank])
        else:
            warnings.warn(f"{ckpt} was written by {len(states)} processes, resuming on {world.size}: "
                          "RNG streams are re-seeded (data order and augmentation are unaffected)")
            seed_everything(cfg.seed + world.rank + 7919 * step)

    net: nn.Module = _LossModule(model)
    if world.size > 1:
        # find_unused_parameters: a batch with no labels leaves the classification head without gradient
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    model.train()
    order = batches.BatchOrder(n, cfg.batch_size, cfg.seed)
    mine = slice(world.rank * local, (world.rank + 1) * local)
    run_meta = keys.jsonable(meta or {})

    def checkpoint() -> None:
        states = [rng_state()]
        if world.size > 1:
            gathered = [None] * world.size
            dist.all_gather_object(gathered, states[0])
            states = gathered
        if world.main:
            atomic.save_torch({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "config": keys.jsonable(config_dict(getattr(model, "cfg", None))),
                         "train_config": keys.jsonable(asdict(cfg)), "step": step, "world_size": world.size,
                         "history": rows, "rng": states, "meta": run_meta}, ckpt)
            _write_history(rows, run_dir)

    first, start_time = step, time.perf_counter()
    sums: dict[str, float] = {}
    logged = 0
    bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and world.main), desc=run_dir.name,
               unit="step", dynamic_ncols=True)
    while step < cfg.steps:
        idx = order.indices(step)
        aug = None
        if augmenting:
            full = batches.augmentation(step, cfg.seed, cfg.batch_size, hw, cfg.crop, cfg.flip)
            aug = {k: v[mine] for k, v in full.items()}
        batch = batches.make_batch(train_arrays, idx[mine], device, aug, out_hw)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss, parts = net(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        optimizer.step()
        step += 1
        values = _reduce_mean({"loss": _scalar(loss), **{k: _scalar(v) for k, v in parts.items() if k != "loss"}},
                              world, device)
        if not np.isfinite(values["loss"]):
            raise FloatingPointError(f"training loss is {values['loss']} at step {step} ({run_dir})")
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        logged += 1
        row: dict[str, Any] = {}
        if step % cfg.log_every == 0 or step == cfg.steps:
            row.update({f"train_{k}": v / logged for k, v in sums.items()})
            sums, logged = {}, 0
        if val_arrays is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            _sync_buffers(model, world)
            row.update({f"val_{k}": v for k, v in evaluate(model, val_arrays, cfg, device, world).items()})
        if row:
            elapsed = seconds_before + time.perf_counter() - start_time
            rows.append({"step": step, "epoch": step * cfg.batch_size / n, "time_s": elapsed, **row})
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            _sync_buffers(model, world)
            checkpoint()
        bar.update(1)
        if step % 10 == 0 or step == cfg.steps:
            bar.set_postfix(loss=f"{values['loss']:.4g}")
    bar.close()
    seconds = time.perf_counter() - start_time

    if step == first and world.main and not (run_dir / "history.csv").exists():
        _write_history(rows, run_dir)
    model.to(memory_format=torch.contiguous_format)  # the weights leave the loop in the usual layout
    if world.main:
        model_cfg = keys.jsonable(config_dict(getattr(model, "cfg", None)))
        atomic.save_torch({"model": model.state_dict(), "config": model_cfg, "train_config": keys.jsonable(asdict(cfg)),
                     "step": step, **run_meta}, run_dir / "final.pt")
    history = pd.DataFrame(rows)
    if world.size > 1:
        dist.barrier()
    model.eval()
    return TrainResult(history=history, model=model, run_dir=run_dir, steps_trained=step - first, seconds=seconds)


