"""The scene parser behind Cheng's semantic features: labels, network, scores, its run in the store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorlab import features, runs, weights
from colorlab.experiments import cheng2015 as exp
from colorlab.experiments import parser as PT
from colorlab.features import labels as L
from colorlab.features import parser as P

# the smoke preset, shortened: a handful of steps is enough to exercise the pipeline
TINY = P.config("smoke", steps=6, n_classes=6)


def test_scores_of_a_hand_computed_case():
    truth = np.array([[0, 0, 1, 1, L.IGNORE]])
    pred = np.array([[0, 1, 1, 1, 0]])  # the ignored pixel is wrong but does not count
    s = features.segmentation_scores(pred, truth, ["a", "b", "c"])
    assert s["pixel_accuracy"] == pytest.approx(3 / 4)
    # IoU(a) = 1 / 2, IoU(b) = 2 / 3, class c is in neither: no IoU, not averaged
    assert s["mean_iou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert s["n_pixels"] == 4
    assert np.isnan(s["per_class"].set_index("class").loc["c", "iou"])
    perfect = features.segmentation_scores(truth.clip(0, 1), truth, ["a", "b", "c"])
    assert perfect["pixel_accuracy"] == perfect["mean_iou"] == 1.0


def test_object_merge_keeps_the_most_frequent_and_ignores_unannotated():
    objects = np.array([[5] * 6 + [2] * 4 + [7] * 3 + [1] * 1 + [255] * 2], np.uint8)
    names = [f"o{i}" for i in range(8)]
    ls = L.fit_objects(objects, names, 3)
    assert ls.names == ("o5", "o2", "other_object")
    got = ls.apply(objects=objects)
    np.testing.assert_array_equal(got, [[0] * 6 + [1] * 4 + [2] * 3 + [2] + [L.IGNORE] * 2])


def test_colour_clusters_label_pixels_by_nearest_ab():
    rgb = np.zeros((4, 8, 8, 3), np.uint8)
    rgb[:2, ..., 0] = 220  # red images
    rgb[2:, ..., 2] = 220  # blue images
    ls = L.fit_colours(rgb, 2, seed=0)
    assert ls == L.fit_colours(rgb, 2, seed=0)  # deterministic
    y = ls.apply(rgb=rgb)
    assert y.dtype == np.uint8 and len(np.unique(y[:2])) == len(np.unique(y[2:])) == 1 and y[0, 0, 0] != y[3, 0, 0]


def test_network_shapes_and_probabilities():
    ls = L.LabelSet("colours", tuple(f"c{i}" for i in range(5)), centres=((0.0, 0.0),) * 5)
    net = P.SceneParser(P.config("smoke", n_classes=5, size=24), ls).eval()
    for h, w in [(24, 24), (33, 17)]:
        assert net(torch.rand(2, 1, h, w)).shape == (2, 5, h, w)
    p = net.predict_proba(np.random.default_rng(0).random((50, 70)).astype(np.float32))  # runs at 24 x 34 inside
    assert net.working_size(50, 70) == (24, 34)
    assert p.shape == (50, 70, 5) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="classes"):
        P.SceneParser(P.config("smoke", n_classes=6), ls)


def test_parser_trains_on_smoke_then_comes_from_the_store(monkeypatch, one_thread, tmp_path):
    run = exp.parser_run(TINY, progress=False)
    parser = run.model
    assert parser.n_classes == 6 and not parser.training
    assert {"final.pt", "config.json", "metrics.json", "history.csv", "done"} <= {p.name for p in run.dir.iterdir()}
    assert run.dir.parent.name == "scene_parser" and run.config["module"] == "colorlab.features.parser"
    run.verify()  # the done marker names the weights' checksum
    assert 0 <= run.metrics["val_pixel_accuracy"] <= 1 and run.metrics["n_val_images"] == 9
    assert parser.labels.kind == "colours" and len(parser.class_names) == 6

    def no_training(*a, **k):
        raise AssertionError("the trained parser should have been reused")

    monkeypatch.setattr(PT, "fit", no_training)
    again = exp.load_parser(TINY, progress=False)  # rebuilt by the store: features.parser.build + load_state_dict
    assert again.labels == parser.labels and again.cfg == TINY
    for (k, a), b in zip(parser.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    # the label set travels in the weights: an exported file is self-contained
    exported, meta = weights.load_exported(weights.export(run, tmp_path / "parser.safetensors"))
    assert exported.labels == parser.labels and meta["model_name"] == "scene_parser"
    # the key follows the config: a changed config trains again
    assert exp.parser_recipe(TINY).key != exp.parser_recipe(P.config(TINY, seed=1)).key
    with pytest.raises(AssertionError, match="reused"):
        exp.parser_run(P.config(TINY, seed=1), progress=False)
    # the features run end to end with it
    x = features.extract(np.full((20, 30), 0.4, np.float32), features.FeatureConfig(semantic_classes=6), again)
    assert x.shape == (20, 30, 87) and np.isfinite(x).all()


def test_a_crash_while_saving_leaves_no_finished_run(monkeypatch, one_thread):
    def broken_save(obj, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"half a checkpoint")
        raise OSError("disk full")

    recipe = exp.parser_recipe(TINY)
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        runs.get(recipe, progress=False)
    monkeypatch.undo()
    assert not (recipe.folder / "final.pt").exists() and not (recipe.folder / "done").exists()
    assert runs.status(recipe)[1] == "new"


def test_labels_live_in_the_state_dict():
    ls = L.LabelSet("objects", ("wall", "sky", "other_object"), table=tuple([2] * 255 + [L.IGNORE]))
    net = P.SceneParser(P.config("cpu", n_classes=3), ls)
    again = P.build(P.config("cpu", n_classes=3))
    assert again.labels != ls  # placeholder labels until the weights come
    again.load_state_dict(net.state_dict())
    assert again.labels == ls and again.class_names == ["wall", "sky", "other_object"]
    with pytest.raises(ValueError, match="kind"):
        P.SceneParser(P.config("smoke", n_classes=3), ls)


def test_parser_quality_of_a_perfect_parser_is_one():
    class Perfect:
        """Knows the answer: labels each smoke val image with its own truth, in order."""

        def __init__(self, cfg, labels, truth):
            self.cfg, self.labels, self.class_names, self.truth, self.seen = cfg, labels, list(labels.names), truth, 0

        def predict_labels(self, gray):
            out = torch.from_numpy(self.truth[self.seen : self.seen + len(gray)])
            self.seen += len(gray)
            return out

    cfg = P.config("smoke", size=16, n_classes=4)
    _, _, ls = PT.parser_data(cfg, "train", progress=False)
    _, truth, _ = PT.parser_data(cfg, "val", ls, progress=False)
    q = PT.parser_quality(Perfect(cfg, ls, truth), "val")
    assert q["pixel_accuracy"] == 1.0 and q["mean_iou"] == 1.0
    assert q["n_images"] == 9 and q["n_pixels"] == 9 * 16 * 16
    assert list(q["per_class"]["class"]) == list(ls.names)


@pytest.mark.data
def test_miniplaces_object_labels(mirror):
    mirror("miniplaces")
    cfg = P.config("cpu", size=16)
    rgb, y, ls = PT.parser_data(cfg, "val", progress=False)  # fitted on val here only to keep the test small
    assert 300 < len(rgb) <= 371  # annotated val images (the README: 371), grayscale ones left out
    assert ls.n_classes == 47 and ls.names[-1] == "other_object" and ls.names[0] == "wall"
    valid = y[y != L.IGNORE]
    assert valid.max() < 47 and 0 < (y == L.IGNORE).mean() < 0.3


def test_full_resolution_probabilities_agree_between_numpy_and_torch_paths():
    ls = L.LabelSet("colours", tuple(f"c{i}" for i in range(7)), centres=((0.0, 0.0),) * 7)
    torch.manual_seed(0)
    net = P.SceneParser(P.config("smoke", n_classes=7, size=16), ls).eval()
    g = np.random.default_rng(1).random((40, 27)).astype(np.float32)
    a = net.predict_proba(g)  # (40, 27, 7), upsampled with OpenCV
    b = net.probabilities(torch.from_numpy(g)[None, None])[0].permute(1, 2, 0).numpy()  # with torch
    np.testing.assert_allclose(a, b, atol=1e-5)
