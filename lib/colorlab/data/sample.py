"""One image of a dataset, as every parser returns it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    path: Path  # the image file
    label: int = -1  # class index into `data.class_names(dataset)`; -1 = no label
    name: str = ""  # id relative to the dataset folder, unique within a split ("train/a/abbey/00000001.jpg")
    objects: Path | None = None  # MiniPlaces object annotation (XML) when the image has one
