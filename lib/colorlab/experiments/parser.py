"""Training and scoring of the scene parser behind Cheng's semantic features (`colorlab.features.parser`).

Data: the annotated images of `cfg.dataset` (MiniPlaces objects; the smoke
photos' colour clusters as a stand-in), labels fitted on the train split
(`features.labels`). Training: AdamW + a one-cycle schedule, pixel
cross-entropy with IGNORE pixels left out, horizontal flips. There is no
mid-run resume: the cpu preset trains in about a minute or two.

`fit` is the `fit=` function of the parser's `runs.Recipe` (built by
`colorlab.experiments.cheng2015.parser_recipe`), so a trained parser gets the
run store's lock, done marker, listing and export. This module does not
import the run store: it is one of the recipe's producers, and an edit of
the store must not retrain the parser.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from colorlab import atomic, keys
from colorlab.features import parser as network
from colorlab.features.labels import IGNORE, LabelSet, fit_colours, fit_objects
from colorlab.features.segmentation import segmentation_scores


# --- data --------------------------------------------------------------------------
def parser_data(cfg: network.ParserConfig, split: str, labels: LabelSet | None = None, size: int | None = None,
                progress: bool = True):
    """(rgb uint8 (n, s, s, 3), class ids uint8 (n, s, s), LabelSet) for a split.

    Only images with at least one annotated pixel are kept for `objects`;
    `labels=None` fits the label set on this split (do that on train only).
    """
    from colorlab import data

    dec = data.decoded(cfg.dataset, split, size or cfg.size, progress=progress)
    rgb, objects = dec.rgb, dec.objects
    if cfg.labels == "objects":
        if objects is None:
            raise ValueError(f"dataset {cfg.dataset!r} has no object annotations; use ParserConfig(labels='colours')")
        keep = np.flatnonzero((np.asarray(objects) != IGNORE).reshape(len(objects), -1).any(1))
        rgb, objects = np.asarray(rgb[keep]), np.asarray(objects[keep])
    else:
        rgb, objects = np.asarray(rgb), None
    if len(rgb) == 0:
        raise ValueError(f"no usable images for the scene parser in {cfg.dataset!r} {split!r}")
    if labels is None:
        if cfg.labels == "objects":
            labels = fit_objects(objects, data.object_names(cfg.dataset), cfg.n_classes)
        else:
            labels = fit_colours(rgb, cfg.n_classes, cfg.seed)
    return rgb, labels.apply(rgb=rgb, objects=objects), labels


def data_identity(cfg: network.ParserConfig) -> dict:
    """What the run key knows of the data: the dataset and a digest of both splits' file lists."""
    from colorlab import data

    files = {s: [(x.name, x.objects is not None) for x in data.samples(cfg.dataset, s)]
             for s in (cfg.train_split, cfg.val_split)}
    return {"dataset": cfg.dataset, "splits": [cfg.train_split, cfg.val_split],
            "files": hashlib.sha256(keys.canonical(files).encode()).hexdigest()}


def parser_quality(parser: network.SceneParser, split: str = "val", size: int | None = None) -> dict:
    """Pixel accuracy and mean IoU of `parser` on the annotated images of its dataset's `split`.

    Scored at `size` (default: the parser's working size) against labels made
    by the parser's own label set; IGNORE pixels are left out. Returns
    pixel_accuracy, mean_iou, n_images, n_pixels and per_class (DataFrame).
    """
    rgb, truth, _ = parser_data(parser.cfg, split, parser.labels, size)
    scores = segmentation_scores(network.predict_dataset(parser, rgb), truth, parser.class_names)
    return {**scores, "n_images": len(rgb)}


# --- training ---------------------------------------------------------------------------
def _batches(n: int, batch: int, steps: int, rng: np.random.Generator):
    """Indices of `steps` batches, a fresh permutation each epoch."""
    order = np.empty(0, dtype=np.int64)
    for _ in range(steps):
        if len(order) < batch:
            order = np.concatenate((order, rng.permutation(n)))
        idx, order = order[:batch], order[batch:]
        yield np.sort(idx)  # sorted: reads from a memory-mapped array go forward


def fit(cfg: network.ParserConfig, folder: Path, progress: bool = True) -> tuple[network.SceneParser, dict]:
    """Train a parser from scratch: (the parser in eval mode, its validation metrics); history.csv in `folder`."""
    rgb, y, labels = parser_data(cfg, cfg.train_split, progress=progress)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rng = np.random.default_rng(cfg.seed)
    history = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        # channels-last: measured 1.5-2.4x faster steps on 2 CPU threads (oneDNN), no change on 1
        net = network.SceneParser(cfg, labels).to(dev, memory_format=torch.channels_last).train()
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
        batches = _batches(len(rgb), min(cfg.batch_size, len(rgb)), cfg.steps, rng)
        bar = tqdm(batches, total=cfg.steps, desc="scene parser", disable=not progress)
        for step, idx in enumerate(bar, 1):
            gray = network._gray(rgb[idx]).to(dev).contiguous(memory_format=torch.channels_last)  # (B, 1, s, s)
            target = torch.from_numpy(y[idx]).to(dev, torch.long)  # (B, s, s)
            if cfg.flip:
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5).to(dev)
                gray = torch.where(flip.view(-1, 1, 1, 1), gray.flip(-1), gray)
                target = torch.where(flip.view(-1, 1, 1), target.flip(-1), target)
            loss = F.cross_entropy(net(gray), target, ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history.append({"step": step, "train_loss": loss.item(), "lr": sched.get_last_lr()[0]})
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    net = net.cpu().to(memory_format=torch.contiguous_format).eval()
    atomic.write_text(Path(folder) / "history.csv", pd.DataFrame(history).to_csv(index=False))
    val_rgb, val_y, _ = parser_data(cfg, cfg.val_split, labels, progress=progress)
    scores = segmentation_scores(network.predict_dataset(net, val_rgb), val_y, list(labels.names))
    metrics = {"val_pixel_accuracy": scores["pixel_accuracy"], "val_mean_iou": scores["mean_iou"],
               "n_train_images": len(rgb), "n_val_images": len(val_rgb), "steps": cfg.steps}
    return net, metrics


@dataclass
class ParserTraining:
    """The run store's train config of a parser run: the schedule (steps, batch, lr, seed) is in the
    ParserConfig, the model config; only where it runs is said here (left out of the key)."""

    device: str = "auto"
