"""The papers' claims beside our measurements, each with a verdict and a reason.

Notebooks 05 (ablations, paired by seed) and 06 (comparison, paired by image)
build their claims tables here, so the wording of a claim, its source in the
paper and the rule that turns an interval into a verdict live in one place.
A verdict is `reproduced`, `not reproduced` or `inconclusive` (`study.verdict`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from colorlab import bench, machine, readout, study

# Iizuka Table 3: 512 x 512 on an 8-core Intel Core i7-5960X, no GPU.
IIZUKA_CPU_512_S = 1.676
# Cheng sec. 3.3: 256 x 256 in Matlab, hardware not given.
CHENG_MATLAB_256_S = 4.9


@dataclass(frozen=True)
class Ablation:
    """Variant `a` should beat variant `b` (claim "a>b") in the paper's words."""

    a: str
    b: str
    claim: str
    paper: str
    model: str  # "iizuka2016", "koalarization2017" or "cheng2015": which evaluation set it is scored on


ABLATIONS = (
    Ablation("full", "no global features", "global features improve colourization",
             "Iizuka sec. 4.3: 92.6% vs 69.8% natural", "iizuka2016"),
    Ablation("full", "alpha = 0", "the classification loss improves colourization",
             "Iizuka sec. 4.2 (qualitative)", "iizuka2016"),
    Ablation("with embedding", "without embedding", "the classifier embedding improves colourization",
             "Baldassarre et al. (qualitative)", "koalarization2017"),
    Ablation("patch+daisy", "patch", "DAISY adds to the 7x7 patch", "Cheng sec. 3.2 (qualitative)", "cheng2015"),
    Ablation("patch+daisy+semantic", "patch+daisy", "semantic features add to patch + DAISY",
             "Cheng sec. 3.2, Fig. 6 (qualitative)", "cheng2015"),
    Ablation("patch+daisy+semantic", "no refinement", "the joint bilateral filter helps",
             "Cheng sec. 3.2.5 (qualitative)", "cheng2015"),
    Ablation("clustered", "patch+daisy+semantic", "adaptive clustering helps", "Cheng journal, Fig. 7 (qualitative)", "cheng2015"),
    Ablation("every reference photo", "fewer reference photos", "more reference photos colour better",
             "Cheng sec. 4, Fig. 12 (more training samples, higher PSNR)", "cheng2015"),
    # the cpu presets' deviations from the papers (README "Where the cpu presets deviate"), each checked
    Ablation("full", "ADADELTA (paper)", "cpu preset: AdamW + warm-up + cosine trains better than ADADELTA at this budget",
             "deviation from Iizuka sec. 3.4 (ADADELTA)", "iizuka2016"),
    # the vividness extension (colorlab.models.iizuka_zhang2016), against the paper's MSE
    Ablation("Zhang et al. loss", "full", "extension: Zhang et al.'s rebalanced ab classification colours better than MSE",
             "Zhang et al. 2016 sec. 3.1-3.2 (an extension, not in Iizuka et al.)", "iizuka2016"),
    # a readout of the same weights (colorlab.readout, notebook 10): an extension
    Ablation(readout.Readout(gain=readout.CLAIMED_GAIN).label, "full",
             f"extension: the MSE readout's chrominance times {readout.CLAIMED_GAIN:g} colours better",
             "a readout of the trained net (colorlab.readout), not in Iizuka et al.", "iizuka2016"),
)


# Metrics where lower is better ("improves" means a - b < 0); the others are higher-is-better.
LOWER_IS_BETTER = ("colorfulness_error",)


def ablation_claims(seed_means: pd.DataFrame, datasets: dict[str, str],
                    metrics: tuple[str, ...] = ("auc", "psnr", "colorfulness_error")) -> pd.DataFrame:
    """One row per ablation and metric: the seed-paired difference a - b, its 95% CI and verdict.

    `seed_means` is `study.per_seed` output; `datasets` maps each model name of `ABLATIONS` to the
    dataset its variants were scored on. Colourfulness counts as `colorfulness_error` (distance of the
    ratio from 1), since more vivid than the photos is as wrong as duller.
    """
    rows = []
    present = set(seed_means["variant"])
    for ab in ABLATIONS:
        if not {ab.a, ab.b} <= present:  # a notebook that trains only some of the variants
            continue
        for metric in metrics:
            r = study.paired_difference(seed_means, ab.a, ab.b, metric, datasets[ab.model])
            better = "lower" if metric in LOWER_IS_BETTER else "higher"
            rows.append({**r, "claim": ab.claim, "paper": ab.paper,
                         "verdict": study.verdict(r, "a<b" if better == "lower" else "a>b"),
                         "why": f"95% CI of ({ab.a}) - ({ab.b}) in {metric} ({better} is better) over {r['seeds']} seeds"})
    return study.claims_table(rows)


def claims_on_each_set(variants: dict[str, list], model: str, eval_sets: list, progress: bool = False,
                       readouts: dict[str, readout.Readout] | None = None, workers: int = 1) -> pd.DataFrame:
    """`ablation_claims` of `variants` ({name: runs, one per seed}) on every evaluation set in turn: each
    set's per-image scores (`readout.score`: each run's own cached score, or, for the variants named in
    `readouts` ({name: Readout}), its runs read out another way) reduced to seed means, the claims of `model`.
    Own scores not yet cached are made first, `workers` at a time (`study.score_runs`)."""
    readouts = readouts or {}
    study.score_runs([run for name, runs in variants.items() if name not in readouts for run in runs], eval_sets,
                     workers, progress)
    means = study.per_seed(pd.concat([
        readout.score(run, readouts.get(name), s, progress).assign(variant=name, seed=run.train_config["seed"])
        for s in eval_sets for name, runs in variants.items() for run in runs], ignore_index=True))
    return pd.concat([ablation_claims(means, {model: s.dataset}) for s in eval_sets])


def _speed_row(claim: str, paper: str, ours: float, target: float, why: str, measured: bool) -> dict:
    if not measured or not math.isfinite(ours):
        verdict = "inconclusive"
    else:
        verdict = "reproduced" if ours <= target else "not reproduced"
    return {"claim": claim, "paper": paper, "metric": "seconds", "ours": ours, "verdict": verdict, "why": why}


def comparison_claims(per_image: pd.DataFrame, comparison: pd.DataFrame, semantic_table: pd.DataFrame,
                      semantic_dataset: str, speed_iizuka: dict, speed_cheng: dict, full_scale: bool = True) -> pd.DataFrame:
    """Notebook 06's claims: quality paired by image, semantic top-1, speed against each paper's figure.

    `per_image` is `study.evaluate` output over every set; `comparison` its `study.summarize`;
    `semantic_table` is `semantic.semantic_test` output on `semantic_dataset`; the speeds are `bench.bench_iizuka_inference`
    and `cheng2015.benchmark` results. `full_scale=False` (the smoke profile, tiny images only)
    makes the speed verdicts inconclusive, since the paper's sizes were not timed.
    """
    rows = []
    for dataset in per_image["dataset"].unique():
        r = study.paired_by_image(per_image, "iizuka2016", "cheng2015", "auc", dataset)
        rows.append({**r, "claim": "Iizuka colours better than Cheng", "paper": "Iizuka Fig. 4 (qualitative)",
                     "verdict": study.verdict(r, "a>b"), "why": f"per-image paired difference over {r['images']} images"})

    top1 = dict(zip(semantic_table["condition"], semantic_table["top1"]))
    sem = study.proportion_difference(top1.get("koalarization2017", math.nan), top1.get("grayscale", math.nan),
                                      int(semantic_table["images"].iloc[0]), "koalarization2017", "grayscale")
    rows.append({**sem, "dataset": semantic_dataset, "claim": "Koalarization's colours help a classifier (vs gray)",
                 "paper": "Baldassarre sec. 1 (motivation)", "verdict": study.verdict(sem, "a>b"),
                 "why": "difference of top-1 accuracies, normal approximation"})

    at_512 = speed_iizuka.get("sizes", {}).get("512", {})
    iizuka_s = min((at_512[d]["median_s"] for d in ("fp32", "bf16") if d in at_512), default=math.nan)
    cores = machine.physical_cores()
    rows.append(_speed_row(f"Iizuka: 512x512 in {IIZUKA_CPU_512_S} s on an 8-core CPU", "Iizuka Table 3", iizuka_s,
                           IIZUKA_CPU_512_S, f"paper-size net, BN folded, best of fp32/bf16 on {cores} cores"
                           + ("" if full_scale else " (smoke: 512 not timed)"), full_scale))
    cheng_s = speed_cheng.get("sizes", {}).get("256", {}).get("median_s", math.nan)
    rows.append(_speed_row(f"Cheng: 256x256 in {CHENG_MATLAB_256_S} s (Matlab)", "Cheng sec. 3.3", cheng_s, CHENG_MATLAB_256_S,
                           "features + net + filter, median" + ("" if full_scale else " (smoke: 256 not timed)"), full_scale))

    cheng_psnr = comparison.query("method == 'cheng2015'").set_index("dataset")["psnr"]
    home = "sun8" if "sun8" in cheng_psnr.index else cheng_psnr.index[0]  # its reference images are SUN8 train
    rows.append({"claim": "Cheng: 23-31 dB PSNR on scene photos", "paper": "Cheng Fig. 9 (7 hand-picked images)", "metric": "psnr",
                 "dataset": home, "ours": cheng_psnr[home], "verdict": "inconclusive",
                 "why": f"the paper's numbers are single hand-picked images, not a test set; ours is the mean over {home}, "
                        "the test split of the reference images' dataset"})
    return study.claims_table(rows)
