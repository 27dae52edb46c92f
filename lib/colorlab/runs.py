"""The run store: every trained artefact, keyed by what produced it, trained once and verified on load.

A `Recipe` says what to train: the network module and its config, the
training config, a JSON description of the data, the modules whose code
produces the weights, and how to get the arrays (or, for a model that does
not train through `colorlab.train.fit`, a function that trains it). The
store turns a recipe into a `Run`:

    key = keys.key({model, model config, train config, data}, producers)

so the key changes with any config field that shapes the weights and with
any code edit in the producers' import closure (comments and docstrings do
not count). `get(recipe)` returns the finished run of that key, resumes an
interrupted one, or trains a new one; `status(recipe)` answers "will this
retrain?" without training. The experiments (`colorlab.experiments`) build
recipes; nothing here knows a paper.

A constant learning rate is not laid over the steps, so the first N steps of
a longer run are the N-step run (`colorlab.train` draws each batch from
(seed, step)). A new run under a constant schedule therefore starts from the
final checkpoint of the longest finished run whose key differs from its own
only by fewer steps (`shorter_run`), and trains the steps that remain: on the
same device and threads, the same weights as from step 0 (tests/test_runs.py;
on other threads they differ by float rounding, as any rerun there does); its
history goes on from the shorter run's (with a row at its last step where that
is not an evaluation step) and its training seconds add up. The paper recipes'
3,000-step points of the budget curve continue their 1,000-step runs this way.

    <runs_dir>/<model_name>/<key[:12]>/
        config.json     everything needed to rebuild the model and repeat the run
        checkpoint.pt   model + optimizer + RNG + history (colorlab.train), for resuming
        history.csv     loss / validation curves; loss_curves.png
        final.pt        the trained weights {"model", "config", "model_name", ...}
        metrics.json    final numbers; notebooks may add their own (Run.update_metrics)
        done            written last: when, and the SHA-256 of final.pt

A finished run is verified before it is served: `done` must name the digest
of `final.pt`, so a truncated or replaced weights file is reported (and
retrained by `get`) instead of loading garbage. Two processes asking for one
unfinished run take turns on the folder's lock (POSIX `flock`); under
torchrun the ranks coordinate among themselves. `export` writes one
self-describing safetensors file; `load_exported` rebuilds the model from it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

import colorlab
from colorlab import atomic, keys, settings
from colorlab.configs import config_from_dict, network_module
from colorlab import train as training
from colorlab.errors import ColorlabError, CorruptFileError
from colorlab.weights import sha256

Arrays = dict[str, np.ndarray]


@dataclass
class Recipe:
    """What to train, and how; `colorlab.experiments` builds one per (model, profile, overrides)."""

    model_name: str  # the runs folder's first level, e.g. "iizuka2016"
    module: str  # dotted name of the network module: `Config`, `build(cfg)`
    model_cfg: Any  # a dataclass of `module.Config`
    train_cfg: Any  # a dataclass; `training.NOT_IN_KEY` fields are left out of the key
    data: dict  # JSON-able description of the inputs: data specs, keys of derived arrays
    producers: tuple[str, ...] = ()  # modules whose code makes the weights (besides `module`)
    load: Callable[[], tuple[Arrays, Arrays | None]] | None = None  # arrays for `train.fit`
    # A model that does not train through `train.fit` (Cheng's clustered nets, the scene parser):
    # fit(folder, progress, resume) -> (trained model, metrics). It writes only inside `folder`.
    fit: Callable[[Path, bool, bool], tuple[nn.Module, dict]] | None = None
    command: str = ""  # the CLI command that trains this recipe, for messages

    def payload(self) -> dict:
        train = {k: v for k, v in asdict(self.train_cfg).items() if k not in training.NOT_IN_KEY}
        return keys.jsonable({"model_name": self.model_name, "module": self.module, "model_config": asdict(self.model_cfg),
                              "train_config": train, "data": self.data})

    @property
    def key(self) -> str:
        return keys.key(self.payload(), (self.module, *self.producers))

    @property
    def folder(self) -> Path:
        return run_dir(self.model_name, self.key)


# --- runs ----------------------------------------------------------------------------
@dataclass
class Run:
    """A run folder. `.model` loads the verified trained weights (eval mode) on first use.

    `study.evaluate` scores a run once per evaluation set and caches the scores in its folder.
    """

    key: str
    dir: Path
    config: dict  # config.json: key, model_name, module, model_config, train_config, data, created, command
    _model: nn.Module | None = field(default=None, repr=False)

    @property
    def model_name(self) -> str:
        return self.config["model_name"]

    @property
    def model_config(self) -> dict:
        return self.config["model_config"]

    @property
    def train_config(self) -> dict:
        return self.config["train_config"]

    @property
    def command(self) -> str:
        return self.config.get("command") or f"colorlab train --model {self.model_name}"

    @property
    def done(self) -> bool:
        """Finished: the `done` marker and `final.pt` exist (`verify` also checks the digest)."""
        return (self.dir / "done").exists() and (self.dir / "final.pt").exists()

    def verify(self) -> None:
        """A clear `CorruptFileError` unless `final.pt` is the file the `done` marker names."""
        final, done = self.dir / "final.pt", self.dir / "done"
        try:
            expected = json.loads(done.read_text()).get("final_sha256")
        except (FileNotFoundError, json.JSONDecodeError, AttributeError):
            expected = None
        if expected is None:
            raise CorruptFileError(f"run {self.key[:12]} is not finished (no valid done marker)", path=done,
                                   fix=self.command)
        if not final.exists() or sha256(final) != expected:
            raise CorruptFileError(f"run {self.key[:12]}: the weights file is damaged or missing "
                                   "(its SHA-256 differs from the one recorded when the run finished)",
                                   path=final, fix=f"{self.command} (retrains it)")

    @property
    def history(self) -> pd.DataFrame:
        path = self.dir / "history.csv"
        return pd.read_csv(path) if path.exists() else pd.DataFrame()

    @property
    def metrics(self) -> dict:
        path = self.dir / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def update_metrics(self, **values) -> dict:
        merged = {**self.metrics, **keys.jsonable(values)}
        atomic.write_text(self.dir / "metrics.json", json.dumps(merged, indent=2, sort_keys=True) + "\n")
        return merged

    def build_model(self) -> nn.Module:
        """A fresh, untrained model of this run's config."""
        module = network_module(self.config)
        return module.build(config_from_dict(module.Config, self.model_config))

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            if not self.done:
                raise ColorlabError(f"run {self.key[:12]} has not finished", path=self.dir, fix=self.command)
            self.verify()
            path = self.dir / "final.pt"
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)["model"]
            except Exception as err:  # noqa: BLE001 - zip, pickle and key errors all mean a file we cannot use
                raise CorruptFileError(f"cannot read the weights ({type(err).__name__})", path=path,
                                       fix=f"{self.command} (retrains it)") from err
            model = self.build_model()
            model.load_state_dict(state)
            self._model = model.eval()
        return self._model

    def colorize(self, gray: torch.Tensor, **kwargs) -> torch.Tensor:
        """The trained model's colourisation: a run is a colorizer wherever one is expected."""
        return self.model.colorize(gray, **kwargs)


def run_dir(model_name: str, key: str) -> Path:
    return settings.runs_dir() / model_name / key[:12]


def _read_config(path: Path) -> dict | None:
    try:
        return json.loads((path / "config.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@contextlib.contextmanager
def _lock(folder: Path):
    """Hold the run folder's lock while it is checked and trained (one process; no-op under torchrun or without flock)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        yield
        return
    with atomic.exclusive(folder / ".lock", f"[runs] {folder} is being trained by another process; waiting for it"):
        yield


def status(recipe: Recipe) -> tuple[Run, str]:
    """(run, state) without training: "trained", "damaged" (finished, weights fail verification),
    "unfinished" (a checkpoint to resume) or "new"."""
    key = recipe.key
    folder = run_dir(recipe.model_name, key)
    existing = _read_config(folder)
    run = Run(key, folder, existing or _config(recipe, key, None))
    if existing is None:
        return run, "new"
    if run.done:
        try:
            run.verify()
            return run, "trained"
        except CorruptFileError:
            return run, "damaged"
    return run, "unfinished" if (folder / "checkpoint.pt").exists() else "new"


def lineage(recipe: Recipe) -> str | None:
    """What the runs that may continue one another share (the recipe's key at 1 step), for a recipe trained
    by `train.fit` under a constant schedule; None for any other (a schedule laid over the steps makes a
    longer run another run)."""
    cfg = recipe.train_cfg
    if recipe.fit is not None or getattr(cfg, "schedule", None) != "constant":
        return None
    return replace(recipe, train_cfg=replace(cfg, steps=1)).key


def shorter_run(recipe: Recipe) -> Run | None:
    """The finished run that `recipe`'s new run can continue, or None: of its `lineage`, the one with the
    most steps fewer than the recipe's (its key is the recipe's key with those steps: same configs, data
    and code) that kept the checkpoint of its last step."""
    if lineage(recipe) is None:
        return None
    cfg = recipe.train_cfg
    found = None
    for run in all_runs(recipe.model_name):
        steps = run.train_config.get("steps")
        if not isinstance(steps, int) or not 0 < steps < cfg.steps or (found and steps <= found[1]):
            continue
        if run.key == replace(recipe, train_cfg=replace(cfg, steps=steps)).key and run.done:
            found = (run, steps)
    if found is None:
        return None
    run, steps = found
    try:
        run.verify()
        state = torch.load(run.dir / "checkpoint.pt", map_location="cpu", weights_only=True)
        if not (isinstance(state, dict) and state.get("step") == steps and state.get("meta", {}).get("key") == run.key
                and len(state.get("rng", ())) == 1 and state.get("history")):
            raise ValueError("not the one-process checkpoint of its last step")
    except Exception as err:  # noqa: BLE001 - no checkpoint, a damaged one or another's: train from step 0
        print(f"[runs] cannot continue run {run.key[:12]} ({type(err).__name__}: {err}); training from step 0",
              file=sys.stderr, flush=True)
        return None
    return run


def continued_from(recipe: Recipe, resume: bool = True) -> Run | None:
    """The run that training `recipe` now would start from (`shorter_run`), or None: a run continues another only
    when it starts afresh (`resume` on, no checkpoint of its own) in one process (under torchrun it starts at 0)."""
    if not resume or (recipe.folder / "checkpoint.pt").exists() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    return shorter_run(recipe)


def _continue(shorter: Run, folder: Path, key: str) -> float:
    """Seed the new run's folder with the last checkpoint of `shorter`, so `train.fit` resumes from it; returns
    the training seconds that checkpoint's history ends at (where `train.fit` goes on counting)."""
    with atomic.writing(folder / "checkpoint.pt") as tmp:
        shutil.copyfile(shorter.dir / "checkpoint.pt", tmp)
    print(f"[runs] run {key[:12]} continues run {shorter.key[:12]} from its step {shorter.train_config['steps']}",
          file=sys.stderr, flush=True)
    history = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)["history"]
    return float(history[-1]["time_s"])


def _config(recipe: Recipe, key: str, existing: dict | None) -> dict:
    return keys.jsonable({
        "key": key, "model_name": recipe.model_name, "module": recipe.module,
        "model_config": asdict(recipe.model_cfg), "train_config": asdict(recipe.train_cfg), "data": recipe.data,
        "producers": keys.closure((recipe.module, *recipe.producers)), "colorlab_version": colorlab.__version__,
        "command": recipe.command,
        "created": (existing or {}).get("created") or _dt.datetime.now().isoformat(timespec="seconds"),
    })


def get(recipe: Recipe, *, progress: bool = True, resume: bool = True) -> Run:
    """The finished run of `recipe` if there is one (verified); else train it, resuming an interrupted one.

    A finished run whose weights fail verification is trained again (from its last
    checkpoint when that is complete). `resume=False` starts an unfinished run over.
    """
    key = recipe.key
    folder = run_dir(recipe.model_name, key)
    with _lock(folder):
        existing = _read_config(folder)
        if existing is not None and existing.get("key") != key:
            raise ColorlabError(f"holds run {existing.get('key')}, not {key}: a 12-digit key clash", path=folder,
                                fix=f"move {folder} away")
        run = Run(key, folder, existing or {})
        if existing is not None and run.done:
            try:
                run.verify()
                return run
            except CorruptFileError as err:
                print(f"[runs] {err.line()}; training it again", file=sys.stderr, flush=True)
        return _train(recipe, key, folder, existing, progress, resume)


def _train(recipe: Recipe, key: str, folder: Path, existing: dict | None, progress: bool, resume: bool) -> Run:
    config = _config(recipe, key, existing)
    run = Run(key, folder, config)
    world = training.init_distributed(training.resolve_device(getattr(recipe.train_cfg, "device", "cpu")))
    resuming = resume and (folder / "checkpoint.pt").exists()
    shorter = continued_from(recipe, resume) if world.size == 1 else None
    if shorter is not None:  # what it continues, and that run's training time (its CPU-seconds at its threads)
        seconds = _continue(shorter, folder, key)
        config["continues"] = {"key": shorter.key, "steps": shorter.train_config["steps"], "train_seconds": seconds,
                               "cpu_seconds": cpu_seconds({**shorter.metrics, "train_seconds": seconds})}
    elif resuming and "continues" in (existing or {}):  # a continued run, interrupted: keep where it came from
        config["continues"] = existing["continues"]
    if world.main:  # under torchrun only rank 0 writes
        atomic.write_text(folder / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
        (folder / "done").unlink(missing_ok=True)
    if recipe.fit is not None:
        model, metrics = recipe.fit(folder, progress, resume)
        config["model_config"] = keys.jsonable(asdict(model.cfg))  # e.g. the clusters Cheng's Alg. 3 found
        atomic.write_text(folder / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
        atomic.save_torch({"model": model.state_dict(), "config": config["model_config"],
                           "model_name": recipe.model_name, "key": key}, folder / "final.pt")
        run.update_metrics(**metrics)
    else:
        if world.size > 1 and not world.main:
            training.dist.barrier()  # rank 0 decodes (and caches) the data first
        train_arrays, val_arrays = recipe.load()
        if world.size > 1 and world.main:
            training.dist.barrier()
        training.seed_everything(recipe.train_cfg.seed)  # the initial weights
        model = network_module(config).build(recipe.model_cfg)
        try:
            result = training.fit(model, train_arrays, val_arrays, recipe.train_cfg, folder, resume=resume,
                                  progress=progress, meta={"model_name": recipe.model_name, "key": key})
        except training.CheckpointError as err:
            raise CorruptFileError(str(err), path=err.path,
                                   fix=f"{recipe.command} --no-resume (starts the run over)") from err
        model = result.model
        if world.main:
            _finish_metrics(run, result)
        if world.size > 1:
            training.dist.barrier()
    if world.main:
        _draw_curves(run)
        atomic.write_text(folder / "done", json.dumps({"finished": _dt.datetime.now().isoformat(timespec="seconds"),
                                                       "final_sha256": sha256(folder / "final.pt")}) + "\n")
    run._model = model.eval()
    return run


def _finish_metrics(run: Run, result: training.TrainResult) -> None:
    """metrics.json: last logged value of every curve; train_seconds = wall time of the whole
    run, validation and checkpoints included, summed over resumes; cpu_seconds = that times the
    threads, where a continued run counts the run it continued (config "continues") at its own."""
    h = result.history
    last = {c: float(h[c].dropna().iloc[-1]) for c in h.columns
            if c.startswith(("train_", "val_")) and h[c].notna().any()}
    trained_s = float(h["time_s"].iloc[-1]) if len(h) else 0.0
    steps = int(run.train_config["steps"])
    threads = torch.get_num_threads()
    cpu_s = trained_s * threads
    before = run.config.get("continues")
    if before:
        cpu_s = cpu_seconds(before) + (trained_s - float(before.get("train_seconds") or 0.0)) * threads
    run.update_metrics(steps=steps, train_seconds=trained_s, threads=threads, cpu_seconds=cpu_s,
                       samples_per_s=steps * int(run.train_config["batch_size"]) / trained_s if trained_s else None,
                       **last)


def cpu_seconds(metrics: dict) -> float:
    """A run's training CPU-seconds from its metrics: `cpu_seconds` where kept, else wall seconds times threads."""
    if metrics.get("cpu_seconds") is not None:
        return float(metrics["cpu_seconds"])
    return float(metrics.get("train_seconds") or np.nan) * int(metrics.get("threads") or 1)


def _draw_curves(run: Run) -> None:
    """loss_curves.png beside history.csv (a figure never fails a run)."""
    if run.history.empty:
        return
    try:
        import matplotlib.pyplot as plt

        from colorlab import plots

        fig = plots.loss_curves(run.history)
        fig = getattr(fig, "figure", fig)
        atomic.save_figure(fig, run.dir / "loss_curves.png", dpi=100)
        plt.close(fig)
    except Exception as err:  # noqa: BLE001 - the weights are saved already
        print(f"[runs] could not draw the loss curves of {run.dir}: {err}", file=sys.stderr)


# --- finding runs -----------------------------------------------------------------------
def all_runs(model_name: str | None = None) -> list[Run]:
    """Every run folder of `model_name` (None: of every model), finished or not, oldest first."""
    root = settings.runs_dir()
    if not root.exists():
        return []
    folders = root.glob(f"{model_name}/*") if model_name else root.glob("*/*")
    runs = [Run(c["key"], f, c) for f in sorted(folders) if (c := _read_config(f)) and "key" in c and "model_name" in c]
    return sorted(runs, key=lambda r: r.config.get("created", ""))


def load_run(model_name: str | None, key: str) -> Run:
    """The run whose key starts with `key` (at least 6 hex digits); model_name None searches all models."""
    if len(key) < 6:
        raise ColorlabError(f"give at least 6 digits of the run key, got {key!r}", fix="colorlab runs list")
    hits = [r for r in all_runs(model_name) if r.key.startswith(key)]
    if len(hits) != 1:
        where = settings.runs_dir() / (model_name or "*")
        raise ColorlabError(f"{'no' if not hits else len(hits)} runs with key {key}...", path=where,
                            fix="colorlab runs list" + ("" if not hits else " (give more digits)"))
    return hits[0]


def find_runs(model_name: str, done: bool = True, **filters) -> list[Run]:
    """Runs of `model_name` whose model or train config has every `field=value` of `filters`, oldest first."""
    def matches(run: Run) -> bool:
        cfg = {**run.train_config, **run.model_config}
        return all(k in cfg and cfg[k] == keys.jsonable(v) for k, v in filters.items())

    return [r for r in all_runs(model_name) if matches(r) and (r.done or not done)]
