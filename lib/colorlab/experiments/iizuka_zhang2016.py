"""The vividness extension's experiment: Iizuka et al. 2016's network, data and schedules with
Zhang et al. 2016's classification loss (`colorlab.models.iizuka_zhang2016`).

The same photos, scene labels and training presets as `experiments.iizuka2016`, so a run of
each at the same profile differs in the loss and readout alone (the ablation of notebook 05).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch

from colorlab import profiles, runs
from colorlab.experiments import images, timing
from colorlab.experiments.iizuka2016 import TRAIN  # noqa: F401 (the same schedules)
from colorlab.features import memo
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


class _Tempered(net.IizukaZhang2016):
    """A readout of trained weights at another temperature (`with_temperature`): the model's own network and
    `colorize`; inside `features.memo.shared_maps` its inference forward is kept per input, so the temperatures
    of one run scored together run the network once per photo (each reads the same logits as alone)."""

    def forward(self, gray: torch.Tensor, global_gray: torch.Tensor | None = None):
        if global_gray is not None or torch.is_grad_enabled() or self.training:
            return super().forward(gray, global_gray)
        return memo.kept(lambda: self._key(gray), lambda: super(_Tempered, self).forward(gray))

    def _key(self, gray: torch.Tensor) -> tuple:
        """The network's parameters (their digest and the config but its temperature) and the input's bytes."""
        return ("tempered-logits", memo.weights_digest(self), repr(replace(self.cfg, temperature=1.0)),
                memo.image_digest(gray))


def with_temperature(model: net.IizukaZhang2016, temperature: float) -> net.IizukaZhang2016:
    """The same trained weights (shared, not copied) read out by the annealed mean at `temperature`
    (sec. 3.2: T -> 0 is the mode, T = 1 the mean of the predicted distribution)."""
    readout = copy.copy(model)  # a shallow copy: its parameters and buffers are the model's own
    readout.__class__ = _Tempered  # the same network; its logits shared with other temperatures while scoring
    readout.cfg = replace(model.cfg, temperature=temperature)
    return readout


def benchmark(quick: bool = False, sizes: tuple[int, ...] = (224, 512), preset: str = "cpu", repeats: int = 3,
              device: str = "cpu") -> dict:
    """Seconds per `colorize` of one image at each size, random weights, BatchNorm folded."""
    if quick:
        sizes, preset, repeats = (32, 64), "smoke", 2
    model = net.fold_batchnorm(net.build(replace(net.PRESETS[preset])).eval()).to(device)
    return {"model": NAME, "preset": preset, "device": device, "threads": torch.get_num_threads(),
            "seconds": timing.colorize_seconds(model, sizes, repeats, device)}
