"""colorlab.plots: each helper returns a Figure of the right shape that saves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import same_color
from matplotlib.figure import Figure

from colorlab import evaluation, plots, reports


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _img(h=16, w=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_image_grid(tmp_path):
    gray = _img()[..., 0]
    rows = [[gray, _img(seed=1), _img(seed=2)], [torch.rand(1, 16, 20), torch.rand(3, 16, 20)]]  # ragged
    fig = plots.image_grid(rows, row_titles=["kodim01", "kodim02"], col_titles=["gray", "ours", "truth"],
                           annotations=[[None, "PSNR 24.1 dB", ""], ["", "PSNR 21.0 dB"]])
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    ax = fig.axes
    assert ax[0].get_title() == "gray" and ax[0].get_ylabel() == "kodim01" and ax[3].get_ylabel() == "kodim02"
    assert ax[1].get_xlabel() == "PSNR 24.1 dB" and ax[4].get_xlabel() == "PSNR 21.0 dB"
    assert not ax[5].axison  # the blank cell of the short row
    im = ax[0].get_images()[0]
    assert im.get_cmap().name == "gray" and im.get_clim() == (0, 255)  # gray keeps its range, not stretched
    path = reports.save_figure(fig, "grid", root=tmp_path)
    assert path == tmp_path / "figures" / "grid.png" and path.stat().st_size > 1000


def test_image_grid_checks_its_input():
    with pytest.raises(ValueError, match="col_titles"):
        plots.image_grid([[_img(), _img()]], col_titles=["one"])
    with pytest.raises(ValueError, match="shape"):
        plots.image_grid([[np.zeros((4, 4, 5))]])


def test_loss_curves_single_and_several(tmp_path):
    h = pd.DataFrame({"step": [1, 2, 3, 4], "epoch": [0.1, 0.2, 0.3, 0.4], "time_s": [1, 2, 3, 4],
                      "train_loss": [1.0, 0.8, 0.7, 0.6], "val_loss": [np.nan, 0.9, np.nan, 0.7],
                      "val_top1": [np.nan, 0.1, np.nan, 0.2]})
    fig = plots.loss_curves(h, smooth=2)
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and ax.get_xlabel() == "step" and ax.get_ylabel() == "loss"
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["train_loss", "val_loss"]  # no x axes, no accuracy
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1.0, 0.9, 0.75, 0.65])  # rolling mean of 2
    np.testing.assert_array_equal(ax.get_lines()[1].get_xdata(), [2, 4])  # sparse validation points joined

    fig = plots.loss_curves({"cpu": h, "smoke": h}, columns=["val_loss"], logy=True)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["cpu: val_loss", "smoke: val_loss"]
    assert fig.axes[0].get_yscale() == "log"
    assert reports.save_figure(fig, "loss", root=tmp_path).exists()
    with pytest.raises(KeyError, match="nope"):
        plots.loss_curves(h, columns=["nope"])


def test_each_loss_gets_its_own_axis():
    """Iizuka's colour MSE (~0.02) and class cross-entropy (~4.6) are not drawn on one scale."""
    h = pd.DataFrame({"step": [1, 2, 3], "train_color": [0.03, 0.02, 0.02], "train_class": [4.6, 4.5, 4.4],
                      "val_color": [np.nan, 0.025, 0.021], "val_class": [np.nan, 4.6, 4.5]})
    fig = plots.loss_curves(h, title="Iizuka et al.: 3 steps on 10 images")
    assert [ax.get_title() for ax in fig.axes] == ["color loss", "class loss"]
    color_ax = fig.axes[0]
    assert [line.get_label() for line in color_ax.get_lines()] == ["train_color", "val_color"]
    assert color_ax.get_ylim()[1] < 0.1  # the colour curve fills its own axis


def test_bar_with_ci(tmp_path):
    per_image = pd.DataFrame({"method": ["a"] * 3 + ["b"] * 3, "dataset": ["k", "k", "s"] * 2,
                              "psnr": [20, 22, 24, 25, 27, 26], "ssim": [0.5, 0.6, 0.7, 0.8, 0.9, 0.85],
                              "auc": [0.9] * 6, "colorfulness_ratio": [1.0] * 6})
    table = evaluation.summary_table(per_image, by="method")
    fig = plots.bar_with_ci(table)
    assert len(fig.axes) == 4  # one per metric
    ax = fig.axes[0]
    assert ax.get_ylabel() == "psnr" and [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    assert [p.get_height() for p in ax.patches] == pytest.approx([22.0, 26.0])

    grouped = evaluation.summary_table(per_image, by=["dataset", "method"], columns=["psnr"])
    fig = plots.bar_with_ci(grouped, x="method", hue="dataset")
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 4  # 2 methods x 2 datasets
    assert reports.save_figure(fig, "bars", root=tmp_path).exists()


def _python(code: str, **env) -> str:
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environ).stdout.split()


def test_agg_only_when_no_backend_was_chosen():
    code = ("import matplotlib, colorlab.plots as p; a = matplotlib.rcParams._get_backend_or_none(); "
            "p.image_grid([[p.np.zeros((4, 4), 'uint8')]]); print(a, matplotlib.get_backend().lower())")
    assert _python(code) == ["None", "agg"]  # importing chose nothing; the first figure chose Agg
    assert _python(code, MPLBACKEND="pdf") == ["pdf", "pdf"]  # a chosen backend is left alone


def test_channel_grid_and_ab_histogram_shapes():
    import torch

    from colorlab import baselines, color, plots

    rgb = torch.rand(1, 3, 8, 10)
    fig = plots.channel_grid({"RGB": rgb, "Lab": color.rgb_to_lab(rgb)}, {"RGB": "RGB", "Lab": ["L*", "a*", "b*"]})
    assert len([a for a in fig.axes if a.get_title()]) == 6
    assert "Lab: a*" in fig.axes[-1].get_title() or any("Lab: a*" in a.get_title() for a in fig.axes)
    counts, edges = baselines.ab_histogram(color.to_uint8(rgb), bins=16)
    assert counts.sum() == 80 and counts.shape == (16, 16)
    fig = plots.ab_histogram(counts, edges, mark=(1.0, 2.0), title="t")
    assert fig.axes[0].get_xlabel().startswith("a*")


def test_long_row_titles_wrap_to_the_image_height():
    title = "sun8: sun_acykmnhtbnevtdwlg.jpg"
    wide = plots.image_grid([[_img()]], row_titles=[title], cell_inches=6).axes[0].get_ylabel()
    assert wide == title  # fits beside a tall image as it is
    narrow = plots.image_grid([[np.zeros((16, 48, 3), np.uint8)]], row_titles=[title], cell_inches=1.8).axes[0].get_ylabel()
    lines = narrow.split("\n")
    assert len(lines) > 1 and "".join(lines).replace(" ", "") == title.replace(" ", "")
    assert max(map(len, lines)) <= max(8, int(1.8 * 16 / 48 * 72 / (0.6 * 9)))
    assert plots._fit("miniplaces: val/00000001.jpg", 1.8) == "miniplaces: val/\n00000001.jpg"  # breaks after '/'


def test_long_column_titles_wrap_to_the_cell_width():
    title = "koalarization2017-cpu.safetensors"
    fig = plots.image_grid([[_img(), _img()]], col_titles=[title, "gray"], cell_inches=1.7)
    wrapped = fig.axes[0].get_title()
    assert "\n" in wrapped and wrapped.replace("\n", "") == title and fig.axes[1].get_title() == "gray"


def test_differences_plot_draws_intervals_around_zero(tmp_path):
    diffs = pd.DataFrame({"dataset": ["d", "d"], "reference": ["full", "full"], "variant": ["a", "a"],
                          "metric": ["psnr", "auc"], "diff": [-0.3, 0.01], "ci_low": [-0.4, -0.01],
                          "ci_high": [-0.2, 0.03], "seeds": [3, 3]})
    fig = plots.differences(diffs, "variants minus full, 3 seeds, 10 images")
    assert len(fig.axes) == 2 and "PSNR" in fig.axes[0].get_xlabel()
    assert fig.axes[0].get_xlim()[0] < -0.4 and fig.axes[0].get_xlim()[1] > 0  # zero and the interval both show
    assert reports.save_figure(fig, "diffs", root=tmp_path).exists()


def test_chengs_budget_draws_a_line_per_reference_set_and_one_through_the_pixels(tmp_path):
    rows = [{"references": r, "photos": n, "pixels": px, "training_pixels": n * px, "dataset": d,
             "psnr_vs_gray": 0.1 * i, "auc_vs_gray": 0.001 * i, "colorfulness_ratio": 0.5}
            for d in ("sun8", "miniplaces")
            for i, (r, n, px) in enumerate([("sun8", 60, 256), ("sun8", 480, 256), ("sun8", 480, 64),
                                            ("miniplaces", 60, 256), ("miniplaces", 480, 256)])]
    fig = plots.cheng_budget(pd.DataFrame(rows), "Cheng")
    assert len(fig.axes) == 3 * 2 and fig.axes[0].get_xscale() == "log"
    labels = [line.get_label() for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]
    assert labels == ["sun8: more photos, 256 pixels each", "sun8: 480 photos, more pixels of each",
                      "miniplaces: more photos, 256 pixels each"]
    assert reports.save_figure(fig, "cheng", root=tmp_path).exists()


def test_the_budget_curves_legend_names_a_line_only_a_later_model_has_and_no_line_is_target_red():
    rows = [dict(model=m, recipe=r, width=w, dataset=d, cpu_minutes=c, psnr_vs_gray=0.1 * c, auc_vs_gray=0.001 * c,
                 colorfulness_ratio=0.5)
            for m, lines in (("a", [("paper", 0.25), ("adamw", 0.25), ("adamw", 0.5)]),
                             ("b", [("paper", 0.25), ("adamw", 0.25), ("paper", 0.5)]))
            for r, w in lines for d in ("set1", "set2") for c in (1.0, 3.0)]
    fig = plots.budget_curve(pd.DataFrame(rows), "t", targets={"psnr_vs_gray": 0.5})
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["paper, width 0.25", "adamw, width 0.25", "adamw, width 0.5", "paper, width 0.5"]
    colours = {line.get_color() for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() != ":"}
    series = [c for c in colours if not same_color(c, "black")]
    assert len(series) == 4 and not any(same_color(c, "tab:red") for c in series)


def test_the_vividness_figure_names_every_value_and_draws_none_in_the_targets_red():
    rows = [dict(dataset=d, temperature=t, psnr_vs_gray=0.1 * t, colorfulness_ratio=0.5 + 0.1 * t)
            for d, ts in (("set1", [0.1, 0.2, 0.3, 0.4]), ("set2", [0.1, 0.2, 0.3, 0.4, 0.5])) for t in ts]
    fig = plots.vividness_tradeoff(pd.DataFrame(rows), "t")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [f"temperature {t:g}" for t in (0.1, 0.2, 0.3, 0.4, 0.5)]
    faces = [c for ax in fig.axes for coll in ax.collections for c in coll.get_facecolor()
             if not coll.get_label().startswith("_")]  # the labelled means
    assert faces and not any(same_color(c, "tab:red") for c in faces)
