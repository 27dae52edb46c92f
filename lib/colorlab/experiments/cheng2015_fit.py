"""How Cheng's nets are trained on pixel samples: the bodies of the `fit=` functions of Cheng's recipes.

`fit_net` trains the ICCV model (one net, `colorlab.train.fit` on the pixels'
features); `fit_clustered` the journal's model (Alg. 3, `colorlab.clustering`:
one net per cluster of reference images). Both put the trained scene
parser's weights into the model, so its state dict is self-contained, and
return (model, metrics); the run store writes config.json, final.pt, the
metrics and the done marker.

This module does not import the run store (it is a producer of Cheng's runs:
an edit of the store must not retrain them); `colorlab.experiments.cheng2015`
assembles the recipes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from colorlab import clustering, color, metrics
from colorlab import train as training
from colorlab.models import cheng2015


def _put_parser(model: cheng2015._Pipeline, parser) -> None:
    """Copy the trained parser's weights into the model's `scene_parser` (a stand-in is only attached)."""
    if getattr(model, "scene_parser", None) is None or parser is None:
        return
    if isinstance(parser, torch.nn.Module):
        model.scene_parser.load_state_dict(parser.state_dict())
    else:
        model.set_parser(parser)


def history_metrics(history, tcfg: training.TrainConfig) -> dict:
    """metrics.json of a run trained by `train.fit`: the last value of every curve, steps and time."""
    last = {c: float(history[c].dropna().iloc[-1]) for c in history.columns
            if c.startswith(("train_", "val_")) and history[c].notna().any()}
    seconds = float(history["time_s"].iloc[-1]) if len(history) else 0.0
    return {"steps": tcfg.steps, "train_seconds": seconds,
            "samples_per_s": tcfg.steps * tcfg.batch_size / seconds if seconds else None, **last}


def fit_net(cfg: cheng2015.Config, tcfg: training.TrainConfig, samples, val, parser, folder: Path,
            progress: bool = True, resume: bool = True, meta: dict | None = None):
    """The ICCV model: one `ChengNet` trained on every reference image's pixels -> (model, metrics).

    `samples` may hold more feature levels than `cfg` uses (its columns are picked).
    """
    training.seed_everything(tcfg.seed)  # the initial weights
    model = cheng2015.build(cfg)
    _put_parser(model, parser)
    result = training.fit(model, samples.arrays(cfg), None if val is None else val.arrays(cfg), tcfg, folder,
                          resume=resume, progress=progress, meta=meta)
    return result.model, history_metrics(result.history, tcfg)


def _pixels_by_image(image: np.ndarray, m: int) -> list[np.ndarray]:
    order = np.argsort(image, kind="stable")
    return np.split(order, np.cumsum(np.bincount(image, minlength=m))[:-1])


def image_psnr(net: cheng2015.ChengNet, x: np.ndarray, gray: np.ndarray, truth: np.ndarray) -> float:
    """PSNR of a net's colourisation of one image, estimated on its sampled pixels (no refinement)."""
    with torch.inference_mode():
        y = net.eval()(torch.from_numpy(np.ascontiguousarray(x)))  # (P, 2)
        uv = color.cheng_target_to_uv(y.T[None, :, :, None])  # (1, 2, P, 1)
        rgb = color.join_yuv(torch.from_numpy(gray)[None, None, :, None], uv)  # (1, 3, P, 1)
    return metrics.psnr(color.to_uint8(rgb)[0], truth[:, None, :])


def fit_clustered(cfg: cheng2015.Config, tcfg: training.TrainConfig, samples, parser, folder: Path,
                  progress: bool = True, init_state: dict | None = None):
    """The journal version (Alg. 3): one net per image cluster -> (ClusteredCheng, metrics with the clusters).

    Each cluster net trains for `tcfg.steps` times its share of the reference
    images (at least a quarter of them), from random weights or, with
    `init_state` (cluster_init="global"), from the single net trained on every
    image. E(I) = -PSNR of I's colourisation, estimated on I's sampled pixels
    without refinement (the journal does not say how it is computed).
    """
    m = len(samples.descriptors)
    base = replace(cfg, clusters=0)
    pixels = _pixels_by_image(samples.image, m)
    x = samples.x[:, samples.columns(base)]
    scaler = clustering.Standardizer.fit(samples.descriptors)
    init = None if init_state is None else {k: v for k, v in init_state.items() if not k.startswith("scene_parser.")}

    def train_net(members: np.ndarray, index: int) -> cheng2015.ChengNet:
        idx = np.concatenate([pixels[i] for i in members])
        steps = max(tcfg.steps // 4, round(tcfg.steps * len(members) / m))
        t = replace(tcfg, steps=steps, eval_every=steps, ckpt_every=steps, log_every=min(tcfg.log_every, steps))
        training.seed_everything(tcfg.seed + 1000 * index)  # the initial weights
        net = cheng2015.ChengNet(base, with_parser=False)
        if init is not None:
            net.load_state_dict(init)
        return training.fit(net, {"x": x[idx], "uv": samples.uv[idx]}, None, t,
                            Path(folder) / "nets" / f"{index:02d}", progress=False).model

    def error(net: cheng2015.ChengNet, members: np.ndarray) -> np.ndarray:
        return np.array([-image_psnr(net, x[pixels[i]], samples.gray[pixels[i]], samples.truth[pixels[i]])
                         for i in members])

    hists = samples.histograms if "semantic" in cfg.levels else np.zeros((m, 0), np.float32)
    found = clustering.adaptive_clustering(scaler(samples.descriptors), hists, train_net, error,
                                           cfg.cluster_n0, cfg.cluster_mu, cfg.cluster_epsilon,
                                           cfg.cluster_max_layers, tcfg.seed, print if progress else None)
    if not found:
        raise ValueError(f"no cluster reached mu={cfg.cluster_mu} of {m} reference images; lower cluster_mu or cluster_n0")
    model = cheng2015.ClusteredCheng(replace(cfg, clusters=len(found)))
    _put_parser(model, parser)
    for net, c in zip(model.nets, found):
        net.load_state_dict(c.net.state_dict())
    with torch.no_grad():
        model.centres.copy_(torch.from_numpy(np.stack([c.centre for c in found])))
        model.histograms.copy_(torch.from_numpy(np.stack([c.histogram for c in found])))
        model.desc_mean.copy_(torch.from_numpy(scaler.mean))
        model.desc_std.copy_(torch.from_numpy(scaler.std))
        model.layer.copy_(torch.tensor([c.layer for c in found]))
    summary = [{"cluster": i, "layer": c.layer, "images": len(c.members), "mean_psnr": float(-c.errors.mean()),
                "left": int((c.errors <= cfg.cluster_epsilon).sum())} for i, c in enumerate(found)]
    return model.eval(), {"clusters": summary, "reference_images": m}
