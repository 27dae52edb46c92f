"""Notebook 01's study of Cheng et al. 2015: the variants, the feature-level ablation, the filter's sensitivity.

Every trained model comes from the run store through `experiments.get("cheng2015", ...)`:
the ablation's levels, the full model (whose weights also serve "no refinement", the
same net without the joint bilateral filter) and the journal's clustered model.
Scores are cached in the full model's run folder (`study.evaluate_cached`).

This is scoring-layer code (it imports `colorlab.study`); `colorlab.experiments`
itself never imports it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from colorlab import color, experiments, features, metrics, processes, profiles, study
from colorlab.models import cheng2015


ABLATION = {"patch": ("patch",), "patch+daisy": ("patch", "daisy"), "patch+daisy+semantic": features.LEVELS}
# Cheng et al. 2015 print one PSNR under each result figure (sec. 4): single images, not test sets.
PAPER_PSNR = [
    ("Fig. 8", "road scene, ours", 33), ("Fig. 9", "city", 30), ("Fig. 9", "road", 31), ("Fig. 9", "house", 23),
    ("Fig. 9", "forest", 23), ("Fig. 9", "building", 29), ("Fig. 9", "beach", 27), ("Fig. 9", "field", 25),
    ("Fig. 10", "ours (vs. Gupta et al. 19/17/18)", 22),
]


def paper_psnr() -> pd.DataFrame:
    return pd.DataFrame(PAPER_PSNR, columns=["figure", "image", "psnr_db"])


def variants(profile: str, seed: int = 0, progress: bool = True) -> dict[str, nn.Module]:
    """Every model notebook 01 compares, trained once and cached: the feature-level ablation (with
    refinement), the full model without refinement, and the clustered (journal) model."""
    return _variant_runs(profile, seed, progress)[0]


def _requests(seed: int) -> dict[str, tuple[str, dict]]:
    """The runs behind `variants` at `seed`: each level of the ablation and the clustered model."""
    return {**{name: ("cheng2015", {"levels": lv, "seed": seed}) for name, lv in ABLATION.items()},
            "clustered": ("cheng2015", {"clusters": 1, "seed": seed})}


def _variant_runs(profile: str, seed: int, progress: bool) -> tuple[dict[str, nn.Module], Path]:
    """`variants` and the folder of the full model's run (its key covers the preset, the seed and the code)."""
    trained = {name: experiments.get(model, profile, progress=progress, **kw)
               for name, (model, kw) in _requests(seed).items()}
    out = {name: trained[name].model for name in ABLATION}
    full = out["patch+daisy+semantic"]
    out["no refinement"] = cheng2015.build(replace(full.cfg, refine=False)).eval()  # same weights, no filter
    out["no refinement"].load_state_dict(full.state_dict())
    out["clustered"] = trained["clustered"].model
    parser = full.parser()
    for model in out.values():  # one parser object (the same weights in every run): one weights digest
        model.set_parser(parser)
    return out, trained["patch+daisy+semantic"].dir


def eval_sets(profile: str, limit: int | None = None) -> list:
    """SUN8 test, MiniPlaces val and Kodak24 at full resolution (smoke: the smoke val set)."""
    limit = profiles.eval_limit(profile) if limit is None else limit
    return [study.load_eval_set(d, s, limit) for d, s in profiles.eval_sets(profile)
            if d in ("sun8", "miniplaces", "kodak24", "smoke")]


def _score_ablation(profile: str, seed: int, eval_set) -> None:
    """Fill the cache of one seed's `feature_ablation` on one set (a job of `processes.side_by_side`)."""
    methods, folder = _variant_runs(profile, seed, progress=False)
    study.evaluate_cached(methods, eval_set, folder, "ablation", share_maps=True)


def _side_by_side(profile: str, seeds, sets: list, workers: int, progress: bool) -> None:
    """Train every seed's variants not yet trained, then score the (seed, set) pairs not yet cached, `workers`
    at a time (`experiments.get_all`, `processes.side_by_side`)."""
    requests = {seed: _requests(seed) for seed in seeds}
    trained = iter(experiments.get_all([r for seed in seeds for r in requests[seed].values()], profile, workers, progress))
    full = {seed: dict(zip(requests[seed], trained))["patch+daisy+semantic"].dir for seed in seeds}
    processes.side_by_side(_score_ablation, [(profile, seed, s) for seed in seeds for s in sets
                                             if not study.score_path(s, full[seed], "ablation").exists()], workers, progress)


def feature_ablation(profile: str, seeds=(0,), limit: int | None = None, progress: bool = True,
                     datasets: tuple[str, ...] | None = None, workers: int = 1) -> pd.DataFrame:
    """Per-image scores (colorlab.study columns + seed) of every `variants` model on every eval set
    (or those named in `datasets`), scored once, each photo's feature maps made once for all variants
    (`study.evaluate(share_maps=True)`), and cached in the full model's run folder; what is not
    yet trained is trained, and what is not yet cached scored, `workers` at a time (workers > 1: `_side_by_side`;
    1: one after another, here)."""
    sets = [s for s in eval_sets(profile, limit) if datasets is None or s.dataset in datasets]
    if not sets:
        raise ValueError(f"no evaluation set among {datasets} at profile {profile!r}")
    if workers > 1:
        _side_by_side(profile, seeds, sets, workers, progress)
    frames = []
    for seed in seeds:
        methods, folder = _variant_runs(profile, seed, progress)
        frames += [study.evaluate_cached(methods, s, folder, "ablation", progress, share_maps=True).assign(seed=seed)
                   for s in sets]
    return pd.concat(frames, ignore_index=True)


def bilateral_sensitivity(model: nn.Module, eval_set, sigma_s=(1.5, 3.0, 6.0), sigma_r=(0.04, 0.16)) -> pd.DataFrame:
    """PSNR, SSIM and colourfulness ratio per image without refinement (sigma_s = 0) and with each
    (sigma_s, sigma_r) of the joint bilateral filter (sec. 3.2.5; the values are not given in the paper)."""
    rows = []
    for name, rgb in zip(eval_set.names, eval_set.rgb):
        gray = color.rgb_to_gray(color.to_float(rgb))  # (1, 1, H, W)
        raw = model.chroma(gray[0, 0].numpy(), refine=False)  # (H, W, 2)
        for s, r in [(0.0, 0.0)] + [(s, r) for s in sigma_s for r in sigma_r]:
            uv = raw if s == 0 else cheng2015.refine_uv(gray[0, 0].numpy(), raw, replace(model.cfg, sigma_s=s, sigma_r=r))
            pred = color.to_uint8(color.from_working(gray, torch.from_numpy(uv).permute(2, 0, 1)[None], "yuv"))[0]  # (H, W, 3)
            rows.append({"sigma_s": s, "sigma_r": r, "image": name, "psnr": metrics.psnr(pred, rgb),
                         "ssim": metrics.ssim(pred, rgb), "colorfulness_ratio": metrics.colorfulness_ratio(pred, rgb)})
    return pd.DataFrame(rows)


def feature_views(gray: np.ndarray, cfg: cheng2015.Config, parser=None) -> dict[str, np.ndarray]:
    """The three feature levels of one image as pictures: patch and DAISY as their first three principal
    components (RGB), semantic as the most likely class (colour-coded) and its probability."""
    from matplotlib import colormaps
    from sklearn.decomposition import PCA

    fcfg = cheng2015.feature_config(replace(cfg, levels=features.LEVELS))

    def pca_rgb(x: np.ndarray) -> np.ndarray:
        z = PCA(3, random_state=0).fit_transform(x.reshape(-1, x.shape[-1]))  # (H*W, 3)
        lo, hi = np.percentile(z, 1, axis=0), np.percentile(z, 99, axis=0)
        return np.clip((z - lo) / np.maximum(hi - lo, 1e-8), 0, 1).reshape(*x.shape[:2], 3)

    probs = features.high_level(gray, parser, fcfg)  # (H, W, N)
    labels = probs.argmax(-1)
    return {"gray": gray, "patch": pca_rgb(features.low_level(gray, fcfg.patch_size)),
            "daisy": pca_rgb(features.mid_level(gray, fcfg)),
            "semantic": colormaps["tab20"](labels % 20)[..., :3], "confidence": probs.max(-1), "labels": labels}
