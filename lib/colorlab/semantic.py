"""The semantic interpretability test: does colourisation help a classifier see what the photo is?

Zhang et al. 2016 ("Colorful Image Colorization", sec. 3.1) fed colourised
ImageNet validation photos to a VGG classifier trained on colour photos and
reported its accuracy: colour ground truth on top, the grayscale photo at
the bottom, and a colourisation is better the more of the gap it closes. We
run the same test with our offline classifier, MobileNetV2 1.0
(`colorlab.models.mobilenet_v2`), in VGG's place, on `imagenet-sample` (one
photo per ImageNet class, at full resolution, preprocessed with the
classifier's evaluation centre crop).

- Grayscale originals have no colour ground truth: they are skipped, and the
  table says how many.
- Labels: ImageNet's for `imagenet-sample`. Any other dataset (e.g. `smoke`)
  has no ImageNet labels, so the classifier's own top-1 on the colour photo is
  the label (the "color" row is then 100 % by construction, and the other
  rows measure agreement with it); the `labels` column says which.
- Without the classifier's weights (no data mirror) the test cannot mean
  anything: it returns the table with NaN accuracies and a `note` saying why,
  instead of failing (a random classifier's labels would be noise).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from colorlab import atomic, color, data, keys, metrics, study
from colorlab.protocol import StoredRun as Run
from colorlab.models import mobilenet_v2

COLOR = "color (ground truth)"
GRAY = "grayscale"
IMAGENET_DATASETS = ("imagenet-sample",)  # labels are ImageNet class indices (sorted wnids)
PSEUDO = "pseudo: the classifier's top-1 on the colour photo"


def _methods(methods) -> dict[str, Callable]:
    if methods is None:
        return {}
    if callable(methods) and not isinstance(methods, Mapping):
        methods = {"colorized": methods}
    return {name: study.as_colorizer(m) for name, m in methods.items()}


def _logits_path(run: Run, es: "study.EvalSet", source: str, crop: float) -> Path:
    """Where a run's classifier logits on an evaluation set live: named by the set and its images, and keyed
    (`colorlab.keys`) by the classifier, the crop and the code of this test, so an edited test recomputes them."""
    digest = study.set_digest(es)
    key = keys.key({"classifier": source, "crop": crop, "images": digest}, [__name__])[:16]
    return run.dir / f"semantic_{es.dataset}_{es.split}_{len(es)}_{digest}_{key}.npy"


def _table(conditions: list[str], values: dict, images: int, skipped: int, labels: str, source: str, note: str,
           same: dict | None = None) -> pd.DataFrame:
    df = pd.DataFrame({
        "condition": conditions,
        "top1": [values.get(c, {}).get(1, np.nan) for c in conditions],
        "top5": [values.get(c, {}).get(5, np.nan) for c in conditions],
        "same_top1_as_color": [(same or {}).get(c, np.nan) for c in conditions],
        "images": images,
        "grayscale_skipped": skipped,
        "labels": labels,
        "classifier": source,
        "note": note,
    })
    df.attrs["note"] = note
    return df


def _classifier(classifier) -> tuple[torch.nn.Module | None, str]:
    """(net, "") or (None, why not)."""
    if isinstance(classifier, torch.nn.Module):
        return classifier.eval(), ""
    cfg = classifier or mobilenet_v2.ClassifierConfig()
    if cfg.name == "mobilenet_v2" and cfg.weights is None and not mobilenet_v2.available():
        return None, ("semantic test skipped: the MobileNetV2 weights are not in the data directory "
                      f"({mobilenet_v2.DATASET}/{mobilenet_v2.TFLITE_NAME}); set COLORLAB_DATA to the data mirror "
                      f"or run `colorlab data fetch {mobilenet_v2.DATASET}`")
    return mobilenet_v2.load(cfg), ""


@torch.no_grad()
def _logits(net: torch.nn.Module, batch: list[np.ndarray], crop: float) -> np.ndarray:
    x = torch.cat([mobilenet_v2.prepare(color.to_float(rgb), crop) for rgb in batch])  # (b, 3, 224, 224)
    dev = next(net.parameters()).device
    return net(x.to(dev)).float().cpu().numpy()  # (b, 1001)


@torch.no_grad()
def semantic_test(methods=None, dataset: str = "imagenet-sample", split: str = "all", limit: int | None = None,
                  classifier=None, crop: float = mobilenet_v2.EVAL_CROP, batch_size: int = 16,
                  progress: bool = True) -> pd.DataFrame:
    """Top-1 / top-5 of the classifier on colour, grayscale and colourised photos.

    methods: a colorizer (`colorize(gray) -> rgb` or such a function) or a dict
    name -> colorizer. classifier: a `ClassifierConfig`, a module (rgb in [0, 1]
    -> 1001 logits), or None for MobileNetV2. Returns one row per condition:
    condition, top1, top5, same_top1_as_color (how often the top-1 is the
    colour photo's: for "grayscale", what the classifier still recognises
    without colour), images, grayscale_skipped, labels, classifier, note (the
    note is also in `df.attrs["note"]`).
    """
    runs_given = {name: m for name, m in methods.items() if isinstance(m, Run)} if isinstance(methods, Mapping) else {}
    fns = _methods(methods)
    conditions = [COLOR, GRAY, *fns]
    net, why = _classifier(classifier)
    labels_kind = "ImageNet" if dataset in IMAGENET_DATASETS else PSEUDO
    if net is None:
        warnings.warn(why, stacklevel=3)  # past torch.no_grad's wrapper, to the caller
        return _table(conditions, {}, 0, 0, labels_kind, "none", why)
    es = study.load_eval_set(dataset, split, limit)
    skipped = sum("grayscale" in s for s in es.skipped)
    source = getattr(net, "source", type(net).__name__)
    note = f"{skipped} grayscale source images skipped" + ("" if getattr(net, "pretrained", True) else f"; classifier {source}")
    if not len(es):
        return _table(conditions, {}, 0, skipped, labels_kind, source, note + "; no colour images to test")
    # a trained run's logits are computed once per (set, classifier, crop) and kept in its folder
    # (only for colorlab's classifiers, whose `source` names their weights and arithmetic)
    cache = {name: _logits_path(run, es, source, crop) for name, run in runs_given.items()} if hasattr(net, "source") else {}
    known = {name: np.load(path) for name, path in cache.items() if path.exists()}
    logits = {c: [] for c in conditions if c not in known}
    steps = range(0, len(es), batch_size)
    for start in tqdm(steps, desc=f"semantic test on {dataset}", disable=not progress, leave=False):
        rgbs = es.rgb[start : start + batch_size]
        grays = [color.rgb_to_gray(color.to_float(rgb)) for rgb in rgbs]  # (1, 1, H, W) each
        logits[COLOR].append(_logits(net, rgbs, crop))
        logits[GRAY].append(_logits(net, [gray_u8(rgb) for rgb in rgbs], crop))
        for name, fn in fns.items():
            if name not in known:
                # the colourised photo as it would be saved: 8 bits per channel
                logits[name].append(_logits(net, [color.to_uint8(fn(g))[0] for g in grays], crop))
    logits = {c: np.concatenate(v) for c, v in logits.items()}
    for name, path in cache.items():
        if name not in known:
            buffer = io.BytesIO()
            np.save(buffer, logits[name])
            atomic.write_bytes(path, buffer.getvalue())
    logits = {c: known[c] if c in known else logits[c] for c in conditions}
    if labels_kind == "ImageNet":
        by_name = {s.name: s.label for s in data.samples(dataset, split)}
        labels = np.array([by_name[n] + 1 for n in es.names])  # TFLite index 0 is "background"
    else:
        labels = logits[COLOR].argmax(1)
    values = {c: metrics.topk_accuracy(v, labels, (1, 5)) for c, v in logits.items()}
    color_top1 = logits[COLOR].argmax(1)
    same = {c: float(np.mean(v.argmax(1) == color_top1)) for c, v in logits.items()}
    return _table(conditions, values, len(es), skipped, labels_kind, source, note, same)


@torch.no_grad()
def gray_vs_color(dataset: str = "imagenet-sample", split: str = "all", limit: int | None = 8, classifier=None,
                  crop: float = mobilenet_v2.EVAL_CROP, k: int = 5) -> pd.DataFrame:
    """What the classifier (the Koalarization embedding) sees: top-k labels on each colour photo and its gray version.

    One row per image: image, color_topk, gray_topk (class names), same_top1
    (bool), overlap (how many of the k labels both share). Empty with a note
    in `df.attrs["note"]` when the classifier's weights are absent.
    """
    net, why = _classifier(classifier)
    columns = ["image", f"color_top{k}", f"gray_top{k}", "same_top1", "overlap"]
    if net is None:
        df = pd.DataFrame(columns=columns)
        df.attrs["note"] = why
        return df
    es = study.load_eval_set(dataset, split, limit)
    names = mobilenet_v2.labels() if getattr(net, "pretrained", False) else [str(i) for i in range(mobilenet_v2.NUM_CLASSES)]
    rows = []
    for name, rgb in zip(es.names, es.rgb):
        lc, lg = _logits(net, [rgb, gray_u8(rgb)], crop)
        tc, tg = np.argsort(-lc)[:k], np.argsort(-lg)[:k]
        rows.append({"image": name, columns[1]: ", ".join(names[i] for i in tc), columns[2]: ", ".join(names[i] for i in tg),
                     "same_top1": bool(tc[0] == tg[0]), "overlap": len(set(tc) & set(tg))})
    df = pd.DataFrame(rows, columns=columns)
    df.attrs["note"] = f"{len(es.skipped)} images skipped (grayscale originals)"
    return df


def dataset_for(profile: str) -> tuple[str, str]:
    """(dataset, split) a profile runs the classifier tests on: imagenet-sample, or smoke's val photos."""
    return ("smoke", "val") if profile == "smoke" else ("imagenet-sample", "all")


def gray_u8(rgb_u8: np.ndarray) -> np.ndarray:
    """The grayscale photo of a uint8 (H, W, 3) image, as uint8 RGB: what the classifier is shown."""
    return color.to_uint8(color.gray_to_rgb(color.rgb_to_gray(color.to_float(rgb_u8))))[0]


def agreement(side: pd.DataFrame) -> pd.DataFrame:
    """Summary of `gray_vs_color`: images, same top-1 rate, mean top-k overlap."""
    k = int(side.columns[1].removeprefix("color_top")) if len(side.columns) > 1 else 5
    return pd.DataFrame([{"images": len(side), "same_top1": side["same_top1"].mean() if len(side) else np.nan,
                          f"mean_top{k}_overlap": side["overlap"].mean() if len(side) else np.nan}])
