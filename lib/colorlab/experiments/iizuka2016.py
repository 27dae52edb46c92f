"""Iizuka et al. 2016's experiment: training presets, data, and the recipe the run store trains.

The network is `colorlab.models.iizuka2016`; it trains through `colorlab.train.fit`
on decoded MiniPlaces photos (`profiles.train_data`) with the scene labels.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from colorlab import profiles, runs
from colorlab.experiments import images, timing
from colorlab.models import iizuka2016 as net

# TrainConfig overrides per profile. "augment": the paper's 256 -> 224 crops and flips scaled to the
# working size (`experiments.train_config`). paper/gpu = sec. 3.4's schedule: ADADELTA, batch 128,
# 200,000 iterations. cpu = the `make reproduce` budget, ~1.5-2 min a run on 2 cores (measured:
# 1000 steps of batch 32 at 64 px cost ~155 s of single-thread CPU on the development EPYC).
# bf16="native": bfloat16 autocast only where the CPU computes it natively (oneDNN); measured on
# that EPYC (Zen 4, AVX-512 BF16), one thread: 0.101 s per step against 0.164 s in float32, with
# seed-0 quality inside the spread over seeds (23.81 against 23.55 dB on 200 MiniPlaces val images).
_PAPER = dict(steps=200_000, batch_size=128, optimizer="adadelta", lr=1.0, augment=True,
              eval_every=2000, ckpt_every=2000, log_every=50)
TRAIN = {
    "paper": _PAPER,
    "gpu": _PAPER,
    "cpu": dict(steps=1000, batch_size=32, optimizer="adadelta", lr=1.0, augment=True,
                eval_every=250, ckpt_every=250, log_every=5, bf16="native"),
    "smoke": dict(steps=30, batch_size=8, optimizer="adadelta", lr=1.0, augment=True,
                  eval_every=10, ckpt_every=10, log_every=1),
}


def default_config(profile: str) -> net.Config:
    return net.PRESETS[profile]


def recipe(profile: str, model_cfg: net.Config, train_cfg, progress: bool = True, data=None, val=None) -> runs.Recipe:
    """Decoded photos of the profile's data at `train_cfg.data_size`, with scene labels."""
    from colorlab.experiments import data_profile

    where, size = data_profile(profile), train_cfg.data_size or model_cfg.train_size
    if data is not None:  # a folder of the user's own photos (and an optional validation folder)
        return images.recipe("iizuka2016", model_cfg, train_cfg, *images.folder_specs(data, val, size))
    return images.recipe("iizuka2016", model_cfg, train_cfg, profiles.train_data(where, size),
                         profiles.val_data(where, size))


def benchmark(quick: bool = False, sizes: tuple[int, ...] = (224, 512, 1024, 2048), preset: str = "paper",
              repeats: int = 3, device: str = "cpu") -> dict:
    """Seconds per `colorize` of one image at each size (Table 3), random weights, BatchNorm folded."""
    if quick:
        sizes, preset, repeats = (32, 64), "smoke", 2
    model = net.fold_batchnorm(net.build(replace(net.PRESETS[preset])).eval()).to(device)
    return {"model": "iizuka2016", "preset": preset, "device": device, "threads": torch.get_num_threads(),
            "seconds": timing.colorize_seconds(model, sizes, repeats, device)}
