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
# 200,000 iterations. cpu = the `make reproduce` budget, chosen from notebook 09's budget-quality curve
# (README "Where the cpu presets deviate"): AdamW with a 5% warm-up and cosine decay beat ADADELTA at
# every budget measured, and 3,000 steps of the quarter-width net beat 1,000 of the half-width one at
# about the same cost. The ablations (notebooks 04, 05) train 1,000 steps of it. bf16="native":
# bfloat16 autocast only where the CPU computes it natively (oneDNN); channels_last: NHWC convolutions,
# 1.1x faster per step in bf16 on a 2-core Xeon with AMX (`make bench`: 314 against 283 images/s).
_PAPER = dict(steps=200_000, batch_size=128, optimizer="adadelta", lr=1.0, augment=True,
              eval_every=2000, ckpt_every=2000, log_every=50)
TRAIN = {
    "paper": _PAPER,
    "gpu": _PAPER,
    "cpu": dict(steps=3000, batch_size=32, optimizer="adamw", lr=2e-3, schedule="warmup_cosine", warmup=0.05,
                weight_decay=1e-2, augment=True, eval_every=500, ckpt_every=500, log_every=10, bf16="native",
                channels_last=True),
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
        return images.recipe("iizuka2016", model_cfg, train_cfg, *images.data_specs(data, val, size))
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
