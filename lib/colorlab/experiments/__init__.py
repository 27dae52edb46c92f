"""Each paper's experiment: training presets, data, input builders, and the one way to get a trained model.

    from colorlab import experiments
    run = experiments.get("iizuka2016", "cpu", seed=1, use_global=False)   # -> runs.Run, trained once
    run.model.colorize(gray)

`get(model, profile, **overrides)` is the single entry point behind
`colorlab train`, the notebooks and the benchmarks. It builds the paper's
`Recipe` (`recipe(...)`) and hands it to the run store, which returns the
finished run of that key or trains it. Overrides are fields of the model
config or of the training config (`model.KEY` / `train.KEY` when both have
one). Each experiment module (`MODULES`) follows `protocol.ExperimentModule`:
`TRAIN` presets per profile, `default_config(profile)`, `recipe(...)` and
`benchmark(...)`.

This layer sits above the run store: it may import networks, the loop, the
store and data, never scoring, the CLI or notebooks.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import shlex
from dataclasses import fields
from pathlib import Path
from types import ModuleType
from typing import Any

from colorlab import models, processes, runs, train
from colorlab.data import DatasetMissingError
from colorlab.errors import ColorlabError
from colorlab.profiles import DataSpec

MODULES = {
    "cheng2015": "colorlab.experiments.cheng2015",
    "iizuka2016": "colorlab.experiments.iizuka2016",
    "iizuka_zhang2016": "colorlab.experiments.iizuka_zhang2016",
    "koalarization2017": "colorlab.experiments.koalarization2017",
}
PROFILES = ("smoke", "cpu", "gpu", "paper")


def module(name: str) -> ModuleType:
    """The experiment module of model `name`."""
    try:
        return importlib.import_module(MODULES[name])
    except KeyError:
        raise ColorlabError(f"unknown model {name!r}; choose one of {sorted(MODULES)}") from None


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ColorlabError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    return profile


def data_profile(profile: str) -> str:
    """The data a profile trains on: the paper's schedule runs on the gpu profile's data."""
    return "gpu" if profile == "paper" else profile


def train_config(name: str, profile: str, model_cfg: Any = None, **overrides) -> train.TrainConfig:
    """The TrainConfig of model `name` at `profile` (`TRAIN[profile]` of its experiment), sized to the model.

    "augment" is the paper's 256 -> 224 crop scaled to the model's working size
    (`model_cfg.train_size`): data decoded at 8/7 of it, random crops of it, flips.
    bf16="native": bfloat16 autocast where the CPU computes it natively, float32 elsewhere.
    """
    table = module(name).TRAIN
    if check_profile(profile) not in table:
        raise ColorlabError(f"{name} has no training preset for profile {profile!r}; choose one of {sorted(table)}")
    values = dict(table[profile])
    if values.get("bf16") == "native":
        values["bf16"] = train.native_bf16()
    size = getattr(model_cfg, "train_size", None)
    if values.pop("augment", False):
        if size is None:
            raise ValueError(f"{name}: augment needs the model's working size (Config.train_size)")
        values.update(crop=size, data_size=round(size * 8 / 7), flip=True)  # 224 / 256 = 7 / 8
    if size is not None:
        values.setdefault("data_size", size)
    return train.TrainConfig(**{**values, **overrides})


def _parse(text: Any, current: Any) -> Any:
    """A `--set` value: JSON where it parses, else the string; coerced to the field's current type."""
    value = text
    if isinstance(text, str):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
    if isinstance(current, bool) or isinstance(value, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def apply_overrides(model_cfg: Any, train_cfg: train.TrainConfig, overrides: dict[str, Any]) -> tuple[Any, train.TrainConfig]:
    """`{KEY: value}` (or `model.KEY` / `train.KEY`) onto the two configs; unknown or ambiguous keys are an error."""
    targets = {"model": {f.name for f in fields(model_cfg)}, "train": {f.name for f in fields(train_cfg)}}
    chosen: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for key, value in overrides.items():
        scope, _, name = key.rpartition(".")
        if scope:
            if scope not in targets or name not in targets[scope]:
                raise ColorlabError(f"no field {name!r} in the {scope} config")
        else:
            hits = [s for s, names in targets.items() if name in names]
            if len(hits) != 1:
                raise ColorlabError(f"ambiguous field {name!r}: write model.{name} or train.{name}" if hits else
                                    f"no such field {name!r}; model: {sorted(targets['model'])}, "
                                    f"train: {sorted(targets['train'])}")
            scope = hits[0]
        cfg = model_cfg if scope == "model" else train_cfg
        chosen[scope][name] = _parse(value, getattr(cfg, name))
    try:
        return dataclasses.replace(model_cfg, **chosen["model"]), dataclasses.replace(train_cfg, **chosen["train"])
    except (TypeError, ValueError) as err:
        raise ColorlabError(str(err)) from None


def command(name: str, profile: str, model_cfg: Any, train_cfg: train.TrainConfig) -> str:
    """The `colorlab train` command line that trains these configs: every field that differs from the
    profile's defaults becomes a `--set` (so a notebook's `model_cfg=` shows up as well as an override)."""
    base_model = module(name).default_config(profile)
    base_train = train_config(name, profile, base_model)
    sets = []
    for scope, cfg, base in (("model", model_cfg, base_model), ("train", train_cfg, base_train)):
        for f in fields(cfg):
            value = getattr(cfg, f.name)
            if scope == "train" and f.name in train.NOT_IN_KEY:
                continue
            if value != getattr(base, f.name, None):
                text = value if isinstance(value, str) else json.dumps(value if not isinstance(value, tuple) else list(value))
                sets.append(" --set " + shlex.quote(f"{scope}.{f.name}={text}"))
    return f"colorlab train --model {name} --profile {profile}{''.join(sets)}"


def _data_flags(data, val) -> str:
    """`--data` / `--val` of a folder; a dataset's subset (a DataSpec) has no flag: it is named after a `#`."""
    given = (("data", data), ("val", val))
    flags = "".join(f" --{flag} {where}" for flag, where in given if where is not None and not isinstance(where, DataSpec))
    specs = ", ".join(f"{flag}={where}" for flag, where in given if isinstance(where, DataSpec))
    return flags + (f"  # {specs} (experiments.get)" if specs else "")


def recipe(name: str, profile: str = "cpu", *, model_cfg: Any = None, train_cfg: train.TrainConfig | None = None,
           progress: bool = True, data: str | Path | DataSpec | None = None,
           val: str | Path | DataSpec | None = None, **overrides) -> runs.Recipe:
    """The run store's recipe of model `name` at `profile`, with `overrides` of either config.

    data / val: a folder of your own photos (searched recursively) to train on instead of the
    profile's dataset, and an optional validation folder; the run is keyed by their content. Or
    a registered dataset's `DataSpec` (a subset of a split: Cheng et al.'s budget curve).
    """
    exp = module(name)
    check_profile(profile)
    model_cfg = exp.default_config(profile) if model_cfg is None else model_cfg
    train_cfg = train_config(name, profile, model_cfg) if train_cfg is None else train_cfg
    model_cfg, train_cfg = apply_overrides(model_cfg, train_cfg, overrides)
    found = exp.recipe(profile, model_cfg, train_cfg, progress=progress, data=data, val=val)
    found.command = command(name, profile, model_cfg, train_cfg) + _data_flags(data, val)
    return found


def preset_key(name: str, profile: str, seed: int) -> str | None:
    """The run key of model `name`'s `profile` preset at `seed`; None where it cannot be known here (a model whose
    key holds its data, Koalarization's embeddings, without the profile's dataset). Such a key is made from the
    preset's decoded photos and embeddings: read from the cache, or made (minutes) when training it would make them."""
    try:
        return recipe(name, profile, seed=seed, progress=False).key
    except DatasetMissingError:
        return None


def get(name: str, profile: str = "cpu", *, progress: bool = True, resume: bool = True, model_cfg: Any = None,
        train_cfg: train.TrainConfig | None = None, data: str | Path | DataSpec | None = None,
        val: str | Path | DataSpec | None = None,
        **overrides) -> runs.Run:
    """The trained run of model `name` at `profile`: loaded when a finished one exists, else trained."""
    found = recipe(name, profile, model_cfg=model_cfg, train_cfg=train_cfg, progress=progress, data=data, val=val,
                   **overrides)
    return runs.get(found, progress=progress, resume=resume)


def _train_in_worker(name: str, profile: str, chain: list[dict]) -> list[str]:
    return [get(name, profile, progress=False, **kwargs).key for kwargs in chain]


def get_all(requests: list[tuple[str, dict]], profile: str = "cpu", workers: int = 1,
            progress: bool = True) -> list[runs.Run]:
    """`get(name, profile, **kwargs)` of every (name, kwargs) request, in order.

    workers > 1: the runs not yet trained train first in that many processes of one thread each
    (on a 2-core CPU two runs side by side train more images per second than one on both
    threads: `make bench`'s `thread_layout`); the run store's lock keeps two processes from
    training the same run. Runs of one `runs.lineage` (a constant rate, differing only in their
    steps) train in one process, shortest first, each continuing the one before. Inputs the runs
    share (decoded photos, embeddings) are made here first.
    """
    chains: dict[tuple[str, str], list[tuple[int, dict]]] = {}  # (name, lineage or key) -> (steps, kwargs)
    seen = set()
    for n, kw in requests:
        found = recipe(n, profile, progress=progress, **kw)
        if found.key not in seen and runs.status(found)[1] != "trained":
            chain = chains.setdefault((n, runs.lineage(found) or found.key), [])
            chain.append((getattr(found.train_cfg, "steps", 0), kw))
        seen.add(found.key)
    jobs = [(n, profile, [kw for _, kw in sorted(chain, key=lambda c: c[0])]) for (n, _), chain in chains.items()]
    if workers > 1 and len(jobs) > 1:
        trained = processes.side_by_side(_train_in_worker, jobs, workers)
        for (n, _, _), chain_keys in zip(jobs, trained):
            for key in chain_keys if progress else ():
                print(f"[train] {n} run {key[:12]} trained", flush=True)
    else:  # in this process, on all its threads
        for n, _, chain in jobs:
            for kw in chain:
                get(n, profile, progress=progress, **kw)
    return [get(n, profile, progress=progress, **kw) for n, kw in requests]


def get_over_seeds(variants: dict[str, tuple[str, dict]], seeds: list[int], profile: str = "cpu", workers: int = 1,
                   progress: bool = True) -> dict[str, list[runs.Run]]:
    """variant -> its trained runs, one per seed in `seeds` order.

    `variants` maps a name to (model, `get` keyword arguments without the seed); every variant at
    every seed goes to one `get_all`, so an ablation's variants and seeds train side by side.
    """
    requests = [(model, {**kw, "seed": s}) for model, kw in variants.values() for s in seeds]
    trained = iter(get_all(requests, profile, workers, progress))
    return {name: [next(trained) for _ in seeds] for name in variants}


def network(name: str) -> ModuleType:
    """The network module of model `name` (`colorlab.models.<name>`)."""
    return models.get(name)
