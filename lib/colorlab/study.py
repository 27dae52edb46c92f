"""Scoring colorizers on datasets at full resolution: what every comparison notebook calls.

A *method* is anything with `colorize(gray) -> rgb` (the models, the
baselines) or a plain function of the same signature. Images are read at
their own resolution, turned gray with `color.rgb_to_gray`, colourised, and
scored against the colour original with `colorlab.metrics`. Grayscale
originals have no colour ground truth: they are skipped and counted.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from colorlab import atomic, color, data, images, keys, metrics, processes
from colorlab.features import memo
from colorlab.protocol import StoredRun

Colorizer = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvalSet:
    """Colour images of one dataset split, read once and shared by every method."""

    dataset: str
    split: str
    names: list[str]
    rgb: list[np.ndarray]
    skipped: list[str] = field(default_factory=list)  # grayscale originals or unreadable files

    def __len__(self) -> int:
        return len(self.rgb)


def _evenly(items: list, limit: int | None) -> list:
    """A deterministic subset spread over the whole list (labels are often sorted)."""
    if limit is None or len(items) <= limit:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def load_eval_set(dataset: str, split: str, limit: int | None = None) -> EvalSet:
    """Read the colour images among `limit` files spread evenly over a split, at full resolution.

    Gray or unreadable files among them are skipped and listed in `skipped`, so a
    set may hold fewer than `limit` images; the choice never depends on pixel content.
    """
    names, rgbs, skipped = [], [], []
    for sample in _evenly(data.samples(dataset, split), limit):
        try:
            rgb = images.read_rgb(sample.path)
        except images.ImageReadError as err:
            skipped.append(f"{sample.name}: {err}")
            continue
        if images.is_grayscale(rgb):
            skipped.append(f"{sample.name}: grayscale original, no colour ground truth")
            continue
        names.append(sample.name)
        rgbs.append(rgb)
    return EvalSet(dataset, split, names, rgbs, skipped)


def as_colorizer(method) -> Colorizer:
    return method.colorize if hasattr(method, "colorize") else method


@torch.inference_mode()
def colorize_u8(method, rgb_u8: np.ndarray) -> tuple[np.ndarray, float]:
    """Colourise the gray version of one uint8 image (H, W, 3), or of a batch of same-sized ones (B, H, W, 3);
    returns (uint8 result(s) of the same shape, seconds of the colourisation call)."""
    gray = color.rgb_to_gray(color.to_float(rgb_u8))  # (B, 1, H, W)
    start = time.perf_counter()
    rgb = as_colorizer(method)(gray)  # (B, 3, H, W)
    seconds = time.perf_counter() - start
    out = color.to_uint8(rgb)
    return (out if rgb_u8.ndim == 4 else out[0]), seconds


EVAL_BATCH = 32  # same-sized evaluation images colourised per call (MiniPlaces is all 128 x 128)


def _same_size_batches(images: list[np.ndarray], size: int = EVAL_BATCH) -> list[list[int]]:
    """Indices of consecutive images of one shape, at most `size` at a time (a photo's result does not depend
    on its batch: every network is in eval mode)."""
    out: list[list[int]] = []
    for i, img in enumerate(images):
        if out and len(out[-1]) < size and images[out[-1][0]].shape == img.shape:
            out[-1].append(i)
        else:
            out.append([i])
    return out


TRUTH = "ground truth"


def evaluate(methods: dict[str, object], eval_set: EvalSet, include_truth: bool = False, progress: bool = True,
             share_maps: bool = False) -> pd.DataFrame:
    """Per-image metrics of every method: columns method, dataset, image, psnr, ssim, auc, colorfulness_ratio, seconds
    (the colourisation time per image: same-sized images are colourised `EVAL_BATCH` at a time, each given its share).

    Every method colours a batch before the next batch is read, and each photo is scored against one
    `metrics.Truth` for all of them. `share_maps` colours inside
    `features.memo.shared_maps`: Cheng et al.'s nets make each photo's features and semantic maps once for all of them
    (the same scores; `seconds` then counts the maps for the first net only, so it is no speed comparison).
    `include_truth` adds the ground truth scored against itself, the ceiling of every metric.
    A trained run (`runs.Run`) is scored through `evaluate_run`: once per set, cached in its folder.
    """
    frames = []
    if include_truth:
        frames.append(pd.DataFrame([{"method": TRUTH, "dataset": eval_set.dataset, "image": n, **metrics.image_metrics(rgb, rgb),
                                     "seconds": 0.0} for n, rgb in zip(eval_set.names, eval_set.rgb)]))
    colorizers = {name: method for name, method in methods.items() if not isinstance(method, StoredRun)}
    rows: dict[str, list[dict]] = {name: [] for name in colorizers}
    desc = f"{', '.join(colorizers) if len(colorizers) < 3 else f'{len(colorizers)} methods'} on {eval_set.dataset}"
    with memo.shared_maps() if share_maps else contextlib.nullcontext():
        for idx in tqdm(_same_size_batches(eval_set.rgb) if colorizers else [], desc=desc, disable=not progress, leave=False):
            batch = np.stack([eval_set.rgb[i] for i in idx])  # (B, H, W, 3)
            preds = {name: colorize_u8(method, batch) for name, method in colorizers.items()}  # (B, H, W, 3), seconds
            for k, i in enumerate(idx):
                truth = metrics.Truth(eval_set.rgb[i])  # its ab, SSIM terms and colourfulness made once for all methods
                for name, (pred, seconds) in preds.items():
                    rows[name].append({"method": name, "dataset": eval_set.dataset, "image": eval_set.names[i],
                                       **metrics.image_metrics(pred[k], truth), "seconds": seconds / len(idx)})
    for name, method in methods.items():
        frames.append(evaluate_run(method, eval_set, progress=progress).assign(method=name) if name not in rows
                      else pd.DataFrame(rows[name]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


METRIC_COLUMNS = ("psnr", "ssim", "auc", "colorfulness_ratio", "seconds")


def summarize(per_image: pd.DataFrame, by: tuple[str, ...] = ("dataset", "method")) -> pd.DataFrame:
    """Mean of each metric per group, with the image count. PSNR is averaged over finite values only."""
    df = per_image.replace([np.inf, -np.inf], np.nan)
    cols = [c for c in METRIC_COLUMNS if c in df]
    out = df.groupby(list(by), sort=False)[cols].mean().reset_index()
    out.insert(len(by), "images", df.groupby(list(by), sort=False).size().values)
    return out


# --- Trained runs across seeds: the study's uncertainty ---------------------------
def set_digest(eval_set: EvalSet) -> str:
    """Names an evaluation set's images: part of every cached score's file name."""
    return hashlib.sha256("\n".join([eval_set.dataset, eval_set.split, *eval_set.names]).encode()).hexdigest()[:12]


def score_path(eval_set: EvalSet, folder, tag: str) -> Path:
    """Where `evaluate_cached` keeps the scores of `folder`'s methods under `tag` on `eval_set`."""
    digest = set_digest(eval_set)
    code = keys.key({"tag": tag, "images": digest}, [__name__])[:16]
    return Path(folder) / f"{tag}_{eval_set.dataset}_{eval_set.split}_{len(eval_set)}_{digest}_{code}.csv"


def evaluate_cached(methods: dict[str, object], eval_set: EvalSet, folder, tag: str, progress: bool = False,
                    share_maps: bool = False) -> pd.DataFrame:
    """`evaluate`, kept in `folder` (a run's folder, keyed by everything that made its weights).

    The file name carries `tag` (which methods), the set, a digest of its images and a key
    of the scoring code (`colorlab.keys`: this module and all it imports), so a cached score
    is never stale while `folder` stands for the methods.
    """
    path = score_path(eval_set, folder, tag)
    if path.exists():
        return pd.read_csv(path)
    df = evaluate(methods, eval_set, progress=progress, share_maps=share_maps)
    atomic.write_text(path, df.to_csv(index=False))
    return df


def evaluate_run(run, eval_set: EvalSet, progress: bool = False) -> pd.DataFrame:
    """Per-image metrics of a trained run on an evaluation set, cached in the run's folder."""
    return evaluate_cached({run.model_name: run.model}, eval_set, run.dir, "eval", progress)


def _score(items: list[tuple], eval_set: EvalSet) -> None:
    """Score (run, tag, wrap) items on one set photo by photo, each run's weights loaded once, Cheng et al.'s
    feature maps and each photo's `metrics.Truth` shared by all (`evaluate(share_maps=True)`), and keep each
    item's rows in its run's folder as `evaluate_cached` would (a job of `processes.side_by_side`)."""
    models, methods = {}, {}
    for run, tag, wrap in items:
        if run.key not in models:
            models[run.key] = run.model
        methods[f"{tag} {run.key}"] = models[run.key] if wrap is None else wrap(models[run.key])
    df = evaluate(methods, eval_set, progress=False, share_maps=True)
    for run, tag, _ in items:
        rows = df[df["method"] == f"{tag} {run.key}"].assign(method=run.model_name)
        atomic.write_text(score_path(eval_set, run.dir, tag), rows.to_csv(index=False))


def score_runs(trained: list, eval_sets: list[EvalSet], workers: int = 1, progress: bool = False,
               readouts: dict[str, Callable | None] | None = None) -> None:
    """Fill the score cache of every run on every set where it is missing, `workers` at a time
    (`processes.side_by_side`).

    `readouts` ({tag: wrap}; default {"eval": None}, the run's own score that `evaluate_run` reads): each
    run is scored as `wrap(run.model)` (the same weights read out another way; None = the model itself),
    cached in its folder under `tag` (`evaluate_cached`). `wrap` travels to the workers: a module-level
    function, a bound method or a partial of one. The runs a set still lacks a score of are split into
    `workers` groups, each scored photo by photo with all its readouts (`_score`): a photo's Cheng feature maps
    and its truth's metric terms are made once per group, not once per run. The `seconds` column of these
    scores is no speed measurement (a worker's thread beside another's, shared maps): `make bench` measures speed.
    """
    readouts = readouts or {"eval": None}
    unique = list({run.key: run for run in trained}.values())
    if workers > 1:  # each worker loads the weights it scores
        unique = [replace(run, _model=None) for run in unique]
    jobs = []
    for s in eval_sets:
        lacking = {run.key: [(tag, wrap) for tag, wrap in readouts.items() if not score_path(s, run.dir, tag).exists()]
                   for run in unique}
        todo = [run for run in unique if lacking[run.key]]
        groups = max(1, min(workers, len(todo)))
        jobs += [([(run, tag, wrap) for run in todo[i::groups] for tag, wrap in lacking[run.key]], s)
                 for i in range(groups) if todo[i::groups]]
    processes.side_by_side(_score, jobs, workers, progress, desc="scoring")


def score_variants(variants: dict[str, list], eval_set: EvalSet, progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """Per-image metrics for every run of every variant: adds columns `variant` and `seed` (runs not yet scored
    are scored `workers` at a time: `score_runs`)."""
    score_runs([run for run_list in variants.values() for run in run_list], [eval_set], workers)
    frames = []
    for variant, run_list in variants.items():
        for run in tqdm(run_list, desc=f"scoring {variant}", disable=not progress, leave=False):
            df = evaluate_run(run, eval_set)
            frames.append(df.assign(variant=variant, seed=run.train_config["seed"]))
    return pd.concat(frames, ignore_index=True)


def per_seed(per_image: pd.DataFrame, by: tuple[str, ...] = ("dataset", "variant", "seed")) -> pd.DataFrame:
    """One row per trained run: the mean of each metric over the images.

    Adds `colorfulness_error` = |mean colourfulness ratio - 1|: how far the run's colours are from
    the photos' vividness, either way (0 = as colourful as the photos; 1 = gray). A higher ratio is
    not better in itself: only a ratio nearer 1 is.
    """
    df = per_image.replace([np.inf, -np.inf], np.nan)
    cols = [c for c in METRIC_COLUMNS if c in df]
    out = df.groupby(list(by), sort=False)[cols].mean().reset_index()
    if "colorfulness_ratio" in out:
        out["colorfulness_error"] = (out["colorfulness_ratio"] - 1).abs()
    return out


def seed_ci(seed_means: pd.DataFrame, by: tuple[str, ...] = ("dataset", "variant"),
            columns: tuple[str, ...] = ("psnr", "ssim", "auc", "colorfulness_ratio")) -> pd.DataFrame:
    """Mean over seeds and its 95% t-interval: the uncertainty of training, not of the images.

    Long format, as `evaluation.summary_table`: groups..., metric, mean, ci95_low, ci95_high, n (seeds).
    """
    rows = []
    for key, g in seed_means.groupby(list(by), sort=False):
        group = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for col in columns:
            mean, lo, hi = metrics.summarize(g[col])
            rows.append({**group, "metric": col, "mean": mean, "ci95_low": lo, "ci95_high": hi, "n": len(g)})
    return pd.DataFrame(rows)


def format_ci(long: pd.DataFrame, index: tuple[str, ...] = ("dataset", "variant"), digits: int = 3) -> pd.DataFrame:
    """Long mean/CI table -> one row per group, one "mean [low, high]" column per metric (for reading)."""
    def cell(r):
        if not np.isfinite(r["ci95_low"]):
            return f"{r['mean']:.{digits}f}"
        return f"{r['mean']:.{digits}f} [{r['ci95_low']:.{digits}f}, {r['ci95_high']:.{digits}f}]"

    out = long.assign(value=long.apply(cell, axis=1))
    wide = out.pivot_table(index=list(index), columns="metric", values="value", aggfunc="first", sort=False)
    return wide.reset_index().rename_axis(columns=None)


def paired_difference(seed_means: pd.DataFrame, a: str, b: str, metric: str, dataset: str | None = None) -> dict:
    """Mean of (a - b) over seeds that both variants trained with, and its 95% t-interval.

    Pairing by seed removes the variation that the seed causes in both (same data
    order and initial weights where the architectures allow), so smaller effects show.
    """
    df = seed_means if dataset is None else seed_means[seed_means["dataset"] == dataset]
    wide = df.pivot_table(index="seed", columns="variant", values=metric)
    diff = (wide[a] - wide[b]).dropna()
    mean, lo, hi = metrics.summarize(diff)
    return {"a": a, "b": b, "metric": metric, "dataset": dataset, "seeds": len(diff), "diff": mean, "ci_low": lo, "ci_high": hi}


def differences(seed_means: pd.DataFrame, references: dict[str, list[str]],
                metrics_: tuple[str, ...] = ("psnr", "auc", "colorfulness_ratio")) -> pd.DataFrame:
    """Every variant minus its reference, paired by seed, per dataset and metric, with its 95% interval.

    references: reference variant -> the variants compared with it, e.g. {"full": ["no global features"]}.
    Long format: dataset, reference, variant, metric, diff, ci_low, ci_high, seeds.
    """
    rows = []
    for dataset in pd.unique(seed_means["dataset"]):
        here = seed_means[seed_means["dataset"] == dataset]
        for reference, variants in references.items():
            for variant in variants:
                if not {reference, variant} <= set(here["variant"]):
                    continue
                for metric in metrics_:
                    d = paired_difference(here, variant, reference, metric)
                    rows.append({"dataset": dataset, "reference": reference, "variant": variant, "metric": metric,
                                 **{k: d[k] for k in ("diff", "ci_low", "ci_high", "seeds")}})
    return pd.DataFrame(rows, columns=["dataset", "reference", "variant", "metric", "diff", "ci_low", "ci_high", "seeds"])


def verdict(diff: dict, claim: str = "a>b", margin: float = 0.0) -> str:
    """`reproduced`, `not reproduced` or `inconclusive` for a claim about a paired difference.

    claim "a>b": the interval lies above `margin`; "a<b" (for a metric where lower is
    better): below `-margin`; "a~b" (similar): inside (-margin, margin). The opposite
    evidence gives `not reproduced`; an interval that straddles the line gives `inconclusive`.
    """
    lo, hi = diff["ci_low"], diff["ci_high"]
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if claim == "a>b":
        return "reproduced" if lo > margin else "not reproduced" if hi < margin else "inconclusive"
    if claim == "a<b":
        return "reproduced" if hi < -margin else "not reproduced" if lo > -margin else "inconclusive"
    if claim == "a~b":
        return "reproduced" if (-margin < lo and hi < margin) else "not reproduced" if (lo > margin or hi < -margin) else "inconclusive"
    raise ValueError(f"unknown claim {claim!r}; use 'a>b', 'a<b' or 'a~b'")


def hard_cases(eval_set: EvalSet, fraction: float = 0.25) -> list[str]:
    """Names of the images the gray baseline colours worst (lowest AuC): the most colourful scenes.

    The paper's "hard cases" (Iizuka sec. 4.8) are chosen by eye; this makes the
    notion measurable without looking at any method's output.
    """
    from colorlab.baselines import GrayBaseline

    df = evaluate({"gray": GrayBaseline()}, eval_set, progress=False)
    k = max(1, round(fraction * len(df)))
    return df.nsmallest(k, "auc")["image"].tolist()


def claims_table(rows: list[dict]) -> pd.DataFrame:
    """Claims beside measurements: each row a `paired_difference` dict plus `claim`, `paper`, `verdict`, `why`."""
    cols = ["claim", "paper", "dataset", "metric", "a", "b", "seeds", "images", "ours", "diff", "ci_low", "ci_high", "verdict", "why"]
    df = pd.DataFrame(rows)
    for count in ("seeds", "images"):  # whole numbers, blank where a row has none
        if count in df:
            df[count] = df[count].astype("Int64")
    return df.reindex(columns=[c for c in cols if c in df])


@torch.inference_mode()
def classification_accuracy(model, spec, batch: int = 256) -> dict:
    """Scene top-1 / top-5 of `model.classify` on the grayscale images of a decoded split (`profiles.DataSpec`)."""
    decoded = data.decoded(spec.name, spec.split, spec.size, spec.limit)
    logits = torch.cat([model.classify(color.rgb_to_gray(color.to_float(decoded.rgb[i : i + batch])))
                        for i in range(0, len(decoded.rgb), batch)])
    acc = metrics.topk_accuracy(logits, torch.as_tensor(np.asarray(decoded.labels)), ks=(1, 5))
    return {"images": len(decoded.rgb), "top1": acc[1], "top5": acc[5], "chance_top1": 1 / logits.shape[1]}


def paired_by_image(per_image: pd.DataFrame, a: str, b: str, metric: str, dataset: str) -> dict:
    """Mean of (a - b) over the images both methods coloured, with its 95% t-interval (uncertainty of the images)."""
    df = per_image[per_image["dataset"] == dataset].replace([np.inf, -np.inf], np.nan)
    wide = df.pivot_table(index="image", columns="method", values=metric)
    diff = (wide[a] - wide[b]).dropna()
    mean, lo, hi = metrics.summarize(diff)
    return {"a": a, "b": b, "metric": metric, "dataset": dataset, "images": len(diff), "diff": mean, "ci_low": lo, "ci_high": hi}


def proportion_difference(p_a: float, p_b: float, n: int, a: str = "a", b: str = "b", metric: str = "top1") -> dict:
    """Difference of two accuracies on the same n images, with a normal-approximation 95% interval.

    The images are shared, so the unpaired standard error used here is conservative
    (it ignores the positive correlation between the two conditions).
    """
    se = float(np.sqrt((p_a * (1 - p_a) + p_b * (1 - p_b)) / max(n, 1)))
    diff = p_a - p_b
    return {"a": a, "b": b, "metric": metric, "images": n, "diff": diff, "ci_low": diff - 1.96 * se, "ci_high": diff + 1.96 * se}
