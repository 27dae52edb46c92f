"""Figure helpers every notebook uses, so the study's figures look alike.

- `image_grid`: photos side by side (grayscale input / predictions / ground
  truth), column and row titles, a metric line under each image;
- `loss_curves`: training and validation losses against the step;
- `bar_with_ci`: means with their 95% confidence intervals (the long tables
  of `colorlab.evaluation.summary_table`);
- `differences`: paired differences with their intervals (a forest plot);
- `budget_curve`: quality against training CPU-minutes (`colorlab.budget`);
- `cheng_budget`: Cheng et al.'s quality against its training pixels.

Each returns a matplotlib `Figure`; save it with `colorlab.reports.save_figure`.
matplotlib's backend is left alone when anything chose one (a notebook's
inline backend, `MPLBACKEND`, `matplotlib.use`); only when nothing did is
Agg selected, at the first figure (not at import), so a script or a test on
a machine without a display never probes for a GUI.
"""

from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd

CELL_INCHES = 2.4  # side of one image in image_grid
X_COLUMNS = ("step", "epoch", "time_s")  # history columns that are not curves


def _pyplot():
    get = getattr(matplotlib.rcParams, "_get_backend_or_none", None)
    if get is not None and get() is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _displayable(img) -> tuple[np.ndarray, dict]:
    """An image as imshow wants it, and the imshow options that keep its values honest."""
    if hasattr(img, "detach"):  # a torch tensor; duck-typed so that plotting does not import torch
        img = img.detach().float().cpu()
        img = img.squeeze(0) if img.ndim == 3 and img.shape[0] == 1 else img
        img = img.permute(1, 2, 0) if img.ndim == 3 and img.shape[0] == 3 else img  # (3, H, W) -> (H, W, 3)
        img = img.numpy()
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] not in (3, 4)):
        raise ValueError(f"image_grid: cannot show an array of shape {img.shape} as an image")
    vmax = 255 if img.dtype == np.uint8 else 1.0
    # gray maps stretch to their own min / max unless told the range: a dark photo must stay dark
    return img, ({"cmap": "gray", "vmin": 0, "vmax": vmax} if img.ndim == 2 else {})


def image_grid(
    rows: Sequence[Sequence],
    row_titles: Sequence[str] | None = None,
    col_titles: Sequence[str] | None = None,
    annotations: Sequence[Sequence[str | None]] | None = None,
    cell_inches: float = CELL_INCHES,
    title: str | None = None,
):
    """Images in a grid, one list per row -> Figure with len(rows) x (longest row) axes.

    Images: (H, W, 3) or (H, W) arrays, uint8 or float in [0, 1], or torch
    tensors (3, H, W) / (1, H, W). Gray images are drawn with a fixed 0..max
    range. `annotations[i][j]` is written under image j of row i (e.g.
    "PSNR 24.1 dB"); rows may be shorter than the longest, leaving blanks.
    """
    if not rows or not any(len(r) for r in rows):
        raise ValueError("image_grid needs at least one image")
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    for what, given, want in (("row_titles", row_titles, n_rows), ("col_titles", col_titles, n_cols)):
        if given is not None and len(given) != want:
            raise ValueError(f"image_grid: {len(given)} {what} for {want} {what.split('_')[0]}s")
    plt = _pyplot()
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_inches * n_cols, cell_inches * n_rows + 0.3 * bool(annotations)),
                             squeeze=False, layout="constrained")
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            if j >= len(row) or row[j] is None:
                ax.axis("off")
                continue
            img, opts = _displayable(row[j])
            ax.imshow(img, **opts)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            note = annotations[i][j] if annotations and i < len(annotations) and j < len(annotations[i]) else None
            if note:
                ax.set_xlabel(note, fontsize=9)
            if col_titles is not None and i == 0:
                ax.set_title(_fit(col_titles[j], cell_inches, 10), fontsize=10)  # wrapped like the row titles
            if row_titles is not None and j == 0:
                height = cell_inches * min(1.0, img.shape[0] / img.shape[1])  # the drawn image's height
                ax.set_ylabel(_fit(row_titles[i], height), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _fit(title: str, inches: float, fontsize: int = 9) -> str:
    """Wrap a title into lines no longer than `inches` (about 0.6 em a character), breaking at
    spaces and after '/' first, so long file names stay beside their image instead of overlapping."""
    width = max(8, int(inches * 72 / (0.6 * fontsize)))
    lines = textwrap.wrap(title.replace("/", "/ "), width=width, break_long_words=True)
    return "\n".join(line.replace("/ ", "/") for line in lines)


def _loss_columns(df: pd.DataFrame) -> list[str]:
    """Columns worth drawing as loss curves: numeric, not an x axis, not an accuracy."""
    return [c for c in df.columns if c not in X_COLUMNS and pd.api.types.is_numeric_dtype(df[c])
            and not any(word in c.lower() for word in ("top", "acc"))]


def _part(column: str) -> str:
    """The loss a column measures: "train_color" and "val_color" are both "color"."""
    head, _, rest = column.partition("_")
    return rest if head in ("train", "val") and rest else column


def loss_curves(
    history: pd.DataFrame | Mapping[str, pd.DataFrame],
    columns: Sequence[str] | None = None,
    x: str = "step",
    smooth: int = 1,
    logy: bool = False,
    title: str | None = None,
    ylabel: str = "loss",
):
    """Loss against step for one training history (`train.fit(...).history`) or a dict {name: history}.

    One axis per loss (colour, class, total, ...): each loss gets its own y scale,
    so a colour MSE of 0.02 is not flattened by a class cross-entropy of 4.6.
    `columns` defaults to every numeric column except the x axes (step, epoch,
    time_s) and accuracies (top-k). Validation columns (`val_*`) are dashed with
    markers (they are sparse); `smooth` > 1 draws a rolling mean of that many
    logged points for the other columns.
    """
    runs = {k: pd.DataFrame(v) for k, v in history.items()} if isinstance(history, Mapping) else {"": pd.DataFrame(history)}
    chosen = {name: list(columns) if columns is not None else _loss_columns(df) for name, df in runs.items()}
    for name, cols in chosen.items():
        missing = [c for c in cols if c not in runs[name]]
        if missing:
            raise KeyError(f"loss_curves: {name or 'history'} has no column(s) {missing}; it has {list(runs[name].columns)}")
    parts = list(dict.fromkeys(_part(c) for cols in chosen.values() for c in cols)) or [ylabel]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(parts), figsize=(max(6.4, 3.6 * len(parts)), 3.8), layout="constrained",
                             squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, (name, df) in enumerate(runs.items()):
        xs = df[x] if x in df else pd.Series(np.arange(len(df)), index=df.index)
        for col in chosen[name]:
            ax = axes[0, parts.index(_part(col))]
            keep = df[col].notna()  # validation rows are sparse: join the points that exist
            y = df[col][keep]
            is_val = col.startswith("val_")
            if smooth > 1 and not is_val:
                y = y.rolling(smooth, min_periods=1).mean()
            colour = colours[(r if len(runs) > 1 else int(is_val)) % len(colours)]
            label = f"{name}: {col}" if name else col
            ax.plot(xs[keep], y, color=colour, label=label, linestyle="--" if is_val else "-",
                    marker="o" if is_val else None, markersize=3)
    for ax, part in zip(axes[0], parts):
        ax.set_title(f"{part} loss" if part not in ("loss", ylabel) else ylabel, fontsize=10)
        ax.set_ylabel(ylabel if part in ("loss", ylabel) else part)
        ax.set_xlabel(x if any(x in df for df in runs.values()) else "logged point")
        if logy:
            ax.set_yscale("log")
        if ax.lines:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def bar_with_ci(
    df: pd.DataFrame,
    x: str | None = None,
    hue: str | None = None,
    facet: str | None = "metric",
    value: str = "mean",
    low: str = "ci95_low",
    high: str = "ci95_high",
    title: str | None = None,
):
    """Bars of `value` with error bars from `low` to `high` (a 95% CI), one axes per `facet` value.

    Takes the long table of `evaluation.summary_table` (columns: groups...,
    metric, mean, ci95_low, ci95_high). `x` names the bars (default: the
    first group column); `hue` splits each bar into side-by-side bars (e.g.
    the dataset); each metric gets its own axes because their scales differ.
    Missing intervals (NaN, e.g. one image) draw no error bar.
    """
    stats = {value, low, high, "n"}
    if x is None:
        candidates = [c for c in df.columns if c not in stats and c not in (facet, hue)]
        if not candidates:
            raise ValueError(f"bar_with_ci: no column to put on the x axis in {list(df.columns)}")
        x = candidates[0]
    facets = list(pd.unique(df[facet])) if facet and facet in df else [None]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(facets), figsize=(max(3.2, 0.9 * df[x].nunique()) * len(facets), 3.6),
                             squeeze=False, layout="constrained")
    hues = list(pd.unique(df[hue])) if hue else [None]
    width = 0.8 / len(hues)
    for ax, f in zip(axes[0], facets):
        part = df if f is None else df[df[facet] == f]
        labels = list(pd.unique(part[x]))
        for h_i, h in enumerate(hues):
            sub = part if h is None else part[part[hue] == h]
            sub = sub.set_index(x).reindex(labels)
            mean = sub[value].to_numpy(dtype=float)
            err = np.stack((mean - sub[low].to_numpy(dtype=float), sub[high].to_numpy(dtype=float) - mean))
            pos = np.arange(len(labels)) + (h_i - (len(hues) - 1) / 2) * width
            ax.bar(pos, mean, width, yerr=np.nan_to_num(err), capsize=3, label=None if h is None else str(h))
        slanted = len(labels) > 3  # long method names overlap when upright
        ax.set_xticks(np.arange(len(labels)), [str(v) for v in labels], rotation=30 if slanted else 0,
                      ha="right" if slanted else "center")
        ax.set_ylabel(str(f) if f is not None else value)
        ax.grid(axis="y", alpha=0.3)
        if hue:
            ax.legend(fontsize=8, title=hue)
    if title:
        fig.suptitle(title)
    return fig


METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "auc": "AuC", "colorfulness_ratio": "colourfulness ratio",
                 "colorfulness_error": "|colourfulness ratio - 1|", "psnr_vs_gray": "PSNR - gray (dB)",
                 "auc_vs_gray": "AuC - gray"}


def differences(df: pd.DataFrame, title: str):
    """A forest plot of paired differences (`study.differences`): one axes per metric, one row per
    variant (and dataset), the difference from its reference with its 95% interval, and a line at 0.

    Drawn as differences, not as bars from zero, so a 0.3 dB effect is as visible as it is real.
    """
    metrics_ = list(pd.unique(df["metric"]))
    datasets = list(pd.unique(df["dataset"]))
    labels = list(dict.fromkeys(f"{r.variant}\n vs {r.reference}" for r in df.itertuples()))
    plt = _pyplot()
    fig, axes = plt.subplots(1, max(1, len(metrics_)), figsize=(3.4 * max(1, len(metrics_)) + 1.6, 0.55 * len(labels) + 1.6),
                             squeeze=False, layout="constrained", sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    step = 0.7 / max(1, len(datasets))
    for ax, metric in zip(axes[0], metrics_):
        part = df[df["metric"] == metric]
        for d_i, dataset in enumerate(datasets):
            sub = part[part["dataset"] == dataset]
            ys = np.array([labels.index(f"{r.variant}\n vs {r.reference}") for r in sub.itertuples()], float)
            ys = ys + (d_i - (len(datasets) - 1) / 2) * step
            diff = sub["diff"].to_numpy(float)
            err = np.stack((diff - sub["ci_low"].to_numpy(float), sub["ci_high"].to_numpy(float) - diff))
            ax.errorbar(diff, ys, xerr=np.nan_to_num(err), fmt="o", capsize=3, color=colours[d_i % len(colours)],
                        label=str(dataset) if len(datasets) > 1 else None)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel(f"difference in {METRIC_LABELS.get(metric, metric)}")
        ax.xaxis.set_major_locator(plt.MaxNLocator(4, symmetric=False))
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(np.arange(len(labels)), labels, fontsize=8)
    axes[0, 0].invert_yaxis()
    if len(datasets) > 1:  # below the axes, where it hides no interval
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=len(datasets),
                   fontsize=8, title="images", title_fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def channel_grid(spaces: Mapping[str, object], channel_names: Mapping[str, Sequence[str] | str], cell_inches: float = CELL_INCHES):
    """One row per colour space, one panel per channel, each with its own colour bar.

    `spaces` maps a space name to a (1, 3, H, W) tensor or (H, W, 3) array in that space's units.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(len(spaces), 3, figsize=(3 * cell_inches * 1.25, len(spaces) * cell_inches), squeeze=False)
    for row, (space, img) in zip(axes, spaces.items()):
        arr = img.detach().float().cpu().numpy()[0] if hasattr(img, "detach") else np.moveaxis(np.asarray(img), -1, 0)
        names = channel_names.get(space, "123")
        for ax, channel, name in zip(row, arr, names):
            if name in ("R", "G", "B", "Y", "L*"):
                shown = ax.imshow(channel, cmap="gray")
            else:  # signed chroma: centred so that neutral is white
                m = float(np.abs(channel).max()) or 1.0
                shown = ax.imshow(channel, cmap="coolwarm", vmin=-m, vmax=m)
            ax.set_title(f"{space}: {name}  [{channel.min():.2f}, {channel.max():.2f}]", fontsize=9)
            ax.axis("off")
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    return fig


def ab_histogram(counts: np.ndarray, edges: np.ndarray, mark: tuple[float, float] | None = None, title: str = ""):
    """Log-scaled 2-D histogram of a*b* (counts with a on rows), optionally marking one (a, b) point."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.4))
    shown = ax.imshow(np.log10(1 + counts.T), origin="lower", extent=(edges[0], edges[-1], edges[0], edges[-1]), cmap="magma")
    fig.colorbar(shown, ax=ax, label="log10(1 + pixels)")
    if mark is not None:
        ax.plot(*mark, marker="+", color="cyan", markersize=14, mew=2, label=f"mean ab ({mark[0]:.1f}, {mark[1]:.1f})")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("a* (green - red)")
    ax.set_ylabel("b* (blue - yellow)")
    ax.set_title(title, fontsize=10)
    return fig


def _series_colours(plt, n: int) -> list:
    """`n` colours of the style's cycle for a figure whose targets are drawn in red: red left out, repeated past
    the cycle's end (no series is dropped)."""
    from matplotlib.colors import same_color

    cycle = [c for c in plt.rcParams["axes.prop_cycle"].by_key()["color"] if not same_color(c, "tab:red")]
    return [cycle[i % len(cycle)] for i in range(n)]


def _legend_entries(axes) -> tuple[list, list[str]]:
    """(handles, labels) of every labelled artist on any of `axes`, each label once, in the order first met."""
    found = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            found.setdefault(label, handle)
    return list(found.values()), list(found)


def budget_curve(df: pd.DataFrame, title: str, metrics_: Sequence[str] = ("psnr_vs_gray", "auc_vs_gray", "colorfulness_ratio"),
                 targets: Mapping[str, float] | None = None):
    """Quality against training CPU-minutes (log axis), one row per model, one axes per metric:
    a line per recipe and width, solid on the first dataset, dashed on the second; the gray
    baseline (0 for a difference from gray) and any target as horizontal lines."""
    plt = _pyplot()
    from matplotlib import ticker
    models = list(pd.unique(df["model"]))
    datasets = list(pd.unique(df["dataset"]))
    fig, axes = plt.subplots(len(models), len(metrics_), figsize=(3.6 * len(metrics_) + 1.0, 2.9 * len(models) + 1.0),
                             squeeze=False, layout="constrained")
    lines = list(dict.fromkeys((r.recipe, r.width) for r in df.itertuples()))
    colours = _series_colours(plt, len(lines))
    for row, model in zip(axes, models):
        for ax, metric in zip(row, metrics_):
            for (recipe, width), colour in zip(lines, colours):
                for dataset, style in zip(datasets, ("-", "--", ":")):
                    sub = df[(df.model == model) & (df.recipe == recipe) & (df.width == width) & (df.dataset == dataset)]
                    if len(sub):
                        sub = sub.sort_values("cpu_minutes")
                        ax.plot(sub.cpu_minutes, sub[metric], style, marker="o", markersize=4, color=colour,
                                label=f"{recipe}, width {width:g}" if dataset == datasets[0] else None)
            ax.axhline(1.0 if metric == "colorfulness_ratio" else 0.0, color="black", linewidth=0.8)
            if targets and metric in targets:
                ax.axhline(targets[metric], color="tab:red", linewidth=0.8, linestyle=":")
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())  # minor labels overlap on a short log axis
            ax.set_xlabel("training CPU-minutes (log)")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            ax.set_title(model, fontsize=9)
            ax.grid(alpha=0.3)
    handles, labels = _legend_entries(axes)  # a line that only a later model has is named too
    styles = ", ".join(f"{s} {d}" for d, s in zip(datasets, ("solid", "dashed", "dotted")))
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=8,
               title=f"lines: {styles}; black: gray baseline (ratio 1 = the photos); red dotted: target", title_fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def vividness_tradeoff(df: pd.DataFrame, title: str, label: str = "temperature",
                       target: tuple[float, float] | None = (0.3, 0.75)):
    """Colourfulness ratio against PSNR over gray, one axes per dataset: a small dot per seed and a
    large one for the mean over seeds of each `label` value (a readout temperature, a model); the
    target's corner (PSNR over gray at least x, ratio at least y) shaded."""
    plt = _pyplot()
    datasets = list(pd.unique(df["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets) + 0.5, 4.0), squeeze=False, layout="constrained")
    values = list(pd.unique(df[label]))
    colours = _series_colours(plt, len(values))  # red draws the target's corner
    for ax, dataset in zip(axes[0], datasets):
        for value, colour in zip(values, colours):
            sub = df[(df["dataset"] == dataset) & (df[label] == value)]
            ax.scatter(sub["psnr_vs_gray"], sub["colorfulness_ratio"], s=12, color=colour, alpha=0.5)
            ax.scatter(sub["psnr_vs_gray"].mean(), sub["colorfulness_ratio"].mean(), s=60, color=colour,
                       edgecolor="black", label=f"{label} {value:g}" if isinstance(value, float) else str(value))
        if target:
            x0, y0 = target
            ax.axvline(x0, color="tab:red", linewidth=0.8, linestyle=":")
            ax.axhline(y0, color="tab:red", linewidth=0.8, linestyle=":")
            xmax, ymax = max(ax.get_xlim()[1], x0 + 0.2), max(ax.get_ylim()[1], y0 + 0.1)
            ax.fill_between([x0, xmax], y0, ymax, color="tab:red", alpha=0.06, linewidth=0)
            ax.set_xlim(right=xmax)
            ax.set_ylim(top=ymax)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_xlabel("PSNR over gray (dB)")
        ax.set_ylabel("colourfulness ratio (1 = the photos')")
        ax.set_title(dataset, fontsize=9)
        ax.grid(alpha=0.3)
    handles, labels = _legend_entries(axes)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(5, len(labels)), fontsize=8,
               title="small dots: one seed each; large: their mean; red corner: the target", title_fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def cheng_budget(df: pd.DataFrame, title: str,
                 metrics_: Sequence[str] = ("psnr_vs_gray", "auc_vs_gray", "colorfulness_ratio")):
    """Cheng et al.'s quality against its training pixels (log axis; `budget.cheng_curve`), one row per
    metric, one column per evaluation set: per reference set a solid line through its photo counts (at
    one number of pixels per photo) and a dashed one through the pixels per photo of one photo count."""
    plt = _pyplot()
    from matplotlib import ticker
    datasets = list(pd.unique(df["dataset"]))
    fig, axes = plt.subplots(len(metrics_), len(datasets), figsize=(3.6 * len(datasets) + 0.5, 2.6 * len(metrics_) + 1.2),
                             squeeze=False, layout="constrained")
    colours = dict(zip(pd.unique(df["references"]), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    lines = []  # (label, column held fixed, its value, references, style)
    for refs, g in df.groupby("references", sort=False):
        for px, h in g.groupby("pixels", sort=False):
            if h["photos"].nunique() > 1:
                lines.append((f"{refs}: more photos, {px} pixels each", "pixels", px, refs, "-"))
        for n, h in g.groupby("photos", sort=False):
            if h["pixels"].nunique() > 1:
                lines.append((f"{refs}: {n} photos, more pixels of each", "photos", n, refs, "--"))
    for row, metric in zip(axes, metrics_):
        for ax, dataset in zip(row, datasets):
            for label, column, value, refs, style in lines:
                sub = df[(df.dataset == dataset) & (df.references == refs) & (df[column] == value)]
                sub = sub.sort_values("training_pixels")
                ax.plot(sub.training_pixels, sub[metric], style, marker="o", markersize=4, color=colours[refs],
                        label=label)
            ax.axhline(1.0 if metric == "colorfulness_ratio" else 0.0, color="black", linewidth=0.8)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 3.0)))
            ax.xaxis.set_major_formatter(ticker.EngFormatter(sep=""))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xlabel("training pixels (log)")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            ax.set_title(f"scored on {dataset}", fontsize=9)
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=max(1, min(len(datasets), len(labels))), fontsize=8,
               title="black: gray baseline (colourfulness ratio 1 = the photos')", title_fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig
