"""Classifier embeddings of decoded image sets, computed once per image and cached.

Deep Koalarization (Baldassarre et al. 2017) fuses a frozen classifier's
1001-d output into the colorizer. The classifier never changes during
training, so its output on each training image is computed once here, on the
image's GRAYSCALE version (`color.rgb_to_gray`, replicated to 3 channels, the
paper's input), and stored as float32 (N, 1001) logits under
`settings.cache_dir()/embeddings/`. The key is the classifier's identity (its
weight file's SHA-256, or "random" and the seed), the decoded array set (its
cache folder, which names dataset, split, size, limit and a digest of the file
list), the classifier input size and the code of this module and of every
colorlab module it imports (`colorlab.keys`): editing `embed_gray` recomputes
every cached embedding, editing a comment or docstring does not.

An approximation, stated: `colorlab.train` crops and flips the images *after*
this, so a training sample's embedding is that of the whole, unflipped
image. A flip does not change what the scene is; a crop drops its border
(the Koalarization presets train without crops, as the official code does).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from colorlab import atomic, color, keys, settings
from colorlab.models import mobilenet_v2
from colorlab.models.koalarization2017 import embed_gray  # the network's own embedding, computed once here


@torch.no_grad()
def compute(classifier: torch.nn.Module, rgb_u8: np.ndarray, size: int = mobilenet_v2.INPUT_SIZE,
            batch_size: int = 32, device: str | torch.device = "cpu", progress: bool = False) -> np.ndarray:
    """uint8 colour images (N, H, W, 3) -> float32 (N, 1001) embeddings of their grayscale versions."""
    device = torch.device(device)
    classifier = classifier.to(device).eval()
    out = np.empty((len(rgb_u8), mobilenet_v2.NUM_CLASSES), dtype=np.float32)
    for start in tqdm(range(0, len(rgb_u8), batch_size), desc="classifier embeddings", disable=not progress, leave=False):
        rgb = color.to_float(np.asarray(rgb_u8[start : start + batch_size])).to(device)  # (b, 3, H, W)
        out[start : start + len(rgb)] = embed_gray(classifier, color.rgb_to_gray(rgb), size).cpu().numpy()
    return out


def cache_key(classifier: mobilenet_v2.ClassifierConfig, images_id: str, size: int) -> str:
    parts = {"classifier": mobilenet_v2.identity(classifier), "images": images_id, "size": int(size)}
    return keys.key(parts, [__name__])


def cache_path(classifier: mobilenet_v2.ClassifierConfig, images_id: str, size: int) -> Path:
    key = cache_key(classifier, images_id, size)
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in images_id)[:60]
    return settings.cache_dir() / "embeddings" / f"{stem}-{classifier.name}-{size}px-{key[:16]}.npy"


def cached(classifier: mobilenet_v2.ClassifierConfig, rgb_u8: np.ndarray, images_id: str,
           size: int = mobilenet_v2.INPUT_SIZE, device: str | torch.device = "cpu", progress: bool = True) -> tuple[np.ndarray, str]:
    """(embeddings (N, 1001) float32, cache key) of `rgb_u8`, computed on the first call only.

    `images_id` must name the images exactly (e.g. the decoded cache folder's name).
    """
    path = cache_path(classifier, images_id, size)
    key = path.stem
    if path.is_file():
        emb = np.load(path, mmap_mode="r")
        if emb.shape == (len(rgb_u8), mobilenet_v2.NUM_CLASSES):
            return emb, key
    emb = compute(mobilenet_v2.load(classifier), rgb_u8, size, device=device, progress=progress)
    buf = io.BytesIO()
    np.save(buf, emb)
    atomic.write_bytes(path, buf.getvalue())
    return np.load(path, mmap_mode="r"), key


def for_spec(spec, classifier: mobilenet_v2.ClassifierConfig, size: int = mobilenet_v2.INPUT_SIZE,
             device: str | torch.device = "cpu", progress: bool = True) -> tuple[np.ndarray, str]:
    """(embeddings, cache key) of a `profiles.DataSpec`'s decoded images (`data.decoded`), index-aligned."""
    from colorlab import data

    dec = data.decoded(spec.name, spec.split, spec.size, spec.limit, progress=progress)
    images_id = Path(dec.path).name
    if spec.name not in data.REGISTRY:  # a user's folder: named by its content, so moving it keeps the cache
        from colorlab.data import folder

        images_id = f"folder-{folder.content_digest(Path(spec.name), spec.split)[:16]}-{spec.size}-{spec.limit}"
    return cached(classifier, dec.rgb, images_id, size, device, progress)


def extras(train_spec, val_spec, classifier: mobilenet_v2.ClassifierConfig, size: int = mobilenet_v2.INPUT_SIZE,
           device: str | torch.device = "cpu", progress: bool = True) -> dict:
    """`{"embedding": (train, val, identity)}`: the extras of a recipe (`experiments.images.recipe(..., extras=...)`)."""
    train, train_key = for_spec(train_spec, classifier, size, device, progress)
    val, val_key = (None, "none") if val_spec is None else for_spec(val_spec, classifier, size, device, progress)
    return {"embedding": (train, val, f"{train_key} | {val_key}")}
