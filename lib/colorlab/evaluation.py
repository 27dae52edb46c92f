"""`colorlab evaluate`: score colourized images against their ground truth.

    colorlab evaluate --pred results/koala --truth data/kodak24 --csv scores.csv --json summary.json

Files are matched by their path relative to each folder, without the
extension, so `pred/a/b.png` is scored against `truth/a/b.jpg`. Both are read
with `colorlab.images.read_rgb`; a prediction of another size is resized to
its ground truth's (and reported). What cannot be scored is listed, never
fatal: files with no partner, unreadable files (with their error), two files
sharing one name, and grayscale ground truths (no colour to compare with).

The per-image table has the columns `name, psnr, ssim, auc,
colorfulness_ratio` (see `colorlab.metrics`); `summary_table` turns it into
mean and 95% confidence interval per metric, the tables `plots.bar_with_ci`
draws. Notebooks score in-memory images with `evaluate_arrays`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from colorlab import atomic, color, images, metrics

METRICS = ("psnr", "ssim", "auc", "colorfulness_ratio")
COLUMNS = ("name", *METRICS)


def _table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype({m: float for m in METRICS})  # float even when empty


def _by_name(folder: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for p in images.list_images(folder):
        found.setdefault(p.relative_to(folder).with_suffix("").as_posix(), []).append(p)
    return found


def evaluate_dirs(pred: str | Path, truth: str | Path, progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """Score every prediction in `pred` against its namesake in `truth` -> (per-image table, summary).

    The summary holds the counts, the mean and 95% CI of each metric over
    the scored pairs (`metrics.summarize`: an identical pair's infinite PSNR
    and undefined colourfulness ratios are left out of the means; `n` says
    how many values each mean uses), and the names of everything not scored.
    """
    pred, truth = Path(pred), Path(truth)
    preds, truths = _by_name(pred), _by_name(truth)
    summary: dict = {
        "pred_dir": str(pred),
        "truth_dir": str(truth),
        "unmatched_pred": sorted(k for k in preds if k not in truths),
        "unmatched_truth": sorted(k for k in truths if k not in preds),
        "skipped": [],
        "grayscale_truth": [],
        "resized": [],
    }
    rows = []
    for name in tqdm(sorted(set(preds) & set(truths)), desc="evaluate", unit="image", disable=not progress):
        if len(preds[name]) > 1 or len(truths[name]) > 1:
            files = [p.name for p in preds[name] + truths[name]]
            summary["skipped"].append({"name": name, "error": f"several files share this name: {', '.join(files)}"})
            continue
        try:
            truth_rgb = images.read_rgb(truths[name][0])
            if images.is_grayscale(truth_rgb):
                summary["grayscale_truth"].append(name)
                continue
            pred_rgb = images.read_rgb(preds[name][0])
            if pred_rgb.shape != truth_rgb.shape:
                summary["resized"].append({"name": name, "pred_size": list(pred_rgb.shape[:2]), "truth_size": list(truth_rgb.shape[:2])})
                pred_rgb = images.resize(pred_rgb, *truth_rgb.shape[:2])
            rows.append({"name": name, **metrics.image_metrics(pred_rgb, truth_rgb)})
        except ValueError as e:  # ImageReadError names the file; metric errors (e.g. a 2-pixel image) do not
            summary["skipped"].append({"name": name, "error": str(e) if isinstance(e, images.ImageReadError) else f"{name}: {e}"})
    df = _table(rows)
    if summary["resized"]:
        warnings.warn(f"{len(summary['resized'])} prediction(s) differ in size from their ground truth "
                      "and were resized to it; see summary['resized']")
    summary["counts"] = {
        "pred_files": sum(map(len, preds.values())),
        "truth_files": sum(map(len, truths.values())),
        "scored": len(df),
        **{k: len(summary[k]) for k in ("unmatched_pred", "unmatched_truth", "skipped", "grayscale_truth", "resized")},
        "identical": int(np.isinf(df["psnr"]).sum()),
    }
    summary.update(_means(df))
    return df, summary


def _means(df: pd.DataFrame) -> dict:
    out: dict = {"means": {}, "ci95": {}, "n": {}}
    for m in METRICS:
        mean, low, high = metrics.summarize(df[m].to_numpy(dtype=float))
        out["means"][m], out["ci95"][m] = mean, [low, high]
        out["n"][m] = int(np.isfinite(df[m].to_numpy(dtype=float)).sum())
    return out


def _as_uint8_list(x) -> list[np.ndarray]:
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return list(color.to_uint8(x))  # (B, 3, H, W) in [0, 1] -> (H, W, 3) uint8 each
    return [np.asarray(a) for a in x]


def evaluate_arrays(preds, truths, names=None) -> pd.DataFrame:
    """Score in-memory images -> the per-image table (same columns as `evaluate_dirs`).

    `preds`, `truths`: (N, H, W, 3) uint8 arrays or lists of (H, W, 3) uint8
    images (a float tensor (N, 3, H, W) in [0, 1], a model's output, is
    converted with `color.to_uint8`). Sizes must match pair by pair. A grey
    ground truth is scored but its colourfulness ratio is NaN.
    """
    preds, truths = _as_uint8_list(preds), _as_uint8_list(truths)
    names = [str(i) for i in range(len(truths))] if names is None else [str(n) for n in names]
    if not len(preds) == len(truths) == len(names):
        raise ValueError(f"evaluate_arrays: {len(preds)} predictions, {len(truths)} ground truths and {len(names)} names")
    rows = []
    for name, p, t in zip(names, preds, truths):
        try:
            rows.append({"name": name, **metrics.image_metrics(p, t)})
        except (TypeError, ValueError) as e:
            raise type(e)(f"image {name!r}: {e}") from e
    return _table(rows)


def summary_table(df: pd.DataFrame, by: str | list[str] | None = None, columns=METRICS) -> pd.DataFrame:
    """Per-image scores -> one row per (group, metric): mean, ci95_low, ci95_high, n (finite values used).

    `by` names the columns that tell groups apart (e.g. "model", or
    ["dataset", "model"]); None summarizes the whole table.
    """
    by = [by] if isinstance(by, str) else list(by or [])
    groups = df.groupby(by, sort=False) if by else [((), df)]
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        for m in columns:
            values = g[m].to_numpy(dtype=float)
            mean, low, high = metrics.summarize(values)
            rows.append({**dict(zip(by, key)), "metric": m, "mean": mean, "ci95_low": low, "ci95_high": high,
                         "n": int(np.isfinite(values).sum())})
    return pd.DataFrame(rows, columns=[*by, "metric", "mean", "ci95_low", "ci95_high", "n"])


def _json_safe(x):
    """inf / NaN -> None: strict JSON has no such numbers."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def write_summary_json(summary: dict, path: str | Path) -> Path:
    return atomic.write_text(Path(path), json.dumps(_json_safe(summary), indent=2) + "\n")


def write_scores_csv(df: pd.DataFrame, path: str | Path) -> Path:
    return atomic.write_text(Path(path), df.to_csv(index=False))


def format_summary(summary: dict) -> str:
    c = summary["counts"]
    lines = [f"scored {c['scored']} image pair(s): {summary['pred_dir']} vs {summary['truth_dir']}"]
    units = {"psnr": " dB"}
    for m in METRICS:
        mean, (low, high) = summary["means"][m], summary["ci95"][m]
        ci = f"  (95% CI {low:.3f} .. {high:.3f})" if math.isfinite(low) else ""
        lines.append(f"  {m:<20}{mean:8.3f}{units.get(m, '')}{ci}  n={summary['n'][m]}")
    if c["identical"]:
        lines.append(f"  {c['identical']} pair(s) identical (PSNR inf, left out of the PSNR mean)")
    lines.append(
        f"not scored: {c['unmatched_pred']} prediction(s) and {c['unmatched_truth']} ground truth(s) without a partner, "
        f"{c['skipped']} skipped, {c['grayscale_truth']} grayscale ground truth(s)"
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, type=Path, help="folder of colourized images")
    parser.add_argument("--truth", required=True, type=Path,
                        help="folder of ground-truth colour images (matched by relative path, any extension)")
    parser.add_argument("--csv", type=Path, help="write per-image scores (name, psnr, ssim, auc, colorfulness_ratio) here")
    parser.add_argument("--json", type=Path, help="write the summary (means, counts, files not scored) here")


def run(args: argparse.Namespace) -> int:
    for flag, folder in (("--pred", args.pred), ("--truth", args.truth)):
        if not folder.is_dir():
            print(f"colorlab evaluate: {flag} {folder}: no such folder", file=sys.stderr)
            return 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the resized files are listed one by one below
        df, summary = evaluate_dirs(args.pred, args.truth, progress=sys.stderr.isatty())
    for r in summary["resized"]:
        print(f"warning: {r['name']}: prediction {r['pred_size']} resized to its ground truth's {r['truth_size']}", file=sys.stderr)
    for s in summary["skipped"]:
        print(f"skipped: {s['error']}", file=sys.stderr)
    if args.csv:
        write_scores_csv(df, args.csv)
    if args.json:
        write_summary_json(summary, args.json)
    print(format_summary(summary))
    return 0 if len(df) else 1
