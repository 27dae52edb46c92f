"""`samples(name, split)` and `class_names(name)`: one call in front of every dataset parser.

`name` is a registered dataset (`registry.REGISTRY`) or the path of any
folder of images (`colorlab.data.folder`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from colorlab.data import registry
from colorlab.data.sample import Sample


def resolve(name: str | Path) -> tuple[str, Path, ModuleType]:
    """(id, folder, parser module) of a dataset name or an image folder.

    The id is the registered name, or the folder's absolute path.
    """
    if isinstance(name, str) and name in registry.REGISTRY:
        ds = registry.REGISTRY[name]
        if ds.parser is None:
            raise ValueError(f"{name!r} is a model file, not an image dataset (see colorlab.models.{name})")
        return name, registry.path(name), importlib.import_module(ds.parser)
    folder = Path(name).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        return str(folder), folder, importlib.import_module("colorlab.data.folder")
    if isinstance(name, Path) or "/" in name or "\\" in name or name.startswith((".", "~")):
        raise FileNotFoundError(f"{folder}: no such folder of images")
    raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(registry.REGISTRY)} or give a folder path")


def _check_split(name: str | Path, split: str) -> None:
    ds = registry.REGISTRY.get(name) if isinstance(name, str) else None
    if ds is not None and split not in ds.splits:
        raise ValueError(f"dataset {name!r} has no split {split!r}; choose one of {list(ds.splits)}")


def samples(name: str | Path, split: str) -> list[Sample]:
    """Every image of a split, in a deterministic order (sorted by `Sample.name`)."""
    _, root, parser = resolve(name)
    _check_split(name, split)
    return parser.samples(root, split)


def class_names(name: str | Path, split: str = "all") -> list[str]:
    """Names of the class labels of a dataset, by label; [] when it has no labels.

    `split` matters only for a user's folder (its classes are the subfolders
    of the split's folder).
    """
    _, root, parser = resolve(name)
    if parser.__name__ == "colorlab.data.folder":
        return parser.class_names(root, split)
    return parser.class_names(root)


def object_names(name: str = "miniplaces") -> list[str]:
    """Object categories of the per-pixel object maps (MiniPlaces only)."""
    if name != "miniplaces":
        raise ValueError(f"dataset {name!r} has no object annotations; only 'miniplaces' does")
    from colorlab.data import miniplaces

    return miniplaces.object_names(registry.path(name))
