"""The input builder of networks that train on decoded photos (Iizuka, Koalarization, a folder of your own).

`recipe(...)` describes the decoded arrays by their data specs and any extra
per-sample arrays (classifier embeddings) by the keys of the caches that
made them, so the run key covers the data without hashing it.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from colorlab import data as datasets
from colorlab import runs
from colorlab.profiles import DataSpec

# The code that turns a data spec into training arrays, besides the network: the loop and the decoder.
PRODUCERS = ("colorlab.train", "colorlab.data.cache")


def identity(spec: DataSpec | None) -> dict | None:
    """What a data spec contributes to a run key: the spec itself for a registered dataset; for a
    folder of the user's photos, its content digest instead of its path (renaming it keeps the runs)."""
    if spec is None:
        return None
    from colorlab.data import folder, registry

    if spec.name in registry.REGISTRY:
        return asdict(spec)
    return {**asdict(spec), "name": "folder", "content": folder.content_digest(Path(spec.name), spec.split)}


def data_specs(train: str | Path | DataSpec, val: str | Path | DataSpec | None,
               size: int) -> tuple[DataSpec, DataSpec | None]:
    """Data specs of `data=` / `val=`: a registered dataset's DataSpec as it is (a subset of a
    split: `DataSpec("sun8", "train", 128, limit=120)`), or a folder of photos (searched
    recursively) decoded at `size`."""
    from colorlab.errors import ColorlabError

    for f in (train, val):
        if isinstance(f, DataSpec):
            if f.name not in datasets.REGISTRY:
                raise ColorlabError(f"no registered dataset {f.name!r}; choose one of {sorted(datasets.REGISTRY)} "
                                    "or pass a folder of photos")
        elif f is not None and not Path(f).is_dir():
            raise ColorlabError("no such folder of photos", path=f, fix="pass a folder with --data / --val")
    return tuple(f if f is None or isinstance(f, DataSpec) else DataSpec(str(Path(f).resolve()), "all", size)
                 for f in (train, val))


def report_skipped(spec: DataSpec, dec, role: str = "trained on") -> None:
    """Say which files of a user's folder were left out (grayscale, unreadable), by name.

    A registered dataset says nothing here: its decoder warned once, with the counts, when it
    decoded the split, and its grayscale originals are the same for every run that trains on it.
    """
    if not dec.reasons or spec.name in datasets.REGISTRY:
        return
    names = ", ".join(f"{n} ({why})" for n, why in list(dec.reasons.items())[:20])
    more = f" and {len(dec.reasons) - 20} more" if len(dec.reasons) > 20 else ""
    print(f"[data] {spec.name} ({spec.split}): {role} {len(dec.rgb)} photos, skipped {len(dec.reasons)}: {names}{more}",
          file=sys.stderr, flush=True)


def arrays(spec: DataSpec | None, extras: dict[str, np.ndarray] | None = None, progress: bool = True,
           role: str = "trained on") -> dict | None:
    """{"rgb", "label", **extras} of a decoded data spec; extras must be index-aligned with its images."""
    if spec is None:
        return None
    dec = datasets.decoded(spec.name, spec.split, spec.size, spec.limit, progress=progress)
    report_skipped(spec, dec, role)
    out = {"rgb": dec.rgb, "label": np.asarray(dec.labels, dtype=np.int64)}
    for name, value in (extras or {}).items():
        if value is None:
            continue
        if len(value) != len(dec.rgb):
            raise ValueError(f"extras[{name!r}] has {len(value)} rows, {spec} has {len(dec.rgb)} images")
        out[name] = value
    return out


def recipe(model_name: str, model_cfg: Any, train_cfg: Any, train_spec: DataSpec, val_spec: DataSpec | None,
           extras: dict[str, tuple[np.ndarray, np.ndarray | None, str]] | None = None,
           producers: tuple[str, ...] = (), module: str | None = None) -> runs.Recipe:
    """A recipe that trains `colorlab.models.<model_name>` through `train.fit` on decoded photos.

    extras: name -> (train array, val array or None, identity): the identity (the
    key of the cache that made the arrays) goes into the run key.
    """
    extras = extras or {}
    data = {"train": identity(train_spec), "val": identity(val_spec),
            "extras": {name: value[2] for name, value in extras.items()}}

    def load():
        return (arrays(train_spec, {n: v[0] for n, v in extras.items()}),
                arrays(val_spec, {n: v[1] for n, v in extras.items()}, role="validated on"))

    return runs.Recipe(model_name=model_name, module=module or f"colorlab.models.{model_name}", model_cfg=model_cfg,
                       train_cfg=train_cfg, data=data, producers=PRODUCERS + tuple(producers), load=load)
