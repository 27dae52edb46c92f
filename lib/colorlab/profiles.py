"""Run profiles: how big a run is, from a classroom laptop to a GPU.

`smoke` needs no dataset (photos that ship inside scikit-image and
scikit-learn) and runs in seconds; `cpu` trains on the local MiniPlaces
mirror within the `make reproduce` budget (whole study 75 min on two Xeon
cores with AMX, 101 min on two AMD EPYC cores); `gpu` is the papers' scale.
Models pick their own preset of the same name (`models.<paper>.PRESETS[profile]`); this module owns the data side.
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILES = ("smoke", "cpu", "gpu")
DEFAULT_PROFILE = "cpu"


@dataclass(frozen=True)
class DataSpec:
    """One decoded array set: `data.decoded(name, split, size, limit)`."""

    name: str
    split: str
    size: int
    limit: int | None = None  # class-balanced deterministic subset; None = all


def check(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    return profile


def train_data(profile: str, size: int) -> DataSpec:
    """Training images for a profile at a model's working size."""
    return {
        "smoke": DataSpec("smoke", "train", size),
        # every colour photo of the mirror's MiniPlaces subset (24,594): with 10,000 the quarter-width
        # Koalarization net overfitted within 3,000 steps (notebook 09 at commit 38ab501)
        "cpu": DataSpec("miniplaces", "train", size),
        "gpu": DataSpec("miniplaces", "train", size),
    }[check(profile)]


def val_data(profile: str, size: int) -> DataSpec:
    """Validation images (loss curves, classification accuracy)."""
    return {
        "smoke": DataSpec("smoke", "val", size),
        "cpu": DataSpec("miniplaces", "val", size, limit=500),
        "gpu": DataSpec("miniplaces", "val", size),
    }[check(profile)]


def eval_sets(profile: str) -> list[tuple[str, str]]:
    """(dataset, split) pairs that the comparison notebooks score, at full resolution."""
    if check(profile) == "smoke":
        return [("smoke", "val")]
    return [("miniplaces", "val"), ("kodak24", "all"), ("sun8", "test"), ("imagenet-sample", "all")]


def eval_limit(profile: str) -> int | None:
    """At most this many images per evaluation set (None = all)."""
    return {"smoke": 4, "cpu": 200, "gpu": None}[check(profile)]


def workers(profile: str, asked: int) -> int:
    """Processes that train and score runs side by side (`processes.side_by_side`): `asked`, but one at the smoke
    profile, whose runs take seconds (spawning workers would cost more than they save)."""
    return 1 if check(profile) == "smoke" else asked
