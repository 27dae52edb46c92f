"""The vividness extension's readout knob, Zhang et al. 2016's temperature (sec. 3.2), on trained weights.

    from colorlab import temperature
    mean = temperature.with_temperature(run.model, 1.0)   # the same weights, read out at T = 1
    rgb = mean.colorize(gray)

`with_temperature` reads the weights of `models.iizuka_zhang2016` out by the annealed mean at another
temperature, inference only (notebook 09 sweeps it). Inside `features.memo.shared_maps` (where
`study.score_runs` scores a run's readouts together) the temperatures of one run share its logits, as
the chroma gains of `colorlab.readout` share a network's colours. Their cached scores carry `tag(t)`: the
temperature and a key of this module's code and of the network it reads out, so an edit of either scores
them again.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch

from colorlab import keys
from colorlab.features import memo
from colorlab.models import iizuka_zhang2016 as extension


class Tempered(extension.IizukaZhang2016):
    """The extension's trained weights read out at another temperature (`with_temperature`): the model's own
    network and `colorize`; inside `features.memo.shared_maps` its inference forward is kept per input, so the
    temperatures of one run scored together run the network once per photo (each reads the same logits as alone)."""

    def forward(self, gray: torch.Tensor, global_gray: torch.Tensor | None = None):
        if global_gray is not None or torch.is_grad_enabled() or self.training:
            return super().forward(gray, global_gray)
        return memo.kept(lambda: self._key(gray), lambda: super(Tempered, self).forward(gray))

    def _key(self, gray: torch.Tensor) -> tuple:
        """The network's parameters (their digest and the config but its temperature) and the input's bytes."""
        return ("tempered-logits", memo.weights_digest(self), repr(replace(self.cfg, temperature=1.0)),
                memo.image_digest(gray))


def with_temperature(model: extension.IizukaZhang2016, temperature: float) -> extension.IizukaZhang2016:
    """The same trained weights (shared, not copied) read out by the annealed mean at `temperature`
    (T -> 0 is the mode, T = 1 the mean of the predicted distribution)."""
    tempered = copy.copy(model)  # a shallow copy: its parameters and buffers are the model's own
    tempered.__class__ = Tempered  # the same network; its logits shared with other temperatures while scoring
    tempered.cfg = replace(model.cfg, temperature=temperature)
    return tempered


def tag(temperature: float) -> str:
    """The tag of a run's cached scores read out at `temperature` (at its own it is the run's "eval"): the
    temperature and a key of it and of this module's code."""
    return f"eval-T{temperature:g}-{keys.key({'temperature': float(temperature)}, [__name__])[:8]}"
