"""The colorization networks, one module per paper, and the pretrained classifier: networks only.

Every network module follows `colorlab.protocol.ModelModule`: `Config`
(defaults = the paper's, section cited), `PRESETS` (`paper`, `gpu`, `cpu`,
`smoke`), `build(cfg)` and `fold_batchnorm(model)`. Every network follows
`colorlab.protocol.Colorizer`:

    training_loss(batch) -> (loss, parts)
        batch: {"rgb": (B,3,H,W) float in [0,1], "label": (B,) int64 (-1 = none),
                plus any per-sample arrays the model asked for, e.g. "embedding"}
        parts: {"color": float, "class": float, ...} for the loss curves
    colorize(gray) -> rgb
        gray: (B,1,H,W) in [0,1], the grayscale photo (`color.rgb_to_gray`);
        returns (B,3,H,W) sRGB in [0,1] at the same H, W, keeping the input's
        lightness exactly (`color.to_working` / `color.from_working`).

How a network is trained (presets, data, input builders) lives in
`colorlab.experiments`, never here: no module of this package imports the
loop, the run store, scoring or experiments. Look a network module up by
name with `get(name)`; modules are imported only when asked for.
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = {
    "cheng2015": "colorlab.models.cheng2015",
    "iizuka2016": "colorlab.models.iizuka2016",
    "iizuka_zhang2016": "colorlab.models.iizuka_zhang2016",  # an extension: Iizuka's net, Zhang et al.'s loss
    "koalarization2017": "colorlab.models.koalarization2017",
}


def get(name: str) -> ModuleType:
    """The module of model `name` (`Config`, `PRESETS`, `build`)."""
    try:
        return importlib.import_module(MODULES[name])
    except KeyError:
        raise KeyError(f"unknown model {name!r}; choose one of {sorted(MODULES)}") from None
