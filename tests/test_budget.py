"""The budget-quality curve: its grid, its frontier, and points trained side by side (smoke)."""

from __future__ import annotations

import pandas as pd
import pytest

from colorlab import baselines, budget, experiments, readout, runs, study, temperature


def test_the_grid_covers_two_recipes_two_widths_and_a_tenfold_budget():
    pts = budget.points("iizuka2016", "cpu")
    assert {p.recipe for p in pts} == {"paper", "adamw-cosine"} and {p.width for p in pts} == {0.25, 0.5}
    steps = [p.steps for p in pts if p.width == 0.25]
    assert max(steps) >= 10 * min(steps)
    assert {p.width for p in budget.points("iizuka_zhang2016", "cpu", widths=(0.25,))} == {0.25}
    # a point is a run of the store: the paper recipe of Iizuka is ADADELTA at a constant rate
    cfg = experiments.recipe("iizuka2016", "smoke", **budget.Point("iizuka2016", "paper", 1 / 16, 10).overrides()).train_cfg
    assert (cfg.optimizer, cfg.schedule, cfg.steps) == ("adadelta", "constant", 10)
    with pytest.raises(ValueError, match="no budget grid"):
        budget.points("iizuka2016", "laptop")


def test_the_wider_net_trains_only_under_the_presets_recipe_which_is_the_cpu_presets():
    for model in budget.PRESET_RECIPE:
        wide = {p.recipe for p in budget.points(model, "cpu") if p.width > min(budget.GRID["cpu"])}
        assert wide == {budget.PRESET_RECIPE[model]}
        preset = experiments.train_config(model, "cpu", experiments.module(model).default_config("cpu"))
        recipe = budget.RECIPES[model][budget.PRESET_RECIPE[model]]
        assert {k: getattr(preset, k) for k in recipe} == recipe, model


def test_frontier_keeps_each_point_that_beats_every_cheaper_one():
    df = pd.DataFrame({"model": "m", "dataset": "d", "cpu_minutes": [1, 2, 3, 4, 5],
                       "psnr_vs_gray": [0.1, 0.05, 0.3, 0.2, 0.4]})
    assert budget.frontier(df)["cpu_minutes"].tolist() == [1, 3, 5]


@pytest.mark.slow
def test_points_train_side_by_side_and_are_scored_beside_gray():
    pts = budget.points("iizuka2016", "smoke", widths=(1 / 16,))
    trained = budget.train(pts, "smoke", workers=2, progress=False)
    assert set(trained) == set(pts) and all(run.done for run in trained.values())
    assert len({run.key for run in trained.values()}) == len(pts)
    again = budget.train(pts, "smoke", workers=2, progress=False)  # cached: the same runs, nothing trained
    assert {p: r.key for p, r in again.items()} == {p: r.key for p, r in trained.items()}
    s = study.load_eval_set("smoke", "val", 4)
    curve = budget.curve(trained, [s])
    assert len(curve) == len(pts) and (curve["cpu_minutes"] > 0).all()
    gray = study.summarize(study.evaluate({"gray": baselines.GrayBaseline()}, s, progress=False))
    row = curve.iloc[0]
    assert row["psnr_vs_gray"] == pytest.approx(row["psnr"] - gray["psnr"].iloc[0])
    assert runs.load_run("iizuka2016", row["run"]).metrics["threads"] == 1  # trained in a one-thread worker


def test_targets_need_seed_0_and_the_mean_over_seeds():
    per_seed = pd.DataFrame({"model": "m", "dataset": "d", "seed": [0, 1, 2], "psnr_vs_gray": [0.6, 0.3, 0.4],
                             "auc_vs_gray": [0.02, 0.02, 0.02], "top1": [None, None, None]})
    t = budget.targets(per_seed).set_index("measure")
    assert t.loc["psnr_vs_gray", "seed_0"] == pytest.approx(0.6) and t.loc["psnr_vs_gray", "mean"] == pytest.approx(0.4333, abs=1e-3)
    assert not t.loc["psnr_vs_gray", "reached"] and t.loc["auc_vs_gray", "reached"]
    assert "top1" not in t.index  # a model without a scene head has no top-1 target


def test_most_colourful_point_must_stay_over_gray():
    df = pd.DataFrame({"model": ["m", "m", "m", "n"], "dataset": "d", "psnr_vs_gray": [0.5, 0.2, 0.4, 0.1],
                       "colorfulness_ratio": [0.6, 0.9, 0.7, 0.8]})
    out = budget.most_colourful(df, 0.3).set_index("model")
    assert out.loc["m", "colorfulness_ratio"] == pytest.approx(0.7)  # 0.9 is only 0.2 dB over gray
    assert out.loc["n", "point"].startswith("none")


def test_the_colourfulness_target_needs_seed_0_and_the_mean_over_seeds():
    df = pd.DataFrame({"model": "z", "dataset": "d", "temperature": [0.38] * 3 + [1.0] * 3, "seed": [0, 1, 2] * 2,
                       "colorfulness_ratio": [0.9, 0.8, 0.85, 0.8, 0.7, 0.6], "psnr_vs_gray": [0.2, 0.5, 0.5, 0.4, 0.4, 0.4]})
    out = budget.vivid_targets(df).set_index("temperature")
    assert out.loc[0.38, "psnr_vs_gray_mean"] == pytest.approx(0.4) and not out.loc[0.38, "reached"]  # seed 0 is 0.2 dB
    assert out.loc[1.0, "colorfulness_ratio_mean"] == pytest.approx(0.7) and not out.loc[1.0, "reached"]
    df.loc[df["temperature"] == 1.0, "colorfulness_ratio"] = [0.8, 0.76, 0.76]
    assert budget.vivid_targets(df).set_index("temperature").loc[1.0, "reached"]


@pytest.mark.slow
def test_the_extensions_readout_is_swept_over_temperatures_and_cached():
    run = experiments.get("iizuka_zhang2016", "smoke", seed=0, progress=False)
    s = study.load_eval_set("smoke", "val", 4)
    sweep = budget.temperature_sweep([run], [s], (run.model.cfg.temperature, 1.0))
    assert list(sweep["temperature"]) == [run.model.cfg.temperature, 1.0]
    assert sweep["colorfulness_ratio"].iloc[0] != sweep["colorfulness_ratio"].iloc[1]
    assert len(list(run.dir.glob(f"{temperature.tag(1.0)}_*.csv"))) == 1
    assert temperature.tag(1.0).startswith("eval-T1-") and temperature.tag(0.5) != temperature.tag(1.0)
    again = budget.temperature_sweep([run], [s], (run.model.cfg.temperature, 1.0))
    pd.testing.assert_frame_equal(sweep, again)


def test_the_gray_baseline_is_scored_once_per_set(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_CACHE", str(tmp_path))
    s = study.load_eval_set("smoke", "val", 4)
    first = budget.gray_scores(s)
    assert len(list((tmp_path / "baselines").glob("gray_smoke_val_*.csv"))) == 1
    monkeypatch.setattr(study, "evaluate", lambda *a, **k: pytest.fail("scored again"))
    pd.testing.assert_frame_equal(budget.gray_scores(s), first)


def test_chengs_grid_varies_photos_and_pixels_and_shares_the_presets_run():
    pts = budget.cheng_points("cpu")
    assert len(pts) == len(set(pts))
    sun8 = [p for p in pts if p.references == "sun8"]
    assert {p.photos for p in sun8 if p.pixels == 256} == set(budget.CHENG_GRID["cpu"]["photos"])
    assert {p.pixels for p in sun8 if p.photos == 1483} == set(budget.CHENG_GRID["cpu"]["pixels"])
    assert {p.photos for p in pts if p.references == "miniplaces"} == set(budget.CHENG_GRID["cpu"]["photos"])
    # the preset (every one of SUN8's 1,483 training photos, 256 pixels each) is a point of the curve, not a
    # second run of it
    name, kwargs = budget.ChengPoint("sun8", 1483, 256).request("cpu")
    assert kwargs["data"].limit is None
    assert experiments.recipe(name, "cpu", **kwargs).key == experiments.recipe("cheng2015", "cpu").key
    name, kwargs = budget.ChengPoint("sun8", 480, 256).request("cpu")
    fewer = experiments.recipe(name, "cpu", **kwargs)
    assert fewer.key != experiments.recipe("cheng2015", "cpu").key and fewer.data["train"]["limit"] == 480
    assert "# data=" in fewer.command  # a dataset's subset has no `colorlab train` flag: named after a comment


def test_chengs_section_holds_every_run_its_tables_ask_for_and_prepare_scores_them_all(monkeypatch):
    def key(request):
        return experiments.recipe(request[0], "cpu", **request[1]).key

    section = {key(r) for r in budget.cheng_section("cpu", 0, [0, 1, 2])}
    curve = {key(p.request("cpu")) for p in budget.cheng_points("cpu", seed=0)}
    presets = {key(("cheng2015", {"seed": s})) for s in (0, 1, 2)}
    photos = {key(r) for r in budget._cheng_photo_requests("cpu", [0, 1, 2])[0]}
    assert section == curve | presets | photos and len(section) == 12 + 2 + 2  # seed 0's preset and 480 are points
    calls = []
    monkeypatch.setattr(experiments, "get_all", lambda requests, profile, workers, progress: [f"run {r}" for r in requests])
    monkeypatch.setattr(budget.study, "score_runs", lambda trained, sets, workers, progress: calls.append((trained, sets, workers)))
    assert budget.prepare([("a", {}), ("b", {})], "cpu", ["set"], workers=2) == ["run ('a', {})", "run ('b', {})"]
    assert calls == [(["run ('a', {})", "run ('b', {})"], ["set"], 2)]  # one scoring call for all of them


def test_a_dataspec_must_name_a_registered_dataset():
    from colorlab.errors import ColorlabError
    from colorlab.profiles import DataSpec

    with pytest.raises(ColorlabError, match="no registered dataset 'sun9'"):
        experiments.recipe("cheng2015", "cpu", data=DataSpec("sun9", "train", 128))


@pytest.mark.slow
def test_chengs_curve_counts_the_photos_it_had_and_their_pixels():
    pts = budget.cheng_points("smoke")
    assert {(p.photos, p.pixels) for p in pts} == {(9, 64), (36, 64), (36, 32)}
    s = study.load_eval_set("smoke", "val", 4)
    curve = budget.cheng_curve(pts, "smoke", [s])
    assert (curve["training_pixels"] == curve["reference_photos"] * curve["pixels"]).all()
    assert curve.set_index(["photos", "pixels"]).loc[(9, 64), "reference_photos"] == 9
    assert curve["run"].nunique() == 3 and curve["psnr_vs_gray"].notna().all()


def test_chengs_target_is_gray_on_psnr_and_auc():
    per_seed = pd.DataFrame({"model": "cheng2015", "dataset": ["sun8"] * 3 + ["miniplaces"] * 3, "seed": [0, 1, 2] * 2,
                             "psnr_vs_gray": [0.5, 0.4, 0.6, -0.2, 0.1, 0.0], "auc_vs_gray": [0.01] * 6})
    t = budget.targets(per_seed, budget.CHENG_TARGETS).set_index(["dataset", "measure"])
    assert set(t.index.get_level_values("measure")) == {"psnr_vs_gray", "auc_vs_gray"}
    assert t.loc[("sun8", "psnr_vs_gray"), "reached"] and not t.loc[("miniplaces", "psnr_vs_gray"), "reached"]


@pytest.mark.slow
def test_runs_scored_side_by_side_land_in_their_caches_with_the_scores_one_process_makes(monkeypatch):
    pts = budget.points("iizuka2016", "smoke", widths=(1 / 16,), max_steps=10)
    trained = list(budget.train(pts, "smoke", progress=False).values())
    s = study.load_eval_set("smoke", "val", 4)
    study.score_runs(trained, [s], workers=2)
    readouts = {"own": readout.Readout(), "vivid": readout.Readout(gain=1.5)}
    sweep = budget.readout_sweep(trained, readouts, [s], workers=2)  # the gain's scores made in the workers
    fresh = {(run.key, name): study.evaluate({run.model_name: r.wrap(run.model)}, s, progress=False)
             for run in trained for name, r in readouts.items()}

    def not_again(*args, **kwargs):
        raise AssertionError("a run was scored again instead of read from its cache")

    monkeypatch.setattr(study, "evaluate", not_again)
    study.score_runs(trained, [s], workers=2)  # every score cached: no worker starts
    pd.testing.assert_frame_equal(budget.readout_sweep(trained, readouts, [s], workers=2), sweep)
    for run in trained:
        for name, r in readouts.items():
            cached = readout.score(run, r, s)
            pd.testing.assert_frame_equal(cached.drop(columns="seconds"), fresh[run.key, name].drop(columns="seconds"),
                                          rtol=1e-6)
    assert sweep.groupby("readout")["colorfulness_ratio"].mean()["vivid"] > sweep.groupby("readout")[
        "colorfulness_ratio"].mean()["own"]


def test_the_smoke_profile_trains_and_scores_in_one_process():
    from colorlab import profiles

    assert profiles.workers("smoke", 2) == 1 and profiles.workers("cpu", 2) == 2 and profiles.workers("gpu", 1) == 1
    with pytest.raises(ValueError):
        profiles.workers("laptop", 2)


def test_ablation_plans_train_each_run_once_and_decide_each_plans_claims(monkeypatch):
    import dataclasses

    from colorlab import models

    net = models.get("iizuka2016").PRESETS["smoke"]
    variants = {"full": ("iizuka2016", net), "no global features": ("iizuka2016", dataclasses.replace(net, use_global=False))}
    plans = {"4 x 2": (4, [0, 1]), "2 x 3": (2, [0, 1, 2]), "4 x 3": (4, [0, 1, 2])}
    asked = []
    get_all = experiments.get_all
    monkeypatch.setattr(experiments, "get_all", lambda requests, *a, **k: asked.append(requests) or get_all(requests, *a, **k))
    s = study.load_eval_set("smoke", "val", 4)
    table, cost = budget.ablation_plans(variants, plans, "smoke", [s])
    assert len(asked) == 1 and len(asked[0]) == 2 * (3 + 3)  # the "4 x 2" runs are the "4 x 3" plan's seeds 0, 1
    assert [r[1]["steps"] for r in asked[0]] == sorted((r[1]["steps"] for r in asked[0]), reverse=True)
    assert list(dict.fromkeys(table["plan"])) == list(plans) and set(table["claim"]) == {"global features improve colourization"}
    assert dict(table.groupby("plan", sort=False)["seeds"].first()) == {"4 x 2": 2, "2 x 3": 3, "4 x 3": 3}
    assert (table.groupby("plan").size() == 3).all()  # AuC, PSNR, colourfulness error on the one set
    assert cost["4 x 2"] < cost["4 x 3"] and all(v > 0 for v in cost.values())
