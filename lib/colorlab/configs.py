"""Config dataclasses back from JSON (config.json, checkpoints, weights files), and the module that builds a model."""

from __future__ import annotations

import dataclasses
import importlib
import typing


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


def network_module(config: dict):
    """The network module a run was made with (config.json's `module`, or the registered model name)."""
    from colorlab import models

    name = config.get("module") or config["model_name"]
    return models.get(name) if name in models.MODULES else importlib.import_module(name)
