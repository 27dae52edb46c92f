"""What a paper offers the rest of colorlab: its network module and its experiment module, as Protocols.

The trainer, the CLI and the notebooks use these names and nothing else, so
a fourth paper is added by writing one module of each kind and registering
them (`colorlab.models.MODULES`, `colorlab.experiments.MODULES`);
`tests/test_protocol.py` checks every registered pair.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class Colorizer(Protocol):
    """A trained model: `training_loss` for the loop, `colorize` for everything else."""

    cfg: Any

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """batch {"rgb": (B,3,H,W) in [0,1], "label": (B,), ...} -> (loss, {"color": float, ...})."""

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        """gray (B,1,H,W) in [0,1], any size -> sRGB (B,3,H,W) keeping the input's lightness."""


@runtime_checkable
class StoredRun(Protocol):
    """A finished run of the store (`runs.Run`), as scoring sees it: a key, a folder to cache scores in, a colorizer.

    Scoring checks runs against this instead of importing the store, so the code
    closure of a cached score is the scoring code alone. (No properties here: on
    Python 3.11 `isinstance` evaluates every member, and `.model` loads weights.)
    """

    key: str
    dir: Any
    config: dict

    def verify(self) -> None:
        """A clear error unless the run's weights are the ones it finished with."""

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        """The trained model's colourisation (loads `.model` on first use)."""


@runtime_checkable
class ModelModule(Protocol):
    """`colorlab.models.<paper>`: the network, its config (defaults = the paper's) and presets."""

    Config: type
    PRESETS: dict[str, Any]  # "paper", "gpu", "cpu", "smoke"

    def build(self, cfg: Any) -> nn.Module:
        """An untrained network of `cfg`."""

    def fold_batchnorm(self, model: nn.Module) -> nn.Module:
        """The same function with fewer kernels, for inference (the identity where there is nothing to fold)."""


@runtime_checkable
class ExperimentModule(Protocol):
    """`colorlab.experiments.<paper>`: how the paper's network is trained and timed."""

    TRAIN: dict[str, dict[str, Any]]  # TrainConfig overrides per profile

    def default_config(self, profile: str) -> Any:
        """The network config a profile trains."""

    def recipe(self, profile: str, model_cfg: Any, train_cfg: Any, progress: bool = True,
               data: Any = None, val: Any = None) -> Any:
        """A `runs.Recipe`: what the run store trains for these configs (on the profile's data, or
        on the folders `data` / `val` of the user's own photos)."""

    def benchmark(self, quick: bool = False) -> dict:
        """Inference timings (JSON-able); `quick` for tests."""
