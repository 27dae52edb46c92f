"""colorlab's datasets: a registry of public sources, parsers of their original layouts,
and a decoded-array cache.

    from colorlab import data
    data.samples("miniplaces", "train")      # [Sample(path, label, name, objects)], sorted
    data.class_names("miniplaces")           # ["abbey", ..., "bakery/shop", ...]
    data.decoded("miniplaces", "train", 64, limit=10_000)   # uint8 arrays, cached on disk
    data.path("mobilenet_v2")                # a dataset's folder, or DatasetMissingError

Datasets live under `settings.data_dir()` (COLORLAB_DATA; default <repo>/data)
in their original layout; `colorlab data fetch NAME` downloads and verifies
one, `colorlab data verify NAME` checks a folder against its digests. Names:
miniplaces (train, val), kodak24 (all), sun8 (train, test, all),
imagenet-sample (all), smoke (train, val; photos shipped with scikit-image
and scikit-learn, no download), mobilenet_v2 (a model file), or the path of
any folder of images (split "all", or a subfolder's name).
"""

from colorlab.data.cache import Decoded, balanced_subset, cache_path, decoded
from colorlab.data.loaders import class_names, object_names, samples
from colorlab.data.registry import REGISTRY, Dataset, DatasetMissingError, Source, get, path
from colorlab.data.sample import Sample
from colorlab.images import ImageReadError, read_rgb

__all__ = [
    "REGISTRY", "Dataset", "DatasetMissingError", "Decoded", "ImageReadError", "Sample", "Source",
    "balanced_subset", "cache_path", "class_names", "decoded", "get", "object_names", "path", "read_rgb", "samples",
]
