"""The semantic interpretability test (Zhang et al. 2016, our MobileNetV2 in VGG's place)."""

import math

import numpy as np
import pytest
import torch

from colorlab import color, semantic, study
from colorlab.models import mobilenet_v2 as mn

RANDOM = mn.ClassifierConfig("mobilenet_v2_random")


@pytest.fixture(scope="module")
def _module_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("semantic-cache")


@pytest.fixture(autouse=True)
def _shared_cache(_module_cache, monkeypatch):
    """One private cache for this file: the smoke photos and the converted weights are made once."""
    monkeypatch.setenv("COLORLAB_CACHE", str(_module_cache))


def _gray_baseline(gray):
    return color.gray_to_rgb(gray)


def _oracle(eval_set):
    """A 'colorizer' that looks the photo up by its gray version: must score like the colour photos."""
    table = {color.rgb_to_gray(color.to_float(rgb)).numpy().tobytes(): rgb for rgb in eval_set.rgb}
    return lambda gray: color.to_float(table[gray.numpy().tobytes()])


def test_rows_and_pseudo_labels_on_smoke(monkeypatch, tmp_path):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path / "no-data"))  # smoke needs none
    es = study.load_eval_set("smoke", "val", limit=4)
    df = semantic.semantic_test({"gray baseline": _gray_baseline, "oracle": _oracle(es)}, dataset="smoke",
                                split="val", limit=4, classifier=RANDOM, progress=False)
    assert list(df["condition"]) == [semantic.COLOR, semantic.GRAY, "gray baseline", "oracle"]
    assert (df["images"] == 4).all() and (df["labels"] == semantic.PSEUDO).all()
    row = df.set_index("condition")
    assert row.loc[semantic.COLOR, "top1"] == 1.0  # pseudo-labels are the colour predictions
    assert row.loc["oracle", "top1"] == 1.0 and row.loc["oracle", "top5"] == 1.0
    assert row.loc["gray baseline", "top1"] == row.loc[semantic.GRAY, "top1"]  # the same gray photos
    assert row.loc[semantic.COLOR, "same_top1_as_color"] == 1.0 and row.loc["oracle", "same_top1_as_color"] == 1.0
    assert row.loc[semantic.GRAY, "same_top1_as_color"] == row.loc[semantic.GRAY, "top1"]  # labels are colour's top-1
    assert ((df[["top1", "top5"]] >= 0) & (df[["top1", "top5"]] <= 1)).all().all()
    assert (df["top5"] >= df["top1"]).all()
    assert "RANDOM" in df.attrs["note"]


def test_one_function_is_one_method(monkeypatch, tmp_path):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path / "no-data"))
    df = semantic.semantic_test(_gray_baseline, dataset="smoke", split="val", limit=2, classifier=RANDOM, progress=False)
    assert list(df["condition"]) == [semantic.COLOR, semantic.GRAY, "colorized"]


def test_a_runs_logits_are_computed_once_per_set(monkeypatch, tmp_path):
    from colorlab import baselines, runs

    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path / "no-data"))
    calls = []

    class Counting(baselines.GrayBaseline):
        def colorize(self, gray):
            calls.append(1)
            return super().colorize(gray)

    run = runs.Run("e" * 64, tmp_path / "run", {"model_name": "toy"}, _model=Counting())
    (tmp_path / "run").mkdir()
    first = semantic.semantic_test({"run": run}, dataset="smoke", split="val", limit=3, classifier=RANDOM, progress=False)
    assert len(calls) == 3 and len(list((tmp_path / "run").glob("semantic_*.npy"))) == 1
    again = semantic.semantic_test({"run": run}, dataset="smoke", split="val", limit=3, classifier=RANDOM, progress=False)
    assert len(calls) == 3  # read back
    assert again[["condition", "top1", "top5"]].equals(first[["condition", "top1", "top5"]])
    semantic.semantic_test({"run": run}, dataset="smoke", split="val", limit=2, classifier=RANDOM, progress=False)
    assert len(calls) == 5  # another set of images: computed anew


def test_without_the_classifier_it_explains_instead_of_failing(monkeypatch, tmp_path):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path / "no-data"))
    with pytest.warns(UserWarning, match="MobileNetV2 weights"):
        df = semantic.semantic_test({"gray baseline": _gray_baseline}, progress=False)
    assert len(df) == 3 and df["top1"].isna().all() and df["top5"].isna().all()
    assert "colorlab data fetch mobilenet_v2" in df.attrs["note"] and (df["note"] == df.attrs["note"]).all()
    side = semantic.gray_vs_color(limit=2)
    assert side.empty and "MobileNetV2" in side.attrs["note"]


def test_gray_vs_color_side_by_side(monkeypatch, tmp_path):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path / "no-data"))
    df = semantic.gray_vs_color("smoke", "val", limit=3, classifier=RANDOM, k=5)
    assert len(df) == 3 and list(df.columns) == ["image", "color_top5", "gray_top5", "same_top1", "overlap"]
    assert df["overlap"].between(0, 5).all() and df["color_top5"].str.count(",").eq(4).all()


@pytest.mark.data
def test_imagenet_labels_with_the_real_classifier(mirror):
    mirror("mobilenet_v2")
    mirror("imagenet-sample")
    df = semantic.semantic_test({"gray baseline": _gray_baseline}, limit=12, progress=False)
    row = df.set_index("condition")
    assert (df["labels"] == "ImageNet").all() and "8-bit" in df["classifier"].iloc[0]
    assert int(df["images"].iloc[0]) + int(df["grayscale_skipped"].iloc[0]) <= 12
    assert row.loc[semantic.COLOR, "top5"] >= 0.75  # MobileNetV2 is ~96 % top-5 on this set
    assert row.loc["gray baseline", "top1"] == row.loc[semantic.GRAY, "top1"]
    assert not any(math.isnan(v) for v in df["top1"])
