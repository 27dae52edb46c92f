"""Claims tables: each claim's pairing, verdict and the speed rules against the papers' figures."""

import math

import numpy as np
import pandas as pd
import pytest

from colorlab import claims


def _ablation_seed_means(better: float) -> pd.DataFrame:
    """Every variant of `claims.ABLATIONS` over 3 seeds; each claim's `a` beats its `b` by `better` in every metric."""
    rng = np.random.default_rng(0)
    rows = []
    for ab in claims.ABLATIONS:
        for seed in range(3):
            base = 20 + rng.normal()
            for variant, shift in ((ab.a, better), (ab.b, 0.0)):
                rows.append({"dataset": ab.model, "variant": variant, "seed": seed, "model": ab.model,
                             "psnr": base + shift, "auc": base / 30 + shift, "colorfulness_ratio": base / 40 + shift})
    # a variant that plays `a` in one claim and `b` in another appears twice: keep the first
    return pd.DataFrame(rows).drop_duplicates(["dataset", "variant", "seed"])


def test_ablation_claims_pairs_each_claim_on_its_own_dataset():
    datasets = {m: m for m in ("iizuka2016", "koalarization2017", "cheng2015")}
    table = claims.ablation_claims(_ablation_seed_means(better=0.0), datasets, metrics=("psnr",))
    assert len(table) == len(claims.ABLATIONS)
    assert set(table["dataset"]) == set(datasets)
    assert (table["seeds"] == 3).all()
    # a clear, consistent gain is reproduced on the claims whose pairs are clean
    gain = claims.ablation_claims(_ablation_seed_means(better=1.0), datasets, metrics=("auc",))
    row = gain.set_index("claim").loc["global features improve colourization"]
    assert row["verdict"] == "reproduced" and row["diff"] == pytest.approx(1.0)
    with pytest.raises(KeyError):
        claims.ablation_claims(_ablation_seed_means(1.0), {"iizuka2016": "iizuka2016"})


def _comparison(koala_top1: float, iizuka_s: float, cheng_s: float, full_scale: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    per_image = pd.DataFrame([{"dataset": d, "method": m, "image": f"{d}{k}", "auc": 0.9 + (0.02 if m == "iizuka2016" else 0) + e,
                               "psnr": 23.0}
                              for d in ("set-a", "set-b") for k, e in enumerate(rng.normal(0, 0.005, 30))
                              for m in ("iizuka2016", "cheng2015")])
    comparison = per_image.groupby(["dataset", "method"], as_index=False)[["auc", "psnr"]].mean()
    sem = pd.DataFrame({"condition": ["color", "grayscale", "koalarization2017"], "top1": [0.8, 0.6, koala_top1],
                        "images": [500, 500, 500]})
    speed_iizuka = {"sizes": {"512": {"fp32": {"median_s": iizuka_s * 2}, "bf16": {"median_s": iizuka_s}}}}
    speed_cheng = {"sizes": {"256": {"median_s": cheng_s}}}
    return claims.comparison_claims(per_image, comparison, sem, "set-a", speed_iizuka, speed_cheng, full_scale)


def test_comparison_claims_verdicts_follow_the_measurements():
    table = _comparison(koala_top1=0.7, iizuka_s=0.2, cheng_s=0.5).set_index("claim")
    better = table.loc["Iizuka colours better than Cheng"]
    assert list(better["dataset"]) == ["set-a", "set-b"] and (better["verdict"] == "reproduced").all()
    assert table.loc["Koalarization's colours help a classifier (vs gray)", "verdict"] == "reproduced"
    speed = table[table["metric"] == "seconds"]
    assert list(speed["ours"]) == [0.2, 0.5] and (speed["verdict"] == "reproduced").all()
    cheng = table.loc["Cheng: 23-31 dB PSNR on scene photos"]
    assert cheng["verdict"] == "inconclusive" and cheng["dataset"] == "set-a"  # no sun8 here: the first set

    slow = _comparison(koala_top1=0.6, iizuka_s=2.0, cheng_s=9.0).set_index("claim")
    assert (slow[slow["metric"] == "seconds"]["verdict"] == "not reproduced").all()
    assert slow.loc["Koalarization's colours help a classifier (vs gray)", "verdict"] == "inconclusive"


def test_comparison_claims_speed_is_inconclusive_when_the_paper_size_was_not_timed():
    table = _comparison(0.7, 0.2, 0.5, full_scale=False)
    assert (table[table["metric"] == "seconds"]["verdict"] == "inconclusive").all()
    untimed = claims.comparison_claims(*_inputs_without_timings())
    assert untimed[untimed["metric"] == "seconds"]["ours"].map(math.isnan).all()


def _inputs_without_timings():
    per_image = pd.DataFrame([{"dataset": "d", "method": m, "image": f"i{k}", "auc": 0.9, "psnr": 23.0}
                              for k in range(3) for m in ("iizuka2016", "cheng2015")])
    sem = pd.DataFrame({"condition": ["color", "grayscale"], "top1": [0.8, 0.6], "images": [3, 3]})
    return per_image, per_image.groupby(["dataset", "method"], as_index=False)[["auc", "psnr"]].mean(), sem, "d", {}, {}


def test_colourfulness_counts_as_distance_from_the_photos():
    seed_means = pd.DataFrame([{"dataset": "d", "variant": v, "seed": s, "colorfulness_ratio": r}
                               for s in range(3) for v, r in (("full", 0.9 + 0.01 * s), ("no global features", 1.3 + 0.02 * s))])
    from colorlab import study

    per = study.per_seed(seed_means.assign(image="x"))
    assert per["colorfulness_error"].tolist() == pytest.approx([0.1, 0.3, 0.09, 0.32, 0.08, 0.34])
    # "full" is duller than "no global features" but nearer the photos: its colours count as better
    r = study.paired_difference(per, "full", "no global features", "colorfulness_error", "d")
    assert r["diff"] == pytest.approx(-0.23) and study.verdict(r, "a<b") == "reproduced"
    assert study.verdict(r, "a>b") == "not reproduced"
    datasets = {m: m for m in ("iizuka2016", "koalarization2017", "cheng2015")}
    table = claims.ablation_claims(study.per_seed(_ablation_seed_means(better=0.0)), datasets, metrics=("colorfulness_error",))
    assert table["why"].str.contains("lower is better").all() and (table["seeds"] == 3).all()


def test_ablation_claims_leave_out_pairs_that_were_not_trained():
    means = _ablation_seed_means(better=1.0)
    only = means[means["variant"].isin(["full", "ADADELTA (paper)"])]
    table = claims.ablation_claims(only, {"iizuka2016": "iizuka2016"}, metrics=("psnr",))
    assert list(table["claim"]) == [next(a.claim for a in claims.ABLATIONS if a.b == "ADADELTA (paper)")]
