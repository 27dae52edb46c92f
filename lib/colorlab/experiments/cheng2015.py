"""Cheng et al. 2015's experiment: reference images, training presets, the scene parser's run, the recipes.

    from colorlab import experiments
    run = experiments.get("cheng2015", "cpu", seed=1)               # the ICCV model (one net)
    run = experiments.get("cheng2015", "cpu", clusters=1)           # the journal's model (Alg. 3)
    run = experiments.get("cheng2015", "cpu", levels=("patch",))    # a feature-level ablation

`recipe(...)` describes a Cheng run by its data specs and the key of the
scene parser's run, so no feature is computed to know the key. Training (the
recipe's `fit=`) first gets the trained parser from the run store
(`parser_recipe`, trained once), computes or loads the cached pixel samples
(`experiments.pixels`), puts the parser's weights into the Cheng model and
trains it (`experiments.cheng2015_fit`). Any `clusters > 0` asks for the
journal's clustered model; Alg. 3 finds how many nets it has (the key is
that of clusters=1, the run's config.json holds the number found).
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace

import cv2
import numpy as np
import torch

from colorlab import color, runs
from colorlab import data as datasets
from colorlab import train as training
from colorlab.errors import CorruptFileError
from colorlab.experiments import cheng2015_fit, images, pixels
from colorlab.experiments import parser as parser_training
from colorlab.features import parser as scene_parser
from colorlab.models import cheng2015
from colorlab.profiles import DataSpec

# Reference images (sec. 4: 2,688 SUN images, not public as a list): SUN8's train split, decoded
# square at the working size. Validation pixels come from SUN8 test (loss curves only, no selection).
# cpu: all 1,483 training photos at 128 px, chosen from notebook 09's curve (commit 942fa34, seed 0):
# with 480 of them the net was below gray on MiniPlaces val (-0.25 dB), with all of them above (+0.13 dB)
# and 0.2 dB higher on SUN8 test; 4x the pixels of each of 480 photos bought less than 3x the photos.
DATA = {
    "paper": (DataSpec("sun8", "train", 256), DataSpec("sun8", "test", 256, limit=80)),
    "gpu": (DataSpec("sun8", "train", 256), DataSpec("sun8", "test", 256, limit=80)),
    "cpu": (DataSpec("sun8", "train", 128), DataSpec("sun8", "test", 128, limit=40)),
    "smoke": (DataSpec("smoke", "train", 64), DataSpec("smoke", "val", 64)),
}
# Optimizer, learning rate, batch and length are not given (sec. 3.1.2: "classical error
# back-propagation"): Adam at 1e-3 on batches of random pixels, our choice.
TRAIN = {
    "paper": dict(steps=20_000, batch_size=256, optimizer="adam", lr=1e-3, flip=False, eval_every=1000, ckpt_every=5000, log_every=100),
    "gpu": dict(steps=50_000, batch_size=1024, optimizer="adam", lr=1e-3, flip=False, eval_every=2000, ckpt_every=10_000, log_every=100),
    # cpu: validation loss stops improving after ~1000 steps on 480 images (measured), 1500 is enough; kept for all 1,483
    "cpu": dict(steps=1500, batch_size=512, optimizer="adam", lr=1e-3, flip=False, eval_every=250, ckpt_every=1500, log_every=50),
    "smoke": dict(steps=200, batch_size=256, optimizer="adam", lr=3e-3, flip=False, eval_every=100, ckpt_every=200, log_every=20),
}
# The code that makes a Cheng net's weights besides the network: the loop, the pixel sampler, the drivers.
PRODUCERS = ("colorlab.train", "colorlab.experiments.pixels", "colorlab.experiments.cheng2015_fit")


def default_config(profile: str) -> cheng2015.Config:
    return cheng2015.PRESETS[profile]


# --- the scene parser's run ---------------------------------------------------------------
def parser_recipe(cfg_or_preset: scene_parser.ParserConfig | str = "cpu", **overrides) -> runs.Recipe:
    """The run store's recipe of a scene parser (`features.parser.PRESETS` name or a ParserConfig)."""
    pcfg = scene_parser.config(cfg_or_preset, **overrides)
    return runs.Recipe(model_name="scene_parser", module="colorlab.features.parser", model_cfg=pcfg,
                       train_cfg=parser_training.ParserTraining(), data=parser_training.data_identity(pcfg),
                       producers=("colorlab.experiments.parser",),
                       fit=lambda folder, progress, resume: parser_training.fit(pcfg, folder, progress),
                       command="colorlab train --model cheng2015 (trains its scene parser first)")


def parser_run(cfg_or_preset: scene_parser.ParserConfig | str = "cpu", progress: bool = True, **overrides) -> runs.Run:
    """The trained parser's run (trained once, then loaded and verified): `.model`, `.metrics`, `.key`."""
    return runs.get(parser_recipe(cfg_or_preset, **overrides), progress=progress)


def load_parser(cfg_or_preset: scene_parser.ParserConfig | str = "cpu", progress: bool = True,
                **overrides) -> scene_parser.SceneParser:
    """The trained scene parser of a preset or config (eval mode)."""
    return parser_run(cfg_or_preset, progress, **overrides).model


parser_quality = parser_training.parser_quality


# --- Cheng's runs ----------------------------------------------------------------------------
def recipe(profile: str, model_cfg: cheng2015.Config, train_cfg: training.TrainConfig,
           progress: bool = True, data=None, val=None) -> runs.Recipe:
    """The recipe of the single net (`model_cfg.clusters == 0`) or of the clustered model (> 0, Alg. 3).

    data / val: folders of the user's own reference photos instead of the profile's (SUN8), or
    registered datasets' DataSpecs (how many photos, from which set: `budget.cheng_points`).
    """
    spec, val_spec = DATA[profile]
    if data is not None:
        spec, val_spec = images.data_specs(data, val, spec.size)
    clustered = model_cfg.clusters > 0
    if clustered:
        model_cfg = replace(model_cfg, clusters=1)  # one key for the clustered model: Alg. 3 finds the count
    pr = parser_recipe(model_cfg.parser) if "semantic" in model_cfg.levels else None
    described = {"train": images.identity(spec), "val": None if clustered else images.identity(val_spec),
                 "parser": None if pr is None else pr.key}
    if clustered:
        described["algorithm"] = "adaptive clustering"

    def fit(folder, progress_, resume):
        parser = None if pr is None else runs.get(pr, progress=progress_).model
        if data is not None and not isinstance(data, DataSpec):  # a user's folder: name what was skipped
            images.report_skipped(spec, datasets.decoded(spec.name, spec.split, spec.size, spec.limit, progress=progress_))
        samples = pixels.pixel_samples(model_cfg, spec, parser, progress_)
        if clustered:
            init = None
            if model_cfg.cluster_init == "global":
                single = recipe(profile, replace(model_cfg, clusters=0), train_cfg, progress_)
                init = runs.get(single, progress=progress_).model.state_dict()
            return cheng2015_fit.fit_clustered(model_cfg, train_cfg, samples, parser, folder, progress_, init)
        val_px = None if val_spec is None else pixels.pixel_samples(model_cfg, val_spec, parser, progress_)
        try:
            return cheng2015_fit.fit_net(model_cfg, train_cfg, samples, val_px, parser, folder, progress_, resume,
                                         meta={"model_name": "cheng2015", "key": found.key})
        except training.CheckpointError as err:
            raise CorruptFileError(str(err), path=err.path,
                                   fix=f"{found.command} --no-resume (starts the run over)") from err

    found = runs.Recipe(model_name="cheng2015", module="colorlab.models.cheng2015", model_cfg=model_cfg,
                        train_cfg=train_cfg, data=described, producers=PRODUCERS, fit=fit,
                        command=f"colorlab train --model cheng2015 --profile {profile}")
    return found


# --- speed ----------------------------------------------------------------------------------
def benchmark(quick: bool = False, sizes=(256,), preset: str = "cpu", repeats: int = 5, parser=None) -> dict:
    """Seconds to colourise one gray photo at full resolution: features + net + joint bilateral filter.

    The paper: 4.9 s for 256 x 256 in Matlab (sec. 3.3, hardware not given).
    Random weights, the preset's parser network (the time depends on neither's
    values; `parser` replaces it). Every repeat parses the photo anew, as a new
    photo would be (nothing is kept outside `features.memo.shared_maps`).
    """
    from skimage import data as skdata

    if quick:
        sizes, preset, repeats = (32, 64), "smoke", 2
    model = cheng2015.build(replace(cheng2015.PRESETS[preset], work_size=None)).eval()
    if parser is not None:
        model.set_parser(parser)
    photo = color.rgb_to_gray(color.to_float(skdata.astronaut()))[0, 0].numpy()
    out = {"preset": preset, "threads": torch.get_num_threads(), "paper_matlab_256_s": 4.9, "sizes": {}}
    for size in sizes:
        gray = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
        gray_t = torch.from_numpy(gray)[None, None]
        times, parts = [], {"semantic_s": [], "features_and_net_s": [], "refine_s": []}
        model.colorize(gray_t)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            sem = model.semantic_map(gray)
            t1 = time.perf_counter()
            uv = model.predict_uv(gray, sem)
            t2 = time.perf_counter()
            cheng2015.refine_uv(gray, uv, model.cfg)
            t3 = time.perf_counter()
            model.colorize(gray_t)
            times.append(time.perf_counter() - t3)
            for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                parts[k].append(v)
        out["sizes"][str(size)] = {"median_s": float(np.median(times)), "min_s": float(min(times)),
                                   **{k: float(np.median(v)) for k, v in parts.items()}}
    return out
