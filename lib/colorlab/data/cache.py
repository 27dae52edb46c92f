"""`decoded(name, split, size, limit)`: a dataset split decoded once into uint8 arrays on disk.

Training never waits on JPEG decoding: the first call reads every image,
keeps the colour ones, resizes them to `size` x `size` and saves the arrays
with `np.save`; later calls open them with `np.load(mmap_mode="r")`.

- Resize: area interpolation (`cv2.INTER_AREA`, which antialiases when
  shrinking) of the *whole* image to a square: non-square photos are
  squashed, not cropped, so no part of a scene is lost (MiniPlaces is square
  already). Training crops happen later, in `colorlab.train`.
- Kept: colour images only. Grayscale originals (R == G == B everywhere,
  `images.is_grayscale`) have no colour ground truth and unreadable files
  cannot be used; both are left out and listed in `Decoded.skipped`, with the
  reason in `Decoded.reasons`.
- `limit`: a deterministic class-balanced subset of at most `limit` images,
  chosen before decoding: round-robin over the classes in sorted label order,
  taking each class's images in dataset order. Skipped images are not
  replaced, so a subset can hold fewer than `limit`.
- MiniPlaces object maps (`Decoded.objects`): rasterised at 128x128 (the
  annotation's grid, see `colorlab.data.miniplaces`), then resized with
  nearest neighbour; 255 = no object, also for every image without an XML.
- Key: the cache folder's name holds the dataset, split, size, limit and a
  key (`colorlab.keys`) of those, of the chosen files (name, label, byte size
  of image and XML) and of this module's code and all it imports, so a changed
  file list or decoding rule never reuses a stale cache. The folder is written
  under a temporary name and renamed into place (`atomic.replacing_dir`), so an
  interrupted decode leaves nothing that looks finished.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colorlab import atomic, images, keys, settings
from colorlab.data import loaders, registry
from colorlab.data.sample import Sample

CHUNK = 256  # images per task: small enough for a smooth progress bar
GRAYSCALE = "grayscale original (no colour ground truth)"


@dataclass
class Decoded:
    rgb: np.ndarray  # uint8 (N, size, size, 3), usually a read-only memmap
    labels: np.ndarray  # int64 (N,), -1 = no label
    names: list[str]
    objects: np.ndarray | None = None  # uint8 (N, size, size) MiniPlaces object ids, 255 = none
    skipped: list[str] = field(default_factory=list)  # names left out
    reasons: dict[str, str] = field(default_factory=dict)  # name -> why it was left out
    path: Path | None = None  # the cache folder

    def __len__(self) -> int:
        return len(self.names)

    def arrays(self) -> dict[str, np.ndarray]:
        """Index-aligned per-sample arrays, as `colorlab.train.fit` takes them."""
        out = {"rgb": self.rgb, "label": self.labels}
        if self.objects is not None:
            out["objects"] = self.objects
        return out


def balanced_subset(samples: list[Sample], limit: int | None) -> list[Sample]:
    """At most `limit` samples, round-robin over labels in sorted order; dataset order kept."""
    if limit is None or limit >= len(samples):
        return list(samples)
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_label[s.label].append(i)
    queues = [by_label[k] for k in sorted(by_label)]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for q in queues:
            if depth < len(q):
                chosen.append(q[depth])
                if len(chosen) == limit:
                    break
        depth += 1
    return [samples[i] for i in sorted(chosen)]


def _size_of(path: Path | None) -> int:
    try:
        return path.stat().st_size if path else 0
    except OSError:
        return -1  # missing: decoding will report it; the key still differs from a present file


def cache_key(dataset: str, split: str, size: int, limit: int | None, samples: list[Sample]) -> str:
    files = [[s.name, s.label, _size_of(s.path), _size_of(s.objects)] for s in samples]
    return keys.key([dataset, split, size, limit, files], [__name__])


def _slug(dataset: str) -> str:
    if dataset in registry.REGISTRY:
        return dataset
    return "folder-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(dataset).name)[:40]


def cache_path(name: str, split: str, size: int, limit: int | None = None) -> Path:
    """The folder `decoded(name, split, size, limit)` reads or would write."""
    dataset, samples = _chosen(name, split, limit)
    return _folder(dataset, split, size, limit, samples)


def _chosen(name: str, split: str, limit: int | None) -> tuple[str, list[Sample]]:
    dataset, _, _ = loaders.resolve(name)
    return dataset, balanced_subset(loaders.samples(name, split), limit)


def _folder(dataset: str, split: str, size: int, limit: int | None, samples: list[Sample]) -> Path:
    key = cache_key(dataset, split, size, limit, samples)
    label = f"{_slug(dataset)}-{split}-{size}px-{'all' if limit is None else limit}-{key[:16]}"
    return settings.cache_dir() / "decoded" / label


def decoded(name: str, split: str, size: int, limit: int | None = None, *,
            workers: int | None = None, progress: bool = True) -> Decoded:
    """The colour images of a split as uint8 (N, size, size, 3), decoded once and cached on disk.

    `workers`: decoding threads (default: up to 2, the CPU count permitting).
    """
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    dataset, samples = _chosen(name, split, limit)
    if not samples:
        raise ValueError(f"dataset {name!r} split {split!r} holds no images")
    folder = _folder(dataset, split, int(size), limit, samples)
    if not (folder / "meta.json").is_file():
        # two processes decoding the same split (two runs trained side by side) take turns: the second loads
        # the first one's folder instead of replacing it while the first reads it
        lock = settings.cache_dir() / "locks" / f"decoded-{folder.name}.lock"
        with atomic.exclusive(lock, f"[data] waiting for another process decoding {folder.name}"):
            if not (folder / "meta.json").is_file():
                with_objects = dataset == "miniplaces" or any(s.objects is not None for s in samples)
                _build(folder, samples, int(size), with_objects, workers, progress, f"decoding {name} {split} at {size}px")
    return load(folder)


def load(folder: Path) -> Decoded:
    meta = json.loads((folder / "meta.json").read_text())
    objects = np.load(folder / "objects.npy", mmap_mode="r") if meta["objects"] else None
    return Decoded(
        rgb=np.load(folder / "rgb.npy", mmap_mode="r"),
        labels=np.load(folder / "labels.npy"),
        names=meta["names"],
        objects=objects,
        skipped=list(meta["reasons"]),
        reasons=meta["reasons"],
        path=folder,
    )


def decode_one(sample: Sample, size: int, with_objects: bool) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """(rgb (size, size, 3), object map or None, None) or (None, None, why it is skipped)."""
    import cv2

    try:
        rgb = images.read_rgb(sample.path)
    except images.ImageReadError as e:
        return None, None, f"unreadable: {e}"
    if images.is_grayscale(rgb):
        return None, None, GRAYSCALE
    if rgb.shape[:2] != (size, size):
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    objects = None
    if with_objects:
        from colorlab.data import miniplaces

        if sample.objects is None:
            objects = np.full((size, size), miniplaces.NO_OBJECT, dtype=np.uint8)
        else:
            try:
                objects = miniplaces.object_map(sample.objects, size)
            except (ValueError, OSError) as e:
                return None, None, f"bad object annotation: {e}"
    return rgb, objects, None


def _decode_chunk(chunk: list[Sample], size: int, with_objects: bool) -> list[tuple]:
    return [decode_one(s, size, with_objects) for s in chunk]


def _build(folder: Path, samples: list[Sample], size: int, with_objects: bool, workers: int | None, progress: bool,
           desc: str) -> None:
    from tqdm.auto import tqdm

    n = len(samples)
    with atomic.replacing_dir(folder) as tmp:
        rgb = np.lib.format.open_memmap(tmp / "rgb_all.npy", mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        objects = (np.lib.format.open_memmap(tmp / "objects_all.npy", mode="w+", dtype=np.uint8, shape=(n, size, size))
                   if with_objects else None)
        reasons: dict[str, str] = {}
        starts = range(0, n, CHUNK)
        workers = workers or min(2, os.cpu_count() or 1)
        # Threads, not processes: PIL's JPEG decoder and cv2.resize release the GIL, and threads
        # need no `if __name__ == "__main__"` guard in a user's script or a notebook.
        with ThreadPoolExecutor(max(1, workers)) as pool, tqdm(total=n, desc=desc, unit="img", disable=not progress) as bar:
            jobs = [pool.submit(_decode_chunk, samples[i:i + CHUNK], size, with_objects) for i in starts]
            try:
                for start, job in zip(starts, jobs):
                    for j, (img, objs, why) in enumerate(job.result()):
                        if why is not None:
                            reasons[samples[start + j].name] = why
                            continue
                        rgb[start + j] = img
                        if objects is not None:
                            objects[start + j] = objs
                    bar.update(min(CHUNK, n - start))
            except BaseException:  # e.g. Ctrl-C: do not wait for the chunks not yet started
                for job in jobs:
                    job.cancel()
                raise
        keep = [i for i, s in enumerate(samples) if s.name not in reasons]
        if not keep:
            first = next(iter(reasons.items()))
            raise ValueError(f"{desc}: none of the {n} images can be used (e.g. {first[0]}: {first[1]})")
        if reasons:
            kinds = Counter(why.split(":")[0].split(" (")[0] for why in reasons.values())
            warnings.warn(f"{desc}: left out {len(reasons)} of {n} images ({dict(kinds)}); see Decoded.reasons",
                          stacklevel=3)
        _compact(tmp, "rgb", rgb, keep)
        if objects is not None:
            _compact(tmp, "objects", objects, keep)
        np.save(tmp / "labels.npy", np.asarray([samples[i].label for i in keep], dtype=np.int64))
        meta = {"size": size, "names": [samples[i].name for i in keep],
                "reasons": reasons, "objects": objects is not None}
        (tmp / "meta.json").write_text(json.dumps(meta))


def _compact(tmp: Path, stem: str, full: np.memmap, keep: list[int]) -> None:
    """Write `full[keep]` as <stem>.npy without holding it all in memory."""
    full.flush()
    if len(keep) == len(full):
        del full
        os.replace(tmp / f"{stem}_all.npy", tmp / f"{stem}.npy")
        return
    out = np.lib.format.open_memmap(tmp / f"{stem}.npy", mode="w+", dtype=full.dtype, shape=(len(keep), *full.shape[1:]))
    for i in range(0, len(keep), 4096):
        out[i:i + 4096] = full[keep[i:i + 4096]]
    out.flush()
    del out, full
    (tmp / f"{stem}_all.npy").unlink()
