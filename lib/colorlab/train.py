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

Training presets: `preset(model, profile)` from `TRAIN_PRESETS[model][profile]`
below (the CNNs), or else the model module's own `TRAIN[profile]` (Cheng).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from colorlab import color, reports

OPTIMIZERS = ("adadelta", "adam", "sgd")


@dataclass
class TrainConfig:
    """How a network is trained. Defaults are Iizuka et al. 2016 sec. 3.4."""

    steps: int = 200_000  # sec. 3.4: 200,000 iterations (~11 epochs of Places)
    batch_size: int = 128  # sec. 3.4; the GLOBAL batch, split evenly over torchrun processes
    optimizer: str = "adadelta"  # sec. 3.4: ADADELTA (Zeiler 2012); "adam" (Baldassarre et al. 2017), "sgd"
    lr: float = 1.0  # ADADELTA has no global learning rate (sec. 3.4): lr 1.0 applies its update as is
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

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
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


# --- training presets: one per model and profile --------------------------------
# Values are TrainConfig overrides. "augment" is the paper's 256 -> 224 crop
# scaled to the model's working size: data decoded at 8/7 of it, random crops of
# it, flips. Profiles: paper/gpu = the paper's schedule; cpu = the `make
# reproduce` budget, one run ~1.5-2 min on 2 cores (measured: 1000 steps of batch
# 32 at 64 px cost ~155 s of single-thread CPU for Iizuka's cpu net, ~140 s for
# Koalarization's, on the development EPYC); smoke = seconds.
# bf16="native": bfloat16 autocast where the CPU computes bfloat16 natively
# (`native_bf16`), float32 elsewhere, since emulated bf16 is slower than float32.
# Measured on the development EPYC (Zen 4, AVX-512 BF16), one thread: Iizuka's cpu
# step 0.101 s in bf16 against 0.164 s in float32 (1.6x); seed 0 on 200 MiniPlaces
# val images: 23.81 dB / AuC 0.905 in bf16 against 23.55 dB / 0.902 in float32
# (Koalarization: 23.99 against 23.95 dB), inside the spread over seeds. The flag
# is part of a run's key, so runs of the two kinds are never mixed up.
_IIZUKA_PAPER = dict(steps=200_000, batch_size=128, optimizer="adadelta", lr=1.0, augment=True,
                     eval_every=2000, ckpt_every=2000, log_every=50)
TRAIN_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "iizuka2016": {
        "paper": _IIZUKA_PAPER,
        "gpu": _IIZUKA_PAPER,
        "cpu": dict(steps=1000, batch_size=32, optimizer="adadelta", lr=1.0, augment=True,
                    eval_every=250, ckpt_every=250, log_every=5, bf16="native"),
        "smoke": dict(steps=30, batch_size=8, optimizer="adadelta", lr=1.0, augment=True,
                      eval_every=10, ckpt_every=10, log_every=1),
    },
    # Baldassarre et al. 2017: Adam 1e-3, batch 100, no augmentation (official code);
    # 100 epochs of 65,000 images (code commit 4af0d6b) = 65,000 steps.
    "koalarization2017": {
        "paper": dict(steps=65_000, batch_size=100, optimizer="adam", lr=1e-3, flip=False,
                      eval_every=2000, ckpt_every=2000, log_every=50),
        "gpu": dict(steps=65_000, batch_size=100, optimizer="adam", lr=1e-3, flip=False,
                    eval_every=2000, ckpt_every=2000, log_every=50),
        "cpu": dict(steps=1000, batch_size=32, optimizer="adam", lr=1e-3, flip=False,
                    eval_every=250, ckpt_every=250, log_every=5, bf16="native"),
        "smoke": dict(steps=30, batch_size=8, optimizer="adam", lr=1e-3, flip=False,
                      eval_every=10, ckpt_every=10, log_every=1),
    },
}


def work_size(model_name: str, model_cfg: Any = None, profile: str | None = None) -> int:
    """The size a model trains at: `cfg.train_size`, else the module's `WORK_SIZE[profile]`."""
    from colorlab import models

    size = getattr(model_cfg, "train_size", None)
    if size is None and profile is not None:
        size = getattr(models.get(model_name), "WORK_SIZE", {}).get(profile)
    if size is None:
        raise ValueError(f"{model_name}: no working size (give its Config a train_size or the module WORK_SIZE)")
    return int(size)


def preset(model_name: str, profile: str, model_cfg: Any = None, **overrides) -> TrainConfig:
    """The TrainConfig of `model_name` for `profile`, sized to the model's working size.

    From `TRAIN_PRESETS`, or else the model module's own `TRAIN = {profile: dict}`
    (Cheng's per-pixel net keeps its schedule beside its features).
    """
    from colorlab import models

    table = TRAIN_PRESETS.get(model_name)
    if table is None and model_name in models.MODULES:
        table = getattr(models.get(model_name), "TRAIN", None)
    if table is None or profile not in table:
        raise KeyError(f"no training preset for model {model_name!r}, profile {profile!r}; "
                       f"known: {({m: sorted(p) for m, p in TRAIN_PRESETS.items()})} and models' TRAIN tables")
    values = dict(table[profile])
    if values.get("bf16") == "native":
        values["bf16"] = native_bf16()
    if model_cfg is None:
        model_cfg = getattr(models.get(model_name), "PRESETS", {}).get(profile)
    try:
        size = work_size(model_name, model_cfg, profile)
    except ValueError:
        size = None  # a model that does not train on images (Cheng's pixels)
    if values.pop("augment", False):
        if size is None:
            raise ValueError(f"{model_name}: augment needs the model's working size")
        values.update(crop=size, data_size=round(size * 8 / 7), flip=True)  # 224 / 256 = 7 / 8
    if size is not None:
        values.setdefault("data_size", size)
    values.update(overrides)
    return TrainConfig(**values)


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN: AVX-512 BF16 / AMX on x86, BF16 on Arm)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


# --- processes and devices -------------------------------------------------------
@dataclass(frozen=True)
class World:
    """This process's place among torchrun's processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def init_distributed(device: torch.device) -> World:
    """Join torchrun's process group (gloo on CPU, nccl on CUDA); a no-op for one process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1 and not dist.is_initialized():
        return World()
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


# --- data order and augmentation ---------------------------------------------------
class BatchOrder:
    """Which samples make up global batch `step`: seeded per-epoch permutations, end to end.

    A pure function of (seed, step), so resuming needs no generator state.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < 1:
            raise ValueError("no training samples")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self._perms: dict[int, np.ndarray] = {}

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            self._perms[epoch] = np.random.default_rng([self.seed, 0, epoch]).permutation(self.n)
        return self._perms[epoch]

    def indices(self, step: int) -> np.ndarray:
        pos = np.arange(step * self.batch_size, (step + 1) * self.batch_size, dtype=np.int64)
        epoch, offset = np.divmod(pos, self.n)
        out = np.empty_like(pos)
        for e in np.unique(epoch):  # one or two epochs, unless the batch is larger than the data
            at = epoch == e
            out[at] = self.permutation(int(e))[offset[at]]
        return out


def augmentation(step: int, seed: int, count: int, hw: tuple[int, int], crop: int | None,
                 flip: bool) -> dict[str, np.ndarray]:
    """Crop offsets and flips of the `count` samples of global batch `step` (sec. 3.4)."""
    rng = np.random.default_rng([seed, 1, step])
    oy = rng.integers(0, 1 + (0 if crop is None else hw[0] - crop), size=count)
    ox = rng.integers(0, 1 + (0 if crop is None else hw[1] - crop), size=count)
    flips = rng.random(count) < 0.5 if flip else np.zeros(count, dtype=bool)
    return {"oy": oy, "ox": ox, "flip": flips}


def crop_flip(x: np.ndarray, oy: np.ndarray, ox: np.ndarray, flips: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """(B, H, W, ...) -> (B, h, w, ...): per-sample crop at (oy, ox) and left-right flip, in one gather."""
    r, c = np.arange(out_hw[0]), np.arange(out_hw[1])
    rows = oy[:, None] + r  # (B, h)
    cols = ox[:, None] + np.where(flips[:, None], out_hw[1] - 1 - c, c)  # (B, w)
    return x[np.arange(len(x))[:, None, None], rows[:, :, None], cols[:, None, :]]


def _spatial_keys(arrays: dict[str, np.ndarray]) -> list[str]:
    if "rgb" not in arrays:
        return []
    hw = arrays["rgb"].shape[1:3]
    return [k for k, a in arrays.items() if a.ndim >= 3 and a.shape[1:3] == hw]


def check_arrays(arrays: dict[str, np.ndarray], what: str = "training") -> int:
    """Number of samples; a clear error when the arrays are not index-aligned or `rgb` is not uint8 images."""
    if not arrays:
        raise ValueError(f"no {what} arrays given")
    lengths = {k: len(a) for k, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{what} arrays are not index-aligned (lengths {lengths})")
    rgb = arrays.get("rgb")
    if rgb is not None and (rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[-1] != 3):
        raise ValueError(f"{what} 'rgb' must be uint8 (N, H, W, 3), got {rgb.dtype} {rgb.shape}")
    return next(iter(lengths.values()))


def make_batch(arrays: dict[str, np.ndarray], idx: np.ndarray, device: torch.device,
               aug: dict[str, np.ndarray] | None = None, out_hw: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """Gather samples `idx` (crop/flip spatial arrays by `aug`) into tensors on `device`."""
    spatial = set(_spatial_keys(arrays))
    batch = {}
    for key, array in arrays.items():
        x = np.asarray(array[idx])  # fancy indexing also reads memmaps in one go
        if key in spatial and aug is not None:
            x = crop_flip(x, aug["oy"], aug["ox"], aug["flip"], out_hw)
        if key == "rgb":
            t = color.to_float(x).contiguous()  # (B, 3, h, w) in [0, 1]
        else:
            t = torch.from_numpy(np.ascontiguousarray(x))
        batch[key] = t.to(device, non_blocking=True)
    return batch


# --- optimizers, checkpoints, RNG --------------------------------------------------
def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    extra = {} if cfg.eps is None else {"eps": cfg.eps}
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.lr, rho=cfg.rho, weight_decay=cfg.weight_decay, **extra)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **extra)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def atomic_save(obj: Any, path: Path) -> Path:
    """torch.save to a temporary file beside `path`, then rename: a crash leaves the old file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def rng_state() -> dict:
    """torch, CUDA, numpy and Python RNG states as tensors and plain types (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "state": list(py_state), "gauss": gauss},
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's RNGs (called inside `fit` and before building a model, never at import)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def config_dict(cfg: Any) -> dict:
    return asdict(cfg) if dataclasses.is_dataclass(cfg) else {}


def _scalar(x) -> float:
    return x.detach().item() if isinstance(x, torch.Tensor) else float(x)


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


# --- the loop ----------------------------------------------------------------------
class _LossModule(nn.Module):
    """DDP hooks into `forward`, so the loss is computed inside one."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.training_loss(batch)


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
    n = check_arrays(arrays, "validation")
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
        batch = make_batch(arrays, idx, device, aug, out_hw)
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
    now, saved = _jsonable(asdict(cfg)), _jsonable(saved)
    diff = {k: (saved.get(k), v) for k, v in now.items() if k not in _RESUMABLE_CHANGES and saved.get(k) != v}
    if diff:
        raise ValueError(f"{path} was written with a different TrainConfig ({diff} as (checkpoint, now)); "
                         "resume=False to start over, or use another run directory")


def _write_history(rows: list[dict], run_dir: Path) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    reports.atomic_write_text(run_dir / "history.csv", df.to_csv(index=False))
    return df


def _save_plot(history: pd.DataFrame, run_dir: Path) -> None:
    """loss_curves.png via colorlab.plots.loss_curves when that module exists (plots never fail a run)."""
    try:
        from colorlab import plots

        loss_curves = plots.loss_curves
    except (ImportError, AttributeError):
        return
    try:
        import matplotlib.pyplot as plt

        fig = loss_curves(history)
        fig = getattr(fig, "figure", fig)
        path = run_dir / "loss_curves.png"
        tmp = run_dir / ".loss_curves.png.tmp"
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
        os.replace(tmp, path)
        plt.close(fig)
    except Exception as err:  # noqa: BLE001 - the weights are saved already; a figure is not worth a crash
        warnings.warn(f"could not draw the loss curves of {run_dir}: {err}")


def fit(model: nn.Module, train_arrays: dict[str, np.ndarray], val_arrays: dict[str, np.ndarray] | None,
        cfg: TrainConfig, run_dir: Path, resume: bool = True, progress: bool = True,
        meta: dict | None = None, plot: bool = True) -> TrainResult:
    """Train `model` for `cfg.steps` global steps, checkpointing into `run_dir`.

    `resume=True` continues from `run_dir/checkpoint.pt` when there is one and
    ends with the same weights as an uninterrupted run. `meta` (JSON-able) is
    stored in the checkpoints and in `final.pt` (colorlab.runs passes the model
    name and run key). `plot` draws `loss_curves.png` at the end (colorlab.plots).
    Returns the history (one row per logged / evaluated step).
    """
    run_dir = Path(run_dir)
    device = resolve_device(cfg.device)
    world = init_distributed(device)
    n = check_arrays(train_arrays)
    if val_arrays is not None:
        check_arrays(val_arrays, "validation")
    if cfg.batch_size % world.size:
        raise ValueError(f"batch_size {cfg.batch_size} does not split evenly over {world.size} processes")
    local = cfg.batch_size // world.size
    spatial = _spatial_keys(train_arrays)
    hw = tuple(train_arrays["rgb"].shape[1:3]) if "rgb" in train_arrays else None
    if cfg.crop is not None:
        if hw is None:
            raise ValueError("crop needs an 'rgb' array")
        if cfg.crop > min(hw):
            raise ValueError(f"crop {cfg.crop} is larger than the training images {hw}")
    augmenting = bool(spatial) and (cfg.crop is not None or cfg.flip)
    out_hw = hw if cfg.crop is None else (cfg.crop, cfg.crop)

    model.to(device)
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
            raise RuntimeError(f"cannot read checkpoint {ckpt} (corrupt, or not written by colorlab.train): "
                               "delete it or pass resume=False") from err
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
    order = BatchOrder(n, cfg.batch_size, cfg.seed)
    mine = slice(world.rank * local, (world.rank + 1) * local)
    run_meta = _jsonable(meta or {})

    def checkpoint() -> None:
        states = [rng_state()]
        if world.size > 1:
            gathered = [None] * world.size
            dist.all_gather_object(gathered, states[0])
            states = gathered
        if world.main:
            atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "config": _jsonable(config_dict(getattr(model, "cfg", None))),
                         "train_config": _jsonable(asdict(cfg)), "step": step, "world_size": world.size,
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
            full = augmentation(step, cfg.seed, cfg.batch_size, hw, cfg.crop, cfg.flip)
            aug = {k: v[mine] for k, v in full.items()}
        batch = make_batch(train_arrays, idx[mine], device, aug, out_hw)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss, parts = net(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
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
    if world.main:
        model_cfg = _jsonable(config_dict(getattr(model, "cfg", None)))
        atomic_save({"model": model.state_dict(), "config": model_cfg, "train_config": _jsonable(asdict(cfg)),
                     "step": step, **run_meta}, run_dir / "final.pt")
        history = pd.DataFrame(rows)
        if plot:
            _save_plot(history, run_dir)
    else:
        history = pd.DataFrame(rows)
    if world.size > 1:
        dist.barrier()
    model.eval()
    return TrainResult(history=history, model=model, run_dir=run_dir, steps_trained=step - first, seconds=seconds)


# --- command line: `colorlab train` and `torchrun -m colorlab.train` ---------------------
def train_profile(model_name: str, profile: str, model_cfg: Any = None, train_cfg: TrainConfig | None = None,
                  progress: bool = True, resume: bool = True, **train_overrides):
    """Train (or load the cached run of) `model_name` on the data of `profile` -> `runs.Run`.

    The one entry point behind `colorlab train` and the notebooks. Defaults are
    the model's preset and training preset for the profile; `train_overrides`
    (e.g. `seed=1`) replace fields of the training config. A model module that
    trains on something other than decoded images (or needs extra arrays, such
    as classifier embeddings) provides `train_run(profile, model_cfg, train_cfg,
    progress=, resume=)`, and this hands over to it.
    """
    from colorlab import models, profiles, runs

    module = models.get(model_name)
    model_cfg = module.PRESETS[profile] if model_cfg is None else model_cfg
    train_cfg = preset(model_name, profile, model_cfg) if train_cfg is None else train_cfg
    train_cfg = dataclasses.replace(train_cfg, **train_overrides)
    if hasattr(module, "train_run"):
        return module.train_run(profile, model_cfg, train_cfg, progress=progress, resume=resume)
    data_profile = "gpu" if profile == "paper" else profile
    size = train_cfg.data_size or work_size(model_name, model_cfg, profile)
    train_spec, val_spec = profiles.train_data(data_profile, size), profiles.val_data(data_profile, size)
    return runs.train_or_load(model_name, model_cfg, train_cfg, train_spec, val_spec, progress=progress, resume=resume)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name (colorlab.models.MODULES)")
    parser.add_argument("--profile", default="cpu", help="smoke | cpu | gpu | paper (default: cpu)")
    parser.add_argument("--steps", type=int, help="training steps (default: the profile's)")
    parser.add_argument("--seed", type=int, help="seed of init, data order and augmentation (default 0)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a model or train config field (model.KEY / train.KEY when both have it); repeatable")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="continue an interrupted run with the same config (default); --no-resume starts it over")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bfloat16 autocast on or off (default: the preset's; cpu = on where the CPU has native bf16)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: auto)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for this process")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parse_value(text: str, current: Any) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if isinstance(current, bool) or isinstance(value, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def apply_overrides(model_cfg: Any, train_cfg: TrainConfig, assignments: list[str]) -> tuple[Any, TrainConfig]:
    """`KEY=VALUE` (or `model.KEY=` / `train.KEY=`) onto the two configs; unknown keys are an error."""
    mfields = {f.name for f in fields(model_cfg)} if dataclasses.is_dataclass(model_cfg) else set()
    tfields = {f.name for f in fields(train_cfg)}
    m_over, t_over = {}, {}
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        scope, _, name = key.rpartition(".")
        targets = {"model": mfields, "train": tfields}
        if scope:
            if scope not in targets or name not in targets[scope]:
                raise ValueError(f"--set {key}: no field {name!r} in the {scope} config")
        else:
            hits = [s for s, f in targets.items() if name in f]
            if len(hits) != 1:
                raise ValueError(f"--set {key}: " + ("ambiguous, write model.{0} or train.{0}".format(name) if hits
                                                     else f"no such field; model: {sorted(mfields)}, train: {sorted(tfields)}"))
            scope = hits[0]
        cfg, over = (model_cfg, m_over) if scope == "model" else (train_cfg, t_over)
        over[name] = _parse_value(text, getattr(cfg, name))
    return dataclasses.replace(model_cfg, **m_over) if m_over else model_cfg, dataclasses.replace(train_cfg, **t_over)


def run(args: argparse.Namespace) -> int:
    """Build the model and data of a profile and train (or load) its run.

    A model module that trains on something other than decoded images (or needs
    extra arrays, such as classifier embeddings) provides
    `train_run(profile, model_cfg, train_cfg, progress=, resume=) -> runs.Run`,
    and the command hands over to it (see `train_profile`).
    """
    from colorlab import models

    if args.threads:
        torch.set_num_threads(args.threads)
    module = models.get(args.model)
    if args.profile not in module.PRESETS:
        raise SystemExit(f"colorlab train: {args.model} has no profile {args.profile!r}; choose one of {sorted(module.PRESETS)}")
    model_cfg = module.PRESETS[args.profile]
    train_cfg = preset(args.model, args.profile, model_cfg)
    try:
        model_cfg, train_cfg = apply_overrides(model_cfg, train_cfg, args.set)
    except (TypeError, ValueError) as err:
        raise SystemExit(f"colorlab train: {err}") from None
    direct = {"steps": args.steps, "seed": args.seed, "device": args.device, "bf16": args.bf16}
    train_cfg = dataclasses.replace(train_cfg, **{k: v for k, v in direct.items() if v is not None})
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        print(f"model {args.model} ({args.profile}): {model_cfg}\ntrain: {train_cfg}")
    try:
        result = train_profile(args.model, args.profile, model_cfg, train_cfg, progress=not args.no_progress,
                               resume=args.resume)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if main:
        print(f"run {result.key[:12]} in {result.dir}")
        print(json.dumps(result.metrics, indent=2, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m colorlab.train", description="train a model (torchrun-ready)")
    add_arguments(parser)
    return run(parser.parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    # Run through the importable module, so configs and runs share one copy of these classes.
    from colorlab import train as _train

    raise SystemExit(_train.main())
