"""Weights files: a finished run as one self-describing safetensors file, and a model rebuilt from one.

The file holds tensors only (nothing pickled); its metadata names the model,
its config, training config, data, metrics, colorlab version and run key.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

import colorlab
from colorlab import atomic
from colorlab.configs import config_from_dict, network_module
from colorlab.errors import ColorlabError, CorruptFileError

EXPORT_FORMAT = "colorlab-weights/1"


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
