"""The input builder of Cheng et al. 2015: features of random pixels of the reference images, cached.

Computing features is the expensive part of training Cheng's nets, so it is
done once per (feature config, parser weights, data, sampling) and kept as
.npy files under `settings.cache_dir()/cheng2015/pixels/<key>/`, keyed by
`keys.key(payload, ["colorlab.experiments.pixels"])`: any code edit in this
module's import closure (the features, the descriptors, the decoder) makes
new samples. The folder is written whole or not at all (`atomic.replacing_dir`).

This module does not import the run store: it is a producer of Cheng's runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from colorlab import atomic, clustering, color, features, keys, settings
from colorlab.models import cheng2015
from colorlab.profiles import DataSpec

PRODUCERS = ("colorlab.experiments.pixels",)


@dataclass
class PixelSamples:
    """Training pixels of a set of reference images, and one global summary per image."""

    x: np.ndarray  # (n, D) float32 features, levels of `levels`
    uv: np.ndarray  # (n, 2) float32 normalised U, V targets (color.cheng_uv_to_target)
    image: np.ndarray  # (n,) int32 index of the pixel's image
    gray: np.ndarray  # (n,) float32 gray value (the Y the colourisation keeps)
    truth: np.ndarray  # (n, 3) uint8 ground-truth RGB
    descriptors: np.ndarray  # (m, G) float32 clustering.global_descriptor of each image
    histograms: np.ndarray  # (m, N) float32 clustering.semantic_histogram (N = 0 without semantics)
    levels: tuple[str, ...]
    key: str = ""

    def arrays(self, cfg: cheng2015.Config | None = None) -> dict[str, np.ndarray]:
        """{"x", "uv"} for train.fit; `cfg` picks the columns of its feature levels (the ablation)."""
        return {"x": self.x if cfg is None else self.x[:, self.columns(cfg)], "uv": self.uv}

    def columns(self, cfg: cheng2015.Config) -> np.ndarray:
        have = features.dims(replace(cheng2015.feature_config(cfg), levels=self.levels))
        missing = [lv for lv in cfg.levels if lv not in self.levels]
        if missing:
            raise ValueError(f"these pixel samples hold levels {self.levels}, not {missing}")
        starts = np.cumsum([0] + [have[lv] for lv in self.levels])
        return np.concatenate([np.arange(starts[i], starts[i + 1]) for i, lv in enumerate(self.levels) if lv in cfg.levels])


def parser_identity(parser) -> str | None:
    """What the cache key knows of a parser: a digest of a network's state dict, else its `key` or class name."""
    if parser is None:
        return None
    if isinstance(parser, torch.nn.Module):
        h = hashlib.sha256()
        for name, t in parser.state_dict().items():
            h.update(name.encode() + t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()
    return getattr(parser, "key", None) or f"{type(parser).__module__}.{type(parser).__qualname__}"


def pixel_samples(cfg: cheng2015.Config, spec: DataSpec, parser=None, progress: bool = True) -> PixelSamples:
    """Features of `cfg.pixels_per_image` random pixels of every reference image of `spec`, cached on disk.

    `parser` (needed when `cfg.levels` has "semantic") makes the semantic level;
    its weights are part of the key.
    """
    fcfg = cheng2015.feature_config(cfg)
    if "semantic" not in fcfg.levels:
        parser = None
    elif parser is None:
        raise ValueError("pixel samples with the semantic level need the trained scene parser")
    payload = {"features": asdict(fcfg), "parser": parser_identity(parser), "data": asdict(spec),
               "pixels": cfg.pixels_per_image, "seed": cfg.sample_seed}
    key = keys.key(payload, PRODUCERS)
    folder = settings.cache_dir() / "cheng2015" / "pixels" / key[:16]
    names = [f.name for f in fields(PixelSamples) if f.name not in ("levels", "key")]
    if not (folder / "done").exists():
        lock = settings.cache_dir() / "locks" / f"pixels-{folder.name}.lock"
        with atomic.exclusive(lock, f"[pixels] waiting for another process sampling {folder}"):
            if not (folder / "done").exists():  # else another process sampled them while this one waited
                _sample_all(folder, payload, spec, fcfg, parser, cfg, names, progress)
    return PixelSamples(**{n: np.load(folder / f"{n}.npy") for n in names}, levels=fcfg.levels, key=key)


def _sample_all(folder: Path, payload: dict, spec: DataSpec, fcfg, parser, cfg: cheng2015.Config, names: list[str],
                progress: bool) -> None:
    from colorlab import data

    dec = data.decoded(spec.name, spec.split, spec.size, spec.limit, progress=progress)
    parts = {n: [] for n in names}
    for i in tqdm(range(len(dec.rgb)), desc=f"Cheng features {spec.name}/{spec.split}", disable=not progress):
        for n, v in _sample_image(np.asarray(dec.rgb[i]), i, fcfg, parser, cfg).items():
            parts[n].append(v)
    out = {n: np.concatenate(v) if n not in ("descriptors", "histograms") else np.stack(v) for n, v in parts.items()}
    with atomic.replacing_dir(folder) as tmp:
        for n, v in out.items():
            np.save(tmp / f"{n}.npy", v)
        (tmp / "payload.json").write_text(json.dumps(keys.jsonable(payload), indent=2))
        (tmp / "done").touch()


def _sample_image(rgb: np.ndarray, index: int, fcfg, parser, cfg: cheng2015.Config) -> dict[str, np.ndarray]:
    """Features and targets of `cfg.pixels_per_image` pixels drawn uniformly without replacement."""
    rgb_t = color.to_float(rgb)  # (1, 3, H, W)
    gray = color.rgb_to_gray(rgb_t)[0, 0].numpy()  # (H, W)
    uv = color.rgb_to_yuv(rgb_t)[0, 1:].permute(1, 2, 0).reshape(-1, 2).numpy()  # (H*W, 2)
    x = features.extract(gray, fcfg, parser)  # (H, W, D)
    rng = np.random.default_rng([cfg.sample_seed, index])
    idx = rng.choice(gray.size, size=min(cfg.pixels_per_image, gray.size), replace=False)
    n_sem = fcfg.semantic_classes if "semantic" in fcfg.levels else 0
    return {
        "x": x.reshape(gray.size, -1)[idx],
        "uv": color.cheng_uv_to_target_np(uv[idx]).astype(np.float32),
        "image": np.full(len(idx), index, np.int32),
        "gray": gray.ravel()[idx],
        "truth": rgb.reshape(-1, 3)[idx],
        "descriptors": clustering.global_descriptor(gray),
        "histograms": clustering.semantic_histogram(x[:, :, x.shape[2] - n_sem :]) if n_sem else np.zeros(0, np.float32),
    }
