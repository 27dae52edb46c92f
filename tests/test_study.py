"""The study's statistics: per-seed means, intervals over seeds, paired differences and verdicts."""

import numpy as np
import pandas as pd
import pytest
import torch

from colorlab import baselines, study


def _seed_means(values_a, values_b, dataset="d"):
    rows = [{"dataset": dataset, "variant": v, "seed": s, "psnr": x}
            for v, vals in (("a", values_a), ("b", values_b)) for s, x in enumerate(vals)]
    return pd.DataFrame(rows)


def test_paired_difference_uses_matching_seeds():
    df = _seed_means([21.0, 22.0, 23.0], [20.0, 21.0, 22.0])
    d = study.paired_difference(df, "a", "b", "psnr")
    # every paired difference is exactly 1: zero-width interval around 1
    assert d["diff"] == pytest.approx(1.0) and d["ci_low"] == pytest.approx(1.0) and d["seeds"] == 3
    assert study.verdict(d, "a>b") == "reproduced"
    assert study.verdict(study.paired_difference(df, "b", "a", "psnr"), "a>b") == "not reproduced"


def test_verdict_inconclusive_and_similarity():
    noisy = study.paired_difference(_seed_means([21, 19, 22.5], [20, 21, 20]), "a", "b", "psnr")
    assert noisy["ci_low"] < 0 < noisy["ci_high"]
    assert study.verdict(noisy, "a>b") == "inconclusive"
    close = study.paired_difference(_seed_means([20.0, 20.1, 20.05], [20.02, 20.08, 20.04]), "a", "b", "psnr")
    assert study.verdict(close, "a~b", margin=0.5) == "reproduced"
    far = study.paired_difference(_seed_means([25.0, 25.1, 25.2], [20.0, 20.1, 20.2]), "a", "b", "psnr")
    assert study.verdict(far, "a~b", margin=0.5) == "not reproduced"
    with pytest.raises(ValueError):
        study.verdict(far, "a<<b")


def test_seed_ci_matches_t_interval_and_formats():
    df = _seed_means([20.0, 22.0, 24.0], [1.0, 1.0, 1.0]).assign(ssim=0.5, auc=0.9, colorfulness_ratio=0.3)
    table = study.seed_ci(df)
    row = table[(table.variant == "a") & (table.metric == "psnr")].iloc[0]
    # mean 22, sd 2, n 3: half-width t(0.975, 2) * 2 / sqrt(3) = 4.303 * 1.1547 = 4.968
    assert row["mean"] == pytest.approx(22.0) and row["n"] == 3
    assert row["ci95_high"] - 22.0 == pytest.approx(4.968, abs=1e-3)
    wide = study.format_ci(table).set_index("variant")
    assert wide.loc["a", "psnr"] == "22.000 [17.032, 26.968]"
    assert wide.loc["b", "psnr"] == "1.000 [1.000, 1.000]"


def test_evaluate_and_summarize_on_arrays():
    rgb = np.random.default_rng(0).integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    eval_set = study.EvalSet("toy", "val", ["x", "y"], list(rgb))
    df = study.evaluate({"gray": baselines.GrayBaseline()}, eval_set, include_truth=True, progress=False)
    assert set(df["method"]) == {"gray", study.TRUTH} and len(df) == 4
    summary = study.summarize(df).set_index("method")
    assert summary.loc[study.TRUTH, "ssim"] == pytest.approx(1.0)
    assert summary.loc["gray", "colorfulness_ratio"] == pytest.approx(0.0)
    assert summary.loc["gray", "images"] == 2


class _CountingGray(baselines.GrayBaseline):
    calls = 0  # images colourised

    def colorize(self, gray):
        type(self).calls += len(gray)
        return super().colorize(gray)


def test_a_run_is_scored_once_per_set_and_cached_in_its_folder(tmp_path):
    from colorlab import runs

    rgb = list(np.random.default_rng(2).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8))
    eval_set = study.EvalSet("toy", "val", ["a", "b", "c"], rgb)
    run = runs.Run("f" * 64, tmp_path, {"model_name": "toy-model"}, _model=_CountingGray())
    first = study.evaluate({"mine": run, "gray": baselines.GrayBaseline()}, eval_set, progress=False)
    assert list(first["method"].unique()) == ["mine", "gray"] and _CountingGray.calls == 3
    again = study.evaluate({"mine": run}, eval_set, progress=False)
    assert _CountingGray.calls == 3  # read back, not recomputed
    pd.testing.assert_frame_equal(again, first[first["method"] == "mine"].reset_index(drop=True), check_dtype=False)
    other = study.EvalSet("toy", "val", ["a", "b", "d"], rgb)  # same size, other images: scored anew
    study.evaluate({"mine": run}, other, progress=False)
    assert _CountingGray.calls == 6 and len(list(tmp_path.glob("eval_*.csv"))) == 2
    assert torch.equal(run.colorize(torch.zeros(1, 1, 4, 4)), _CountingGray().colorize(torch.zeros(1, 1, 4, 4)))


def test_colorize_u8_keeps_size_and_lightness():
    rgb = np.random.default_rng(1).integers(0, 256, (13, 17, 3), dtype=np.uint8)
    out, seconds = study.colorize_u8(baselines.GrayBaseline(), rgb)
    assert out.shape == rgb.shape and seconds >= 0
    assert np.all(out[..., 0] == out[..., 1])


def test_load_eval_set_skips_grayscale_and_spreads_limit(tmp_path):
    from PIL import Image

    for i in range(6):
        arr = np.full((8, 8, 3), 40 * i, np.uint8)
        arr[..., 0] += 10 if i != 2 else 0  # image 2 is gray
        Image.fromarray(arr).save(tmp_path / f"im{i}.png")
    full = study.load_eval_set(str(tmp_path), "all")
    assert len(full) == 5 and len(full.skipped) == 1 and "grayscale" in full.skipped[0]
    three = study.load_eval_set(str(tmp_path), "all", limit=3)
    # the limit picks files spread over the list (0, 2, 5); the gray one among them is skipped, and counted
    assert [n.split(".")[0] for n in three.names] == ["im0", "im5"] and len(three.skipped) == 1


def test_paired_by_image_and_claims_table():
    per_image = pd.DataFrame([{"dataset": "d", "method": m, "image": f"i{k}", "auc": v}
                              for m, vals in (("a", [0.9, 0.8, 0.7]), ("b", [0.85, 0.75, 0.65])) for k, v in enumerate(vals)])
    d = study.paired_by_image(per_image, "a", "b", "auc", "d")
    assert d["images"] == 3 and d["diff"] == pytest.approx(0.05) and d["ci_low"] == pytest.approx(0.05)
    table = study.claims_table([{**d, "claim": "a beats b", "verdict": study.verdict(d, "a>b")}])
    assert list(table.columns)[:2] == ["claim", "dataset"] and table.loc[0, "verdict"] == "reproduced"


def test_differences_are_paired_by_seed_against_each_reference():
    rows = []
    for seed, noise in enumerate((0.0, 0.5, -0.5)):
        for variant, psnr in (("full", 24.0), ("ablated", 23.7)):
            rows.append({"dataset": "d", "variant": variant, "seed": seed, "psnr": psnr + noise, "auc": 0.9})
    diffs = study.differences(pd.DataFrame(rows), {"full": ["ablated", "missing"]}, ("psnr", "auc"))
    psnr = diffs[diffs.metric == "psnr"].iloc[0]
    assert (psnr.variant, psnr.reference, psnr.seeds) == ("ablated", "full", 3)
    # the seed noise is shared by both variants, so the paired interval is tight around -0.3
    assert psnr["diff"] == pytest.approx(-0.3) and psnr.ci_high < 0
    assert set(diffs.variant) == {"ablated"}  # a variant that was not trained is left out


def test_batched_scoring_equals_one_image_at_a_time():
    from colorlab import baselines, metrics

    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 256, (8, 10, 3), dtype=np.uint8) for _ in range(5)] + [rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)]
    s = study.EvalSet("toy", "val", [f"i{k}" for k in range(6)], imgs)
    assert study._same_size_batches(imgs, 3) == [[0, 1, 2], [3, 4], [5]]
    method = baselines.MeanChromaBaseline((5.0, -7.0))
    got = study.evaluate({"m": method}, s, progress=False)
    for k, img in enumerate(imgs):
        pred, _ = study.colorize_u8(method, img)
        row = got[got["image"] == f"i{k}"].iloc[0]
        assert row["auc"] == pytest.approx(metrics.image_metrics(pred, img)["auc"])


class _Tinted(baselines.GrayBaseline):
    """Gray plus a fixed tint: every instance colours differently."""

    def __init__(self, tint: float):
        super().__init__()
        self.tint = tint

    def colorize(self, gray):
        rgb = super().colorize(gray).clone()
        rgb[:, 0] = (rgb[:, 0] + self.tint).clamp(0, 1)
        return rgb


class _Redder(torch.nn.Module):
    """A readout of another method's weights: its colours with more red."""

    def __init__(self, method):
        super().__init__()
        self.method = method

    def colorize(self, gray):
        rgb = self.method.colorize(gray).clone()
        rgb[:, 0] = (rgb[:, 0] + 0.2).clamp(0, 1)
        return rgb


def _toy_runs(folder, n):
    from colorlab import runs

    return [runs.Run(f"{i}" * 64, folder / f"run{i}", {"model_name": f"toy{i % 2}"}, _model=_Tinted(0.1 * i))
            for i in range(n)]


def test_runs_scored_together_are_cached_each_as_scored_alone(tmp_path):
    rgb = list(np.random.default_rng(3).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8))
    rgb[4] = np.random.default_rng(4).integers(0, 256, (8, 12, 3), dtype=np.uint8)  # another size, another batch
    eval_set = study.EvalSet("toy", "val", list("abcde"), rgb)
    trained = _toy_runs(tmp_path, 3)
    study.score_runs(trained, [eval_set], readouts={"eval": None, "vivid": _Redder})  # one group, photo by photo
    for run in trained:
        for tag, method in (("eval", run.model), ("vivid", _Redder(run.model))):
            cached = pd.read_csv(study.score_path(eval_set, run.dir, tag))
            alone = study.evaluate({run.model_name: method}, eval_set, progress=False)
            pd.testing.assert_frame_equal(cached.drop(columns="seconds"), alone.drop(columns="seconds"), check_dtype=False)
    assert study.evaluate_run(trained[2], eval_set)["psnr"].mean() != study.evaluate_run(trained[1], eval_set)["psnr"].mean()


def test_runs_not_yet_scored_are_split_into_one_group_per_worker(tmp_path, monkeypatch):
    from colorlab import processes

    sets = [study.EvalSet(name, "val", ["a"], [np.zeros((8, 8, 3), np.uint8)]) for name in ("one", "two")]
    trained = _toy_runs(tmp_path, 5)
    readouts = {"eval": None, "vivid": _Redder}
    study.score_runs(trained[:1], sets[:1], readouts=readouts)  # already scored on "one", both ways
    study.score_runs(trained[1:2], sets[:1])  # its own score only
    jobs = []
    monkeypatch.setattr(processes, "side_by_side", lambda fn, js, workers, progress, desc: jobs.extend(js))
    study.score_runs(trained, sets, workers=2, readouts=readouts)
    assert [(s.dataset, [(int(run.key[0]), tag) for run, tag, _ in items]) for items, s in jobs] == [
        ("one", [(1, "vivid"), (3, "eval"), (3, "vivid")]), ("one", [(2, "eval"), (2, "vivid"), (4, "eval"), (4, "vivid")]),
        ("two", [(i, t) for i in (0, 2, 4) for t in readouts]), ("two", [(i, t) for i in (1, 3) for t in readouts])]
    assert all(run._model is None for items, _ in jobs for run, _, _ in items)  # a worker loads the weights itself
