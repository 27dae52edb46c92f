"""Baldassarre et al. 2017's experiment: training presets, the classifier embeddings, the recipe.

The network is `colorlab.models.koalarization2017`. The frozen classifier's
embedding of every training and validation photo is computed once
(`colorlab.embeddings`, cached by its own key) and travels to the loop as a
per-sample array; the run key holds the embedding cache's key.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from colorlab import embeddings, profiles, runs, train
from colorlab.experiments import images, timing
from colorlab.models import koalarization2017 as net
from colorlab.models import mobilenet_v2

# Baldassarre et al. 2017: Adam 1e-3, batch 100, no augmentation (official code);
# 100 epochs of 65,000 images (code commit 4af0d6b) = 65,000 steps.
# cpu: the paper's optimiser at 1,000 steps, from notebook 09's budget-quality curve: AdamW with a
# warm-up and cosine decay did not beat constant Adam here (it did for Iizuka's net), and 3,000 steps
# scored lower than 1,000 on 1,000 MiniPlaces val photos and on Kodak24 (the validation loss rises:
# without augmentation, as in the paper, 10 epochs of 10,000 photos overfit the quarter-width net; the
# cpu profile now trains on all 24,594 colour photos of the mirror, where 1,000 steps are 1.3 epochs).
# channels_last: NHWC convolutions, 1.7x faster per step in bf16 on a 2-core Xeon with AMX (`make bench`:
# 425 against 254 images/s).
_PAPER = dict(steps=65_000, batch_size=100, optimizer="adam", lr=1e-3, flip=False,
              eval_every=2000, ckpt_every=2000, log_every=50)
TRAIN = {
    "paper": _PAPER,
    "gpu": _PAPER,
    "cpu": dict(steps=1000, batch_size=32, optimizer="adam", lr=1e-3, flip=False,
                eval_every=250, ckpt_every=250, log_every=5, bf16="native", channels_last=True),
    "smoke": dict(steps=30, batch_size=8, optimizer="adam", lr=1e-3, flip=False,
                  eval_every=10, ckpt_every=10, log_every=1),
}


def default_config(profile: str) -> net.Config:
    """`PRESETS[profile]`; at `smoke` with no MobileNetV2 file, the random stand-in (labelled as such).

    The smoke profile must run without any data; every other profile needs the real classifier
    and says how to get it when it is missing.
    """
    cfg = net.PRESETS[profile]
    return replace(cfg, classifier=mobilenet_v2.resolve(cfg.classifier, fallback_random=profile == "smoke").name)


def recipe(profile: str, model_cfg: net.Config, train_cfg, progress: bool = True, data=None, val=None) -> runs.Recipe:
    """Decoded photos plus, when the model fuses it, the classifier embedding of each (computed once)."""
    from colorlab.experiments import data_profile

    where = data_profile(profile)
    size = train_cfg.data_size or model_cfg.train_size
    if data is not None:  # a folder of the user's own photos (and an optional validation folder)
        train_spec, val_spec = images.data_specs(data, val, size)
    else:
        train_spec, val_spec = profiles.train_data(where, size), profiles.val_data(where, size)
    extras = None
    if model_cfg.use_embedding:
        device = train.resolve_device(train_cfg.device)
        extras = embeddings.extras(train_spec, val_spec, model_cfg.classifier_config(), model_cfg.embed_size,
                                   device, progress)
    return images.recipe("koalarization2017", model_cfg, train_cfg, train_spec, val_spec, extras)


def benchmark(quick: bool = False, sizes: tuple[int, ...] = (224, 512), preset: str = "paper", repeats: int = 5,
              device: str = "cpu", native: bool = True, random_classifier: bool = False) -> dict:
    """Seconds per `colorize` call of one image at each size (median of `repeats`, after a warm-up).

    native=True times the fully convolutional net at the image's own size (the
    paper preset runs at 224 otherwise, whatever the input). The classifier is
    the converted MobileNetV2, or a random one of the same architecture (same
    cost) when `random_classifier` or when its file is absent.
    """
    if quick:
        sizes, preset, repeats = (32, 64), "smoke", 2
    cfg = net.PRESETS[preset]
    if random_classifier or not mobilenet_v2.available():
        cfg = replace(cfg, classifier="mobilenet_v2_random")
    model = net.build(cfg).eval().to(device)
    model.classifier(torch.device(device))
    return {"model": "koalarization2017", "preset": preset, "device": device, "native": native,
            "classifier": cfg.classifier, "seconds": timing.colorize_seconds(model, sizes, repeats, device, native=native)}
