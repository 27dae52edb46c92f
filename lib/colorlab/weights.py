"""Weights files: a finished run as one self-describing safetensors file, a model rebuilt from one,
and the small trained models the project ships.

A file holds tensors only (nothing pickled); its metadata names the model,
its config, training config, data, metrics, colorlab version and run key.

Shipped weights (`weights_dir()`, `weights/` in the repository):
one file per paper (`SHIPPED`), each with a model card (`<file>.md`), and
`MANIFEST.sha256` (the format of `sha256sum`) holding every file's digest.
`load_shipped(name)` checks the digest before it reads a byte of the file,
so a truncated or replaced file is a clear error. `make weights`
(`colorlab weights build`) retrains them from scratch and rewrites all three.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

import colorlab
from colorlab import atomic, keys, settings
from colorlab.configs import config_from_dict, network_module
from colorlab.errors import ColorlabError, CorruptFileError

EXPORT_FORMAT = "colorlab-weights/1"
# The shipped model of each paper, at the cpu preset, seed 0; the default is the one that needs no data.
SHIPPED = {"iizuka2016": "iizuka2016-cpu.safetensors", "koalarization2017": "koalarization2017-cpu.safetensors",
           "cheng2015": "cheng2015-cpu.safetensors"}
DEFAULT = "iizuka2016"
MANIFEST = "MANIFEST.sha256"


def weights_dir() -> Path:
    """The shipped weights folder: COLORLAB_WEIGHTS, else <repo>/weights."""
    return settings._from_env("COLORLAB_WEIGHTS", settings.REPO_ROOT / "weights")


def export(run, path: Path) -> Path:
    """The run's weights as one safetensors file whose metadata describes it (written atomically)."""
    from safetensors.torch import save_file

    if not run.done:
        raise ColorlabError(f"run {run.key[:12]} has not finished; nothing to export", path=run.dir, fix=run.command)
    tensors = {k: v.detach().cpu().contiguous() for k, v in run.model.state_dict().items()}
    metadata = {
        "format": EXPORT_FORMAT, "colorlab_version": colorlab.__version__, "model_name": run.model_name,
        "module": run.config.get("module", ""), "key": run.key,
        "config": json.dumps(run.model_config, sort_keys=True),
        "train_config": json.dumps(run.train_config, sort_keys=True),
        "data": json.dumps(run.config.get("data", {}), sort_keys=True),
        "metrics": json.dumps(run.metrics, sort_keys=True),
    }
    with atomic.writing(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def load_exported(path: Path) -> tuple[nn.Module, dict]:
    """(model in eval mode, metadata with the JSON fields parsed) from a file written by `export`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as err:  # noqa: BLE001 - a header that does not parse
        raise CorruptFileError(f"not a readable safetensors file ({err})", path=path) from err
    if "model_name" not in raw or "config" not in raw:
        raise ColorlabError("not a colorlab weights file (no model_name / config in its metadata)", path=path)
    meta = {k: (json.loads(v) if k in ("config", "train_config", "data", "metrics") else v) for k, v in raw.items()}
    module = network_module(meta)
    model = module.build(config_from_dict(module.Config, meta["config"]))
    model.load_state_dict(load_file(str(path)))
    return model.eval(), meta


# --- shipped weights ---------------------------------------------------------------------
sha256 = keys.file_sha256


def read_manifest(folder: Path | None = None) -> dict[str, str]:
    """file name -> SHA-256 of `MANIFEST.sha256` (empty when there is none)."""
    path = Path(folder or weights_dir()) / MANIFEST
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if len(digest) == 64 and name:
            out[name] = digest
    return out


def write_manifest(folder: Path) -> Path:
    """`MANIFEST.sha256` of every .safetensors file in `folder` (sorted, `sha256sum -c` compatible)."""
    lines = [f"{sha256(f)}  {f.name}" for f in sorted(Path(folder).glob("*.safetensors"))]
    return atomic.write_text(Path(folder) / MANIFEST, "\n".join(lines) + "\n")


def shipped_path(name: str | None = None, folder: Path | None = None) -> Path:
    """The shipped weights file of model `name` (default: `DEFAULT`), verified against the manifest."""
    name = name or DEFAULT
    if name not in SHIPPED:
        raise ColorlabError(f"no shipped weights for {name!r}; shipped: {sorted(SHIPPED)}")
    folder = Path(folder or weights_dir())
    path = folder / SHIPPED[name]
    if not path.exists():
        raise ColorlabError("the shipped weights file is missing", path=path,
                            fix="make weights, or pass --checkpoint FILE / --run KEY")
    expected = read_manifest(folder).get(path.name)
    if expected is None:
        raise CorruptFileError(f"not listed in {MANIFEST}", path=path, fix="make weights")
    if sha256(path) != expected:
        raise CorruptFileError(f"its SHA-256 differs from {folder / MANIFEST} (damaged or replaced)", path=path,
                               fix="git checkout -- weights/  (or `make weights` to retrain them)")
    return path


def load_shipped(name: str | None = None, folder: Path | None = None) -> tuple[nn.Module, dict]:
    """(model in eval mode, metadata) of a shipped weights file, after checking its digest."""
    path = shipped_path(name, folder)
    model, meta = load_exported(path)
    meta["path"] = str(path)
    return model, meta
