"""The vividness extension's experiment: Iizuka et al. 2016's network, data and schedules with
Zhang et al. 2016's classification loss (`colorlab.models.iizuka_zhang2016`).

The same photos, scene labels and training presets as `experiments.iizuka2016`, so a run of
each at the same profile differs in the loss and readout alone (the ablation of notebook 05).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from colorlab import profiles, runs
from colorlab.experiments import images, timing
from colorlab.experiments.iizuka2016 import TRAIN  # noqa: F401 (the same schedules)
from colorlab.models import iizuka_zhang2016 as net

NAME = "iizuka_zhang2016"


def default_config(profile: str) -> net.Config:
    return net.PRESETS[profile]


def recipe(profile: str, model_cfg: net.Config, train_cfg, progress: bool = True, data=None, val=None) -> runs.Recipe:
    """Decoded photos of the profile's data at `train_cfg.data_size`, with scene labels (as Iizuka's)."""
    from colorlab.experiments import data_profile

    where, size = data_profile(profile), train_cfg.data_size or model_cfg.train_size
    if data is not None:
        return images.recipe(NAME, model_cfg, train_cfg, *images.data_specs(data, val, size))
    return images.recipe(NAME, model_cfg, train_cfg, profiles.train_data(where, size), profiles.val_data(where, size))


def benchmark(quick: bool = False, sizes: tuple[int, ...] = (224, 512), preset: str = "cpu", repeats: int = 3,
              device: str = "cpu") -> dict:
    """Seconds per `colorize` of one image at each size, random weights, BatchNorm folded."""
    if quick:
        sizes, preset, repeats = (32, 64), "smoke", 2
    model = net.fold_batchnorm(net.build(replace(net.PRESETS[preset])).eval()).to(device)
    return {"model": NAME, "preset": preset, "device": device, "threads": torch.get_num_threads(),
            "seconds": timing.colorize_seconds(model, sizes, repeats, device)}
