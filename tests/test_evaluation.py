"""colorlab.evaluation and `colorlab evaluate`: matching, skipping, scoring, writing."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from colorlab import cli, color, evaluation, images, metrics, settings


def _photo(h=24, w=32, seed=0) -> np.ndarray:
    # smooth colour gradients plus mild noise: survives PNG exactly and resizing gracefully
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack((xx * 255 / w, yy * 255 / h, np.full((h, w), 60 + 20 * seed)), -1)
    noise = np.random.default_rng(seed).integers(-10, 11, (h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def folders(tmp_path):
    """truth/ and pred/ with every case the command must handle."""
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    t = {f"a{i}": _photo(seed=i) for i in range(3)}
    images.write_image(truth / "a0.png", t["a0"])
    images.write_image(truth / "a1.png", t["a1"])
    images.write_image(truth / "sub" / "a2.png", t["a2"])
    images.write_image(truth / "gray.png", np.repeat(t["a0"][..., :1], 3, -1))  # no colour ground truth
    (truth / "broken.jpg").write_bytes(b"not an image")
    images.write_image(truth / "only_truth.png", t["a0"])

    images.write_image(pred / "a0.png", t["a0"])  # identical: PSNR inf
    images.write_image(pred / "a1.bmp", np.clip(t["a1"].astype(int) + 8, 0, 255).astype(np.uint8))  # other extension
    images.write_image(pred / "sub" / "a2.png", images.resize(t["a2"], 12, 16))  # half size: resized, warned
    images.write_image(pred / "gray.png", t["a0"])
    images.write_image(pred / "broken.png", t["a0"])
    images.write_image(pred / "only_pred.png", t["a0"])
    return pred, truth, t


def test_evaluate_dirs(folders):
    pred, truth, t = folders
    with pytest.warns(UserWarning, match="resized"):
        df, summary = evaluation.evaluate_dirs(pred, truth)
    assert list(df.columns) == ["name", "psnr", "ssim", "auc", "colorfulness_ratio"]
    assert list(df["name"]) == ["a0", "a1", "sub/a2"]
    assert df.set_index("name").loc["a0", "psnr"] == math.inf
    a1 = np.clip(t["a1"].astype(int) + 8, 0, 255).astype(np.uint8)
    assert df.set_index("name").loc["a1", "psnr"] == pytest.approx(metrics.psnr(a1, t["a1"]))

    c = summary["counts"]
    assert (c["scored"], c["identical"], c["resized"], c["grayscale_truth"], c["skipped"]) == (3, 1, 1, 1, 1)
    assert (c["pred_files"], c["truth_files"]) == (6, 6)
    assert summary["unmatched_pred"] == ["only_pred"] and summary["unmatched_truth"] == ["only_truth"]
    assert summary["grayscale_truth"] == ["gray"]
    assert summary["skipped"][0]["name"] == "broken" and "broken.jpg" in summary["skipped"][0]["error"]
    assert summary["resized"] == [{"name": "sub/a2", "pred_size": [12, 16], "truth_size": [24, 32]}]
    # the identical pair's inf is left out of the PSNR mean, and n says so
    assert summary["n"]["psnr"] == 2 and summary["n"]["ssim"] == 3
    assert summary["means"]["psnr"] == pytest.approx(df["psnr"].iloc[1:].mean())
    lo, hi = summary["ci95"]["ssim"]
    assert lo <= summary["means"]["ssim"] <= hi


def test_two_files_with_one_name_are_skipped(tmp_path):
    images.write_image(tmp_path / "t" / "x.png", _photo())
    images.write_image(tmp_path / "p" / "x.png", _photo())
    images.write_image(tmp_path / "p" / "x.jpg", _photo())
    df, summary = evaluation.evaluate_dirs(tmp_path / "p", tmp_path / "t")
    assert len(df) == 0 and "several files" in summary["skipped"][0]["error"]


def test_cli_writes_csv_and_strict_json(folders, tmp_path, capsys):
    pred, truth, _ = folders
    csv, js = tmp_path / "out" / "scores.csv", tmp_path / "out" / "summary.json"
    rc = cli.main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--csv", str(csv), "--json", str(js)])
    assert rc == 0
    out, err = capsys.readouterr()
    assert "scored 3 image pair(s)" in out and "psnr" in out
    assert "sub/a2" in err and "resized" in err and "broken.jpg" in err

    scores = pd.read_csv(csv)
    assert list(scores.columns) == ["name", "psnr", "ssim", "auc", "colorfulness_ratio"] and len(scores) == 3
    assert scores["psnr"].iloc[0] == math.inf
    text = js.read_text()
    summary = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert summary["counts"]["scored"] == 3 and summary["unmatched_truth"] == ["only_truth"]


def test_cli_exit_code_when_nothing_scored(tmp_path, capsys):
    images.write_image(tmp_path / "p" / "x.png", _photo())
    images.write_image(tmp_path / "t" / "y.png", _photo())
    assert cli.main(["evaluate", "--pred", str(tmp_path / "p"), "--truth", str(tmp_path / "t")]) == 1
    assert cli.main(["evaluate", "--pred", str(tmp_path / "nope"), "--truth", str(tmp_path / "t")]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_evaluate_arrays():
    truths = np.stack([_photo(seed=i) for i in range(3)])
    preds = truths.copy()
    preds[1] = np.repeat(truths[1][..., :1], 3, -1)
    df = evaluation.evaluate_arrays(preds, truths, names=["x", "y", "z"])
    assert list(df["name"]) == ["x", "y", "z"] and df["colorfulness_ratio"].iloc[1] == 0.0
    assert df["psnr"].iloc[0] == math.inf
    as_tensor = evaluation.evaluate_arrays(color.to_float(preds), truths, names=["x", "y", "z"])  # (N, 3, H, W) float
    pd.testing.assert_frame_equal(as_tensor, df)
    with pytest.raises(ValueError, match="2 predictions, 3 ground truths"):
        evaluation.evaluate_arrays(preds[:2], truths)
    with pytest.raises(ValueError, match="image '1'"):
        evaluation.evaluate_arrays([preds[0], preds[1][:5]], truths[:2])


def test_summary_table():
    df = pd.DataFrame({"model": ["a", "a", "a", "b", "b"], "psnr": [20, 22, 24, 30, np.inf],
                       "ssim": [0.5, 0.6, 0.7, 0.9, 0.9], "auc": [0.9] * 5, "colorfulness_ratio": [1, 1, 1, np.nan, 0.5]})
    table = evaluation.summary_table(df, by="model")
    assert list(table.columns) == ["model", "metric", "mean", "ci95_low", "ci95_high", "n"]
    assert len(table) == 8
    row = table[(table.model == "a") & (table.metric == "psnr")].iloc[0]
    assert (row["mean"], row["n"]) == (22.0, 3)
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx(metrics.summarize([20, 22, 24])[1:])
    row = table[(table.model == "b") & (table.metric == "psnr")].iloc[0]
    assert row["mean"] == 30.0 and row["n"] == 1 and math.isnan(row["ci95_low"])
    whole = evaluation.summary_table(df)
    assert list(whole.columns) == ["metric", "mean", "ci95_low", "ci95_high", "n"] and len(whole) == 4


@pytest.mark.data
def test_evaluate_against_the_kodak_mirror(tmp_path):
    kodak = settings.data_dir() / "kodak24"
    if not kodak.is_dir():
        pytest.skip(f"kodak24 not found under {settings.data_dir()} (set COLORLAB_DATA)")
    for name in ("kodim01", "kodim02"):
        rgb = images.read_rgb(kodak / f"{name}.png")
        gray = color.to_uint8(color.gray_to_rgb(color.rgb_to_gray(color.to_float(rgb))))[0]
        images.write_image(tmp_path / f"{name}.png", gray)  # the zero-chroma baseline
    df, summary = evaluation.evaluate_dirs(tmp_path, kodak)
    assert summary["counts"]["scored"] == 2 and summary["counts"]["unmatched_truth"] == 22
    assert (df["colorfulness_ratio"] == 0).all()
    assert ((df["auc"] > 0.5) & (df["auc"] < 1)).all() and (df["psnr"] > 10).all()
