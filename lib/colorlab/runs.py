"""Trained runs, keyed by everything that shaped their weights.

A run's key is the SHA-256 of (model name, model config, train config, data
specs, extra arrays' identities, code version), where the code version is
`colorlab.__version__` plus a digest of the model's source file, `train.py` and
`color.py` (which makes the targets). Change any of them and the key changes,
so a stale run is never reused; ask again with the same ones and the finished
run is loaded instead of trained, or an interrupted one resumed.

    <runs_dir>/<model_name>/<key[:12]>/
        config.json     everything needed to rebuild the model and repeat the run
        checkpoint.pt   model + optimizer + RNG + history (colorlab.train), for resuming
        history.csv     loss / validation curves
        final.pt        the trained weights {"model", "config", "model_name", ...}
        metrics.json    final numbers; notebooks may add their own (Run.update_metrics)
        done            written last: the run is complete

Two processes asking for the same unfinished run take turns: the second waits on
the run folder's lock file (POSIX `flock`) and then loads what the first trained.
Under torchrun the ranks coordinate among themselves and take no lock. `export(run, path)` writes one self-describing
safetensors file (metadata: model_name, config, train_config, data, metrics,
colorlab_version, key); `load_exported(path)` rebuilds the model from it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import importlib
import json
import os
import sys
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

import colorlab
from colorlab import reports, settings
from colorlab import train as training

EXPORT_FORMAT = "colorlab-weights/1"


# --- keys ------------------------------------------------------------------------
def model_module(model_name: str):
    """`colorlab.models.get(name)`, or any importable module with `Config` and `build` (dotted name)."""
    from colorlab import models

    if model_name in models.MODULES or "." not in model_name:
        return models.get(model_name)
    return importlib.import_module(model_name)


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def code_version(model_name: str) -> str:
    """colorlab version + a digest of the model's source, train.py and color.py."""
    from colorlab import color

    files = [Path(model_module(model_name).__file__), Path(training.__file__), Path(color.__file__)]
    return f"{colorlab.__version__}+{_digest(*(f.read_bytes() for f in files))[:16]}"


def array_identity(array: np.ndarray) -> str:
    """Who an extra array is, without hashing it when avoidable: a memmap is its file; else its bytes."""
    filename = getattr(array, "filename", None)
    if filename:
        stat = os.stat(filename)
        return f"file:{filename}:{array.dtype}:{array.shape}:{stat.st_size}:{stat.st_mtime_ns}"
    a = np.ascontiguousarray(array)
    return f"sha256:{hashlib.sha256(a.view(np.uint8).reshape(-1)).hexdigest()}:{a.dtype}:{a.shape}"


def extras_identity(extras: dict | None) -> dict[str, str]:
    """extras: name -> (train, val) or (train, val, identity string, e.g. the cache key that made them)."""
    out = {}
    for name, value in (extras or {}).items():
        if len(value) == 3:
            out[name] = str(value[2])
        elif len(value) == 2:
            out[name] = " | ".join("none" if a is None else array_identity(a) for a in value)
        else:
            raise ValueError(f"extras[{name!r}] must be (train, val) or (train, val, identity), got {len(value)} items")
    return out


def key_payload(model_name: str, model_cfg: Any, train_cfg: training.TrainConfig, data: dict) -> dict:
    train = {k: v for k, v in asdict(train_cfg).items() if k not in training.NOT_IN_KEY}
    return training._jsonable({"model_name": model_name, "model_config": asdict(model_cfg), "train_config": train,
                               "data": data, "code_version": code_version(model_name)})


def run_key(model_name: str, model_cfg: Any, train_cfg: training.TrainConfig, data: dict) -> str:
    """SHA-256 of the key payload (canonical JSON)."""
    payload = key_payload(model_name, model_cfg, train_cfg, data)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _spec_dict(spec) -> dict | None:
    return None if spec is None else asdict(spec)


def data_description(train_spec, val_spec, extras: dict | None = None) -> dict:
    return {"train": _spec_dict(train_spec), "val": _spec_dict(val_spec), "extras": extras_identity(extras)}


# --- configs back from JSON ---------------------------------------------------------
def config_from_dict(cls, values: dict):
    """Rebuild a (possibly nested) config dataclass from its `asdict`; lists go back to tuples
    where the field is a tuple. Unknown fields are an error (the code has changed)."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"{cls.__qualname__} has no fields {sorted(unknown)}: the run was made by other code")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back on the defaults' types
        hints = {}
    kwargs = {}
    for name, value in values.items():
        f = known[name]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        hint = hints.get(name)
        nested = type(default) if dataclasses.is_dataclass(default) else (hint if dataclasses.is_dataclass(hint) else None)
        if nested is not None and isinstance(value, dict):
            value = config_from_dict(nested, value)
        elif isinstance(value, list) and (isinstance(default, tuple) or "tuple" in str(hint)):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


# --- runs ----------------------------------------------------------------------------
@dataclass
class Run:
    """A run folder. `.model` loads the trained weights (eval mode) on first use.

    `study.evaluate` scores a run once per evaluation set and caches the scores in its folder.
    """

    key: str
    dir: Path
    config: dict  # config.json: model_name, model_config, train_config, data, code_version, created
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
    def done(self) -> bool:
        return (self.dir / "done").exists() and (self.dir / "final.pt").exists()

    @property
    def history(self) -> pd.DataFrame:
        path = self.dir / "history.csv"
        return pd.read_csv(path) if path.exists() else pd.DataFrame()

    @property
    def metrics(self) -> dict:
        path = self.dir / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def update_metrics(self, **values) -> dict:
        merged = {**self.metrics, **training._jsonable(values)}
        reports.atomic_write_text(self.dir / "metrics.json", json.dumps(merged, indent=2, sort_keys=True) + "\n")
        return merged

    def build_model(self) -> nn.Module:
        """A fresh, untrained model of this run's config."""
        module = model_module(self.model_name)
        return module.build(config_from_dict(module.Config, self.model_config))

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            path = self.dir / "final.pt"
            if not path.exists():
                raise FileNotFoundError(f"run {self.key[:12]} ({self.dir}) has no final.pt: it has not finished")
            model = self.build_model()
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
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


def _finish(run: Run, result: training.TrainResult) -> None:
    """metrics.json (last logged value of every curve; train_seconds = wall time of the whole
    run, validation and checkpoints included, summed over resumes), then the `done` marker."""
    h = result.history
    last = {c: float(h[c].dropna().iloc[-1]) for c in h.columns
            if c.startswith(("train_", "val_")) and h[c].notna().any()}
    trained_s = float(h["time_s"].iloc[-1]) if len(h) else 0.0
    steps = int(run.train_config["steps"])
    run.update_metrics(steps=steps, train_seconds=trained_s,
                       samples_per_s=steps * int(run.train_config["batch_size"]) / trained_s if trained_s else None,
                       **last)
    reports.atomic_write_text(run.dir / "done", _dt.datetime.now().isoformat(timespec="seconds") + "\n")


@contextlib.contextmanager
def _lock(folder: Path):
    """Hold the run folder's lock while it is checked and trained (one process; no-op under torchrun or without flock)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        fcntl = None
    if fcntl is None or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[runs] {folder} is being trained by another process; waiting for it", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _train_or_load(model_name: str, model_cfg: Any, train_cfg: training.TrainConfig, data: dict,
                   load_arrays: Callable[[], tuple[dict, dict | None]], progress: bool, resume: bool) -> Run:
    key = run_key(model_name, model_cfg, train_cfg, data)
    folder = run_dir(model_name, key)
    with _lock(folder):
        return _train_or_load_locked(model_name, model_cfg, train_cfg, data, load_arrays, progress, resume, key, folder)


def _train_or_load_locked(model_name: str, model_cfg: Any, train_cfg: training.TrainConfig, data: dict,
                          load_arrays: Callable[[], tuple[dict, dict | None]], progress: bool, resume: bool,
                          key: str, folder: Path) -> Run:
    existing = _read_config(folder)
    if existing is not None and existing.get("key") != key:
        raise RuntimeError(f"{folder} holds run {existing.get('key')}, not {key}: a 12-digit key clash; move it away")
    run = Run(key, folder, existing or {})
    if existing is not None and run.done:
        return run
    config = training._jsonable({
        "key": key, "model_name": model_name, "model_config": asdict(model_cfg), "train_config": asdict(train_cfg),
        "data": data, "code_version": code_version(model_name), "colorlab_version": colorlab.__version__,
        "created": (existing or {}).get("created") or _dt.datetime.now().isoformat(timespec="seconds"),
    })
    run.config = config
    world = training.init_distributed(training.resolve_device(train_cfg.device))
    if world.main:  # under torchrun only rank 0 writes
        reports.atomic_write_text(folder / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
        (folder / "done").unlink(missing_ok=True)
    if world.size > 1 and not world.main:
        training.dist.barrier()  # rank 0 decodes (and caches) the data first
    train_arrays, val_arrays = load_arrays()
    if world.size > 1 and world.main:
        training.dist.barrier()
    training.seed_everything(train_cfg.seed)  # the initial weights
    model = model_module(model_name).build(model_cfg)
    result = training.fit(model, train_arrays, val_arrays, train_cfg, folder, resume=resume, progress=progress,
                          meta={"model_name": model_name, "key": key})
    if world.main:
        _finish(run, result)
    if world.size > 1:
        training.dist.barrier()
    run._model = result.model.eval()
    return run


def train_or_load(model_name: str, model_cfg: Any, train_cfg: training.TrainConfig, train_spec, val_spec,
                  extras: dict | None = None, *, progress: bool = True, resume: bool = True) -> Run:
    """The finished run of this config if there is one; else train it (resuming an interrupted one).

    train_spec / val_spec: `colorlab.profiles.DataSpec` (val_spec may be None), decoded with
    `colorlab.data.decoded`. extras: name -> (train array, val array[, identity]) of extra per-sample
    arrays aligned with the decoded images (e.g. classifier embeddings); give the identity (the
    cache key that made them) when you have it, else the memmap file or the bytes are hashed.
    `resume=False` starts an unfinished run over (a finished one is still reused).
    """
    data = data_description(train_spec, val_spec, extras)

    def load() -> tuple[dict, dict | None]:
        from colorlab import data as datasets

        def arrays(spec, which: int) -> dict | None:
            if spec is None:
                return None
            dec = datasets.decoded(spec.name, spec.split, spec.size, spec.limit, progress=progress)
            out = {"rgb": dec.rgb, "label": np.asarray(dec.labels, dtype=np.int64)}
            for name, value in (extras or {}).items():
                if value[which] is None:
                    continue
                if len(value[which]) != len(dec.rgb):
                    raise ValueError(f"extras[{name!r}] has {len(value[which])} rows, {spec} has {len(dec.rgb)} images")
                out[name] = value[which]
            return out

        return arrays(train_spec, 0), arrays(val_spec, 1)

    return _train_or_load(model_name, model_cfg, train_cfg, data, load, progress, resume)


def train_or_load_arrays(model_name: str, model_cfg: Any, train_cfg: training.TrainConfig,
                         train_arrays: dict[str, np.ndarray], val_arrays: dict[str, np.ndarray] | None,
                         data_id: str | dict, *, progress: bool = True, resume: bool = True) -> Run:
    """`train_or_load` for arrays made elsewhere (e.g. Cheng's per-pixel features):
    `data_id` names them (the cache key that made them) and goes into the run key."""
    return _train_or_load(model_name, model_cfg, train_cfg, {"arrays": data_id},
                          lambda: (train_arrays, val_arrays), progress, resume)


def _all_runs(model_name: str | None = None) -> list[Run]:
    root = settings.runs_dir()
    if not root.exists():
        return []
    folders = root.glob(f"{model_name}/*") if model_name else root.glob("*/*")
    # other trained artefacts share the folder (e.g. the scene parser's cache): keep colorization runs only
    runs = [Run(c["key"], f, c) for f in sorted(folders) if (c := _read_config(f)) and "key" in c and "model_name" in c]
    return sorted(runs, key=lambda r: r.config.get("created", ""))


def load_run(model_name: str | None, key: str) -> Run:
    """The run whose key starts with `key` (at least 6 hex digits); model_name None searches all models."""
    if len(key) < 6:
        raise ValueError(f"give at least 6 digits of the run key, got {key!r}")
    hits = [r for r in _all_runs(model_name) if r.key.startswith(key)]
    if len(hits) != 1:
        where = settings.runs_dir() / (model_name or "*")
        raise LookupError(f"{'no' if not hits else len(hits)} runs with key {key}... under {where}"
                          + ("" if not hits else ": give more digits"))
    return hits[0]


def find_runs(model_name: str, done: bool = True, **filters) -> list[Run]:
    """Runs of `model_name` whose model or train config has every `field=value` of `filters`, oldest first."""
    def matches(run: Run) -> bool:
        cfg = {**run.train_config, **run.model_config}
        return all(k in cfg and cfg[k] == training._jsonable({"v": v})["v"] for k, v in filters.items())

    return [r for r in _all_runs(model_name) if matches(r) and (r.done or not done)]


def _summary(run: Run) -> str:
    try:
        defaults = asdict(model_module(run.model_name).Config())
    except Exception:  # noqa: BLE001 - a model that is gone still lists
        defaults = {}
    d = training._jsonable(defaults)
    changed = {k: v for k, v in run.model_config.items() if d.get(k) != v}
    t = run.train_config
    parts = [f"{k}={v}" for k, v in changed.items()]
    parts += [f"{t['optimizer']} lr={t['lr']}", f"batch={t['batch_size']}", f"seed={t['seed']}"]
    return ", ".join(parts)


def _data_summary(data: dict) -> str:
    spec = data.get("train")
    if not spec:
        return str(data.get("arrays", ""))[:40]
    limit = f" limit {spec['limit']}" if spec.get("limit") else ""
    return f"{spec['name']}/{spec['split']}@{spec['size']}{limit}"


def list_runs(model_name: str | None = None) -> pd.DataFrame:
    """One row per run: method, key, config summary, data, steps, final metrics, date, status."""
    rows = []
    for run in _all_runs(model_name):
        m = run.metrics
        history = run.history
        rows.append({
            "method": run.model_name, "key": run.key[:12], "config": _summary(run),
            "data": _data_summary(run.config.get("data", {})),
            "steps": int(history["step"].iloc[-1]) if len(history) else 0,
            "target_steps": run.train_config.get("steps"),
            "val_loss": m.get("val_loss"), "val_top1": m.get("val_top1"), "train_seconds": m.get("train_seconds"),
            "date": run.config.get("created"), "status": "done" if run.done else "unfinished",
        })
    columns = ["method", "key", "config", "data", "steps", "target_steps", "val_loss", "val_top1",
               "train_seconds", "date", "status"]
    return pd.DataFrame(rows, columns=columns)


# --- export ----------------------------------------------------------------------------
def export(run: Run, path: Path) -> Path:
    """The run's weights as one safetensors file whose metadata describes it (written atomically)."""
    from safetensors.torch import save_file

    if not run.done:
        raise ValueError(f"run {run.key[:12]} has not finished; nothing to export")
    tensors = {k: v.detach().cpu().contiguous() for k, v in run.model.state_dict().items()}
    metadata = {
        "format": EXPORT_FORMAT, "colorlab_version": colorlab.__version__, "model_name": run.model_name,
        "key": run.key, "code_version": run.config.get("code_version", ""),
        "config": json.dumps(run.model_config, sort_keys=True),
        "train_config": json.dumps(run.train_config, sort_keys=True),
        "data": json.dumps(run.config.get("data", {}), sort_keys=True),
        "metrics": json.dumps(run.metrics, sort_keys=True),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o644)  # safetensors writes 0600; a file handed to a class must be readable
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_exported(path: Path) -> tuple[nn.Module, dict]:
    """(model in eval mode, metadata with the JSON fields parsed) from a file written by `export`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata() or {}
    if "model_name" not in raw or "config" not in raw:
        raise ValueError(f"{path} is not a colorlab weights file (no model_name / config in its metadata)")
    meta = {k: (json.loads(v) if k in ("config", "train_config", "data", "metrics") else v) for k, v in raw.items()}
    module = model_module(meta["model_name"])
    model = module.build(config_from_dict(module.Config, meta["config"]))
    model.load_state_dict(load_file(str(path)))
    return model.eval(), meta


# --- command line: `colorlab runs list | export` ------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("list", help="list trained runs")
    p.add_argument("--model", help="only this model")
    p = sub.add_parser("export", help="write a run's weights to one safetensors file")
    p.add_argument("key", help="run key (at least 6 leading digits)")
    p.add_argument("out", type=Path, help="output file (.safetensors)")
    p.add_argument("--model", help="model name, to narrow the key search")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        df = list_runs(args.model)
        if df.empty:
            print(f"no runs under {settings.runs_dir()}")
        else:
            print(df.to_markdown(index=False, floatfmt=".4g"))
        return 0
    try:
        found = load_run(args.model, args.key)
        out = export(found, args.out)
    except (LookupError, ValueError) as err:
        print(f"colorlab runs export: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({found.model_name}, run {found.key[:12]})")
    return 0
