"""Readouts of a trained colouriser: the same weights, read out another way (inference only).

    from colorlab import readout
    vivid = readout.Readout(gain=1.5).wrap(run.model)   # ab of the model's colours x 1.5
    rgb = vivid.colorize(gray)                         # (B, 3, H, W), the photo's own lightness
    scale = readout.Readout(shorter=64).wrap(run.model)  # the net sees the photo at its training scale

Two knobs, each an extension of the study (not a paper's method), each with its own rows in
notebook 10:

- **gain**: the a, b of the model's output colours times a constant, applied after the network (the
  output is sRGB, already clipped to the gamut by the model; the scaled colours are clipped again). A
  network trained on the mean squared error predicts the mean of the plausible colours, which is
  grayer than any of them. Were its prediction p exactly that conditional mean, the error of g p
  would exceed the error of p by (g - 1)^2 E[p^2], while the gain over gray is E[p^2]: a gain of
  1.3 would keep 91 % of the improvement over gray. Notebook 10 measures how far a trained cpu
  preset is from that. The gain is a readout knob like Zhang et al.'s temperature, swept after
  training; it is an extension, not a paper's method. It works on any model's output (Lab, YUV or
  RGB nets alike), at the price of reading the chrominance after the model's own clipping.
- **shorter**: the network runs on the photo resized so that its shorter side has this many
  pixels (never enlarged), and its chrominance is upsampled to the photo (`color.to_working` / `color.from_working`,
  the study's one pre/post pair). A fully convolutional net (Iizuka et al.'s) can be run at the scale
  of its training photos instead of the photo's own (`training_scale`; notebook 10 measures both nets
  with it). This readout found that Koalarization's `colorize` embedded the full-size photo while its
  training embeddings came from the small training photos; its `colorize` now embeds the photo its
  encoder sees.

The wrapped model keeps the trained one's parameters (nothing is copied) and offers `colorize`, so it
scores through `study.evaluate` like any method. Inside `features.memo.shared_maps` (`study.score_runs` scores
a run's readouts together there) the gains of one network share its output: the net runs once per photo for
all of them, and each gain's colours are what it makes alone.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass

import torch

from colorlab import color
from colorlab.features import memo

# The gain of the claims row "the MSE readout's chrominance times g colours better" (`claims.ABLATIONS`): the
# middle of notebook 10's sweep, fixed before the seeds were scored.
CLAIMED_GAIN = 1.5


def number(x: float) -> str:
    """The shortest text that reads back as `x` (1.5, 2, 1.2345671): readout labels and command lines."""
    return f"{x:g}" if float(f"{x:g}") == x else repr(float(x))


@dataclass(frozen=True)
class Readout:
    gain: float = 1.0  # chrominance multiplier; 1 = the model's own colours
    shorter: int | None = None  # pixels of the shorter side the net runs at; None = the model's own rule

    def __post_init__(self):
        if not math.isfinite(self.gain) or self.gain < 0:
            raise ValueError(f"gain must be a finite number >= 0, got {self.gain}")
        if self.shorter is not None and (self.shorter != int(self.shorter) or self.shorter < 8):
            raise ValueError(f"shorter must be a whole number of pixels, at least 8, got {self.shorter}")
        if self.shorter is not None:
            object.__setattr__(self, "shorter", int(self.shorter))  # 64.0 and 64 are one readout

    @property
    def is_identity(self) -> bool:
        return self.gain == 1.0 and self.shorter is None

    @property
    def label(self) -> str:
        """This readout's name in tables, claims and records: "gain 1.5", "gain 1 shorter 64" (the gain as `number`
        writes it, so a label reads back as its readout)."""
        return f"gain {number(self.gain)}" + ("" if self.shorter is None else f" shorter {self.shorter}")

    @property
    def tag(self) -> str:
        """A file-name-safe, readable name of this readout (its cached scores carry it, beside a key of its values)."""
        return f"readout-g{self.gain:g}" + ("" if self.shorter is None else f"-s{self.shorter}")

    def wrap(self, model) -> "ReadoutModel":
        return ReadoutModel(model, self)


class ReadoutModel:
    """A trained model read out by `Readout`: `colorize(gray)` as the model's, with the readout applied."""

    def __init__(self, model, readout: Readout):
        self.model, self.readout = model, readout

    @torch.no_grad()
    def colorize(self, gray: torch.Tensor, **kwargs) -> torch.Tensor:
        """gray (B, 1, H, W) in [0, 1] -> sRGB (B, 3, H, W) with the input's lightness; keyword arguments go to
        the model's own `colorize` (Iizuka et al.'s `global_from`, Koalarization's `native`)."""
        r = self.readout
        if r.is_identity:
            return self.model.colorize(gray, **kwargs)
        net_gray = gray if r.shorter is None else color.to_working(
            gray, color.working_size(tuple(gray.shape[-2:]), shorter=r.shorter))  # (B, 1, h, w)

        def net_ab() -> torch.Tensor:
            rgb = self.model.colorize(net_gray, **kwargs)  # (B, 3, h, w)
            with torch.autocast(gray.device.type, enabled=False):
                return color.rgb_to_lab(rgb.float())[:, 1:]  # (B, 2, h, w)

        ab = memo.kept(lambda: self._key(net_gray, kwargs), net_ab)  # (B, 2, h, w): once per photo for all gains
        return color.from_working(gray, r.gain * ab, "lab")  # (B, 3, H, W)

    def _key(self, net_gray: torch.Tensor, kwargs: dict) -> tuple | None:
        """What the model's ab of `net_gray` is kept under inside `memo.shared_maps` (several gains of one run
        scored together run its network once per photo): the model object and a digest of its weights, and the
        input's bytes; None (never kept) for a model that is no network or a call with keyword arguments."""
        weights = memo.weights_digest(self.model)
        if weights is None or kwargs:
            return None
        return "readout-ab", type(self.model).__name__, id(self.model), weights, memo.image_digest(net_gray)

    def takes(self, name: str) -> bool:
        """Whether the wrapped model's `colorize` takes the keyword `name`."""
        return name in inspect.signature(self.model.colorize).parameters


def training_scale(run) -> int:
    """The side, in pixels, of the photos `run` learnt from (`TrainConfig.data_size`, else the net's train_size)."""
    return int(run.train_config.get("data_size") or run.model.cfg.train_size)


def cache_tag(readout: Readout | None) -> str:
    """The tag of a readout's cached scores in a run's folder: the readout's name and a key of its values and of
    this module's code; "eval" (the run's own score, `study.evaluate_run`) for the identity readout."""
    from colorlab import keys

    if readout is None or readout.is_identity:
        return "eval"
    return f"{readout.tag}-{keys.key(asdict(readout), [__name__])[:8]}"


def score(run, readout: Readout | None, eval_set, progress: bool = False):
    """Per-image metrics of `run` read out by `readout` on `eval_set` (`study.evaluate`'s columns), cached in
    the run's folder under `cache_tag(readout)`; the identity readout is the run's own cached score."""
    from colorlab import study

    if readout is None or readout.is_identity:
        return study.evaluate_run(run, eval_set, progress=progress)
    return study.evaluate_cached({run.model_name: readout.wrap(run.model)}, eval_set, run.dir, cache_tag(readout),
                                 progress)
