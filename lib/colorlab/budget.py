"""The budget-quality curve: what a CPU budget buys each CNN, under the paper's recipe and a modern one.

    from colorlab import budget
    points = budget.points("iizuka2016", "cpu")        # (recipe, width, steps) of the grid
    runs = budget.train(points, "cpu", workers=2)      # trained once each, cached by key
    curve = budget.curve(runs, eval_sets)              # quality beside gray against CPU-minutes

A point is one run of the run store (`experiments.get` with overrides), so a
point shared with a notebook (the cpu preset is one of them) is trained once.
Its cost is the training wall time times the threads it ran on (CPU-seconds:
validation and checkpoints included). Its quality is the mean PSNR, AuC and
colourfulness ratio over an evaluation set, each also as a difference from
the gray baseline on the same images (cached in each run's folder).

`train(..., workers=2)` trains two points at a time on one thread each: on a
2-core CPU that is more images per second than one run on two threads
(`make bench`, `thread_layout`), and the run store's lock keeps two
processes from training the same run. A point's CPU-minutes are therefore
one-thread minutes; on a machine shared with other work they grow.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from functools import partial

import numpy as np
import pandas as pd
import torch

from colorlab import baselines, data, experiments, processes, profiles, runs, settings, study

# The recipes compared. "paper": each paper's optimiser at a constant rate (Iizuka sec. 3.4:
# ADADELTA; Baldassarre et al. 2017: Adam 1e-3). "adamw-cosine": AdamW, 5% linear warm-up,
# cosine decay to 0 (Loshchilov & Hutter 2019), our choice of a modern schedule.
_MODERN = dict(optimizer="adamw", lr=2e-3, schedule="warmup_cosine", warmup=0.05, weight_decay=1e-2)
RECIPES = {
    "iizuka2016": {"paper": dict(optimizer="adadelta", lr=1.0, schedule="constant", warmup=0.0, weight_decay=0.0),
                   "adamw-cosine": _MODERN},
    "koalarization2017": {"paper": dict(optimizer="adam", lr=1e-3, schedule="constant", warmup=0.0, weight_decay=0.0),
                          "adamw-cosine": _MODERN},
    # the vividness extension: Iizuka's network with Zhang et al. 2016's loss (no paper recipe of its own)
    "iizuka_zhang2016": {"adamw-cosine": _MODERN},
}
# Steps per network width, per profile: the cpu preset's width (0.25) over 10x of budget; twice the
# channels (0.5, ~2.5x the cost per step) at 1,000 steps, about the cost of 3,000 quarter-width steps
# (the `make reproduce` budget keeps the grid to this; the 300-step half-width points of commit 38ab501
# were below the quarter-width line).
GRID = {
    "smoke": {1 / 16: (10, 30)},
    "cpu": {0.25: (300, 1000, 3000), 0.5: (1000,)},
}
# The recipe of each model's cpu preset (`experiments/<model>.TRAIN["cpu"]`; a test holds them equal).
# Every recipe is trained at the preset's width; a wider net only under the preset's recipe (the
# recipes are compared where they are cheap; the width answers "would more channels pay?").
PRESET_RECIPE = {"iizuka2016": "adamw-cosine", "koalarization2017": "paper", "iizuka_zhang2016": "adamw-cosine"}
METRICS = ("psnr", "auc", "colorfulness_ratio")


@dataclass(frozen=True)
class Point:
    model: str
    recipe: str
    width: float
    steps: int
    seed: int = 0

    def overrides(self) -> dict:
        return {**RECIPES[self.model][self.recipe], "width": self.width, "steps": self.steps, "seed": self.seed}


def points(model: str, profile: str = "cpu", recipes: tuple[str, ...] | None = None,
           widths: tuple[float, ...] | None = None, seed: int = 0, max_steps: int | None = None) -> list[Point]:
    """The grid of `model` at `profile`: every recipe at the smallest width of `GRID[profile]`, the
    preset's recipe (`PRESET_RECIPE`) at the wider ones; each at its steps (or only at `widths`,
    only up to `max_steps`, and only `recipes` where given)."""
    if profile not in GRID:
        raise ValueError(f"no budget grid for profile {profile!r}; choose one of {sorted(GRID)}")
    chosen = recipes or tuple(RECIPES[model])
    base = min(GRID[profile])
    return [Point(model, r, w, s, seed) for r in chosen for w, steps in GRID[profile].items()
            if (widths is None or w in widths) and (w == base or r == PRESET_RECIPE[model])
            for s in steps if max_steps is None or s <= max_steps]


def train(pts: list[Point], profile: str = "cpu", workers: int = 1, progress: bool = True) -> dict[Point, object]:
    """The trained run of every point (`experiments.get_all`: workers > 1 trains that many side by side)."""
    order = sorted(pts, key=lambda p: -p.steps * p.width ** 2)  # largest first, so a pool of workers ends together
    trained = experiments.get_all([(p.model, p.overrides()) for p in order], profile, workers, progress)
    found = dict(zip(order, trained))
    return {p: found[p] for p in pts}


def eval_sets(profile: str, limit: int | None = 1000) -> list[study.EvalSet]:
    """The sets a point is scored on: `limit` MiniPlaces validation photos spread over the split (grayscale
    originals left out) and Kodak24; the smoke profile's own few photos instead."""
    if profile == "smoke":
        return [study.load_eval_set("smoke", "val", profiles.eval_limit(profile))]
    return [study.load_eval_set("miniplaces", "val", limit), study.load_eval_set("kodak24", "all")]


def cpu_seconds(run) -> float:
    """A run's training CPU-seconds (`runs.cpu_seconds`: wall time times threads, a continued run's summed)."""
    return runs.cpu_seconds(run.metrics)


def gray_scores(eval_set: study.EvalSet) -> pd.DataFrame:
    """Per-image metrics of the gray baseline (it has no parameters: scored once per set, cached)."""
    return study.evaluate_cached({"gray": baselines.GrayBaseline()}, eval_set, settings.cache_dir() / "baselines", "gray")


def _score_uncached(runs: list, eval_set: study.EvalSet, share_maps: bool) -> None:
    study.evaluate({run.key: run.model for run in runs}, eval_set, progress=False, share_maps=share_maps)


def scoring_layouts(trained: list, eval_sets: list[study.EvalSet]) -> dict:
    """Wall seconds to score every run on every set, uncached, three ways: one run at a time in one process on this
    process's threads; one run at a time in two one-thread processes side by side (`processes.side_by_side`);
    the runs split into two groups, one per process, each scored photo by photo with Cheng et al.'s feature maps
    shared (`features.memo`), what `study.score_runs` does. Every job loads its runs' weights, as a worker does.
    Call it from a script under `if __name__ == "__main__":`."""
    bare = [replace(run, _model=None) for run in trained]
    layouts = {"one_process_s": ([([run], s, False) for s in eval_sets for run in bare], 1),
               "two_workers_s": ([([run], s, False) for s in eval_sets for run in bare], 2),
               "two_groups_s": ([(bare[i::2], s, True) for s in eval_sets for i in range(2) if bare[i::2]], 2)}
    seconds = {}
    for name, (jobs, workers) in layouts.items():
        start = time.perf_counter()
        processes.side_by_side(_score_uncached, jobs, workers)
        seconds[name] = time.perf_counter() - start
    return {"runs": len(trained), "images": {s.dataset: len(s) for s in eval_sets}, "threads": torch.get_num_threads(),
            **seconds, "speedup": seconds["one_process_s"] / seconds["two_workers_s"],
            "speedup_groups": seconds["one_process_s"] / seconds["two_groups_s"]}


def quality_rows(named: list[tuple[dict, object]], eval_sets: list[study.EvalSet], progress: bool,
                 score=None, workers: int = 1) -> pd.DataFrame:
    """One row per (labelled run, set): the labels, CPU-minutes, scene top-1, each metric and its difference from gray.

    `score(labels, run, eval_set)` gives the per-image scores (default: `study.evaluate_run`, cached; the
    runs not yet scored are scored first, `workers` at a time: `study.score_runs`)."""
    if score is None:
        study.score_runs([run for _, run in named], eval_sets, workers, progress)

        def score(labels, run, s):
            return study.evaluate_run(run, s, progress=progress)
    rows = []
    for s in eval_sets:
        gray = study.summarize(gray_scores(s)).iloc[0]
        for labels, run in named:
            mean = study.summarize(score(labels, run, s)).iloc[0]
            row = {**labels, "run": run.key[:12], "dataset": s.dataset, "images": len(s),
                   "cpu_minutes": cpu_seconds(run) / 60, "top1": run.metrics.get("val_top1")}
            for m in METRICS:
                row[m], row[f"{m}_vs_gray"] = float(mean[m]), float(mean[m] - gray[m])
            rows.append(row)
    return pd.DataFrame(rows)


def curve(trained: dict[Point, object], eval_sets: list[study.EvalSet], progress: bool = False,
          workers: int = 1) -> pd.DataFrame:
    """One row per (point, evaluation set): the point, its CPU-minutes, each metric and its difference from gray
    (scored `workers` at a time)."""
    return quality_rows([(asdict(p), run) for p, run in trained.items()], eval_sets, progress, workers=workers)


def preset_seeds(models: list[str], profile: str, seeds: list[int], eval_sets: list[study.EvalSet],
                 workers: int = 1, progress: bool = False) -> pd.DataFrame:
    """Each model's `profile` preset at every seed (trained and scored side by side when workers > 1), as `curve`."""
    requests = [(m, {"seed": s}) for m in models for s in seeds]
    trained = experiments.get_all(requests, profile, workers, progress)
    return quality_rows([({"model": m, "seed": kw["seed"]}, run) for (m, kw), run in zip(requests, trained)],
                         eval_sets, progress, workers=workers)


# Readout temperatures of the vividness extension's sweep: the paper's 0.38 (Zhang et al. sec. 3.2) up to
# the mean of the distribution (T = 1), the direction of higher PSNR.
TEMPERATURES = (0.38, 0.5, 0.7, 1.0)


def temperature_sweep(extension_runs: list, eval_sets: list[study.EvalSet],
                      temperatures: tuple[float, ...] = TEMPERATURES, progress: bool = False,
                      workers: int = 1) -> pd.DataFrame:
    """Each run of the vividness extension read out at every temperature (inference only: the same
    weights), scored as `curve` with `seed` and `temperature` columns; cached in each run's folder
    (what is not yet cached is scored `workers` at a time)."""
    from colorlab import temperature

    by_own: dict[float, list] = {}  # a run read out at its own temperature is its own cached score ("eval")
    for run in extension_runs:
        by_own.setdefault(run.model.cfg.temperature, []).append(run)
    for own, group in by_own.items():
        study.score_runs(group, eval_sets, workers, progress,
                         {"eval" if t == own else temperature.tag(t): None if t == own else
                          partial(temperature.with_temperature, temperature=t) for t in temperatures})

    def score(labels, run, s):
        t = labels["temperature"]
        if t == run.model.cfg.temperature:
            return study.evaluate_run(run, s, progress=progress)  # the run's own readout: its cached score
        model = temperature.with_temperature(run.model, t)
        return study.evaluate_cached({run.model_name: model}, s, run.dir, temperature.tag(t), progress)

    named = [({"model": run.model_name, "steps": run.train_config["steps"], "seed": run.train_config["seed"],
               "temperature": t}, run) for run in extension_runs for t in temperatures]
    return quality_rows(named, eval_sets, progress, score)


def readout_sweep(trained: list, readouts: dict, eval_sets: list[study.EvalSet], progress: bool = False,
                  workers: int = 1) -> pd.DataFrame:
    """Each run read out by each of `readouts` ({label: `readout.Readout`}; inference only, the same weights),
    scored as `curve` with columns seed, readout, gain and shorter; cached in each run's folder (what is not yet
    cached is scored `workers` at a time)."""
    from colorlab import readout

    study.score_runs(trained, eval_sets, workers, progress,
                     {readout.cache_tag(r): None if r.is_identity else r.wrap for r in readouts.values()})

    def score(labels, run, s):
        return readout.score(run, readouts[labels["readout"]], s, progress)

    named = [({"model": run.model_name, "steps": run.train_config["steps"], "seed": run.train_config["seed"],
               "readout": label, "gain": r.gain, "shorter": r.shorter}, run)
             for run in trained for label, r in readouts.items()]
    return quality_rows(named, eval_sets, progress, score)


def vivid_targets(df: pd.DataFrame, min_psnr_vs_gray: float = 0.3, min_ratio: float = 0.75) -> pd.DataFrame:
    """The colourfulness target per (model, temperature or readout, set) of a multi-seed table
    (`temperature_sweep`, `readout_sweep`, or `preset_seeds` with a constant column): seed 0 and the mean over
    seeds of the ratio and of PSNR over gray; reached when both hold at seed 0 and on the mean."""
    group = [c for c in ("model", "temperature", "readout", "dataset") if c in df.columns]
    rows = []
    for labels, g in df.groupby(group, sort=False, dropna=False):  # a row without a temperature: a model's own
        first = g[g["seed"] == g["seed"].min()].iloc[0]
        row = dict(zip(group, labels), seeds=len(g))
        for m in ("colorfulness_ratio", "psnr_vs_gray"):
            row[f"{m}_seed_0"], row[f"{m}_mean"] = float(first[m]), float(g[m].mean())
        row["reached"] = bool(min(row["colorfulness_ratio_seed_0"], row["colorfulness_ratio_mean"]) >= min_ratio
                              and min(row["psnr_vs_gray_seed_0"], row["psnr_vs_gray_mean"]) >= min_psnr_vs_gray)
        rows.append(row)
    return pd.DataFrame(rows)


TARGETS = {"psnr_vs_gray": 0.5, "auc_vs_gray": 0.015, "top1": 0.10}  # the cpu profile's (issue "Models that learn")
CHENG_TARGETS = {"psnr_vs_gray": 0.0, "auc_vs_gray": 0.0}  # Cheng et al.: at least gray's, on SUN8 test and MiniPlaces


def ablation_plans(variants: dict[str, tuple[str, object]], plans: dict[str, tuple[int, list[int]]],
                   profile: str, eval_sets: list[study.EvalSet], workers: int = 1,
                   progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """Where an ablation's training budget decides most, in more steps or in more seeds: the claims
    (`claims.claims_on_each_set`) of `variants` ({name: (model, network config)}, names as in `claims.ABLATIONS`)
    trained under each plan ({label: (steps, seeds)}), e.g. 1,000 steps x 3 seeds against 500 x 5. Every run is
    the run store's (trained once, `workers` at a time: plans that share steps share seeds' runs). Returns the
    claims with columns plan, steps and seeds, and each plan's training CPU-seconds (`cpu_seconds`)."""
    from colorlab import claims

    requests = {(name, steps, s): (model, {"model_cfg": cfg, "steps": steps, "seed": s})
                for name, (model, cfg) in variants.items() for steps, seeds in plans.values() for s in seeds}
    order = sorted(requests, key=lambda k: -k[1])  # the longest first, so a pool of workers ends together
    trained = dict(zip(order, experiments.get_all([requests[k] for k in order], profile, workers, progress)))
    tables, cost = [], {}
    for plan, (steps, seeds) in plans.items():
        cost[plan] = sum(cpu_seconds(trained[(name, steps, s)]) for name in variants for s in seeds)
        for model in dict.fromkeys(m for m, _ in variants.values()):
            runs = {name: [trained[(name, steps, s)] for s in seeds] for name, (m, _) in variants.items() if m == model}
            tables.append(claims.claims_on_each_set(runs, model, eval_sets, progress, workers=workers)
                          .assign(plan=plan, steps=steps, seeds=len(seeds)))
    return pd.concat(tables, ignore_index=True), cost


def targets(per_seed: pd.DataFrame, goals: dict[str, float] = TARGETS) -> pd.DataFrame:
    """Per model (and readout, where the table has one: `readout_sweep`) and set: seed 0 and the mean over
    seeds of each target's measure, and whether each reaches it."""
    rows = []
    group = [c for c in ("model", "readout", "dataset") if c in per_seed.columns]
    for labels, g in per_seed.groupby(group, sort=False):
        labels = dict(zip(group, labels))
        dataset = labels["dataset"]
        for measure, goal in goals.items():
            if measure == "top1" and dataset != per_seed["dataset"].iloc[0]:
                continue  # the scene head's top-1 is the run's own (MiniPlaces val), not the set's
            values = g[measure].astype(float)
            if values.isna().all():
                continue
            seed0 = float(values[g["seed"] == g["seed"].min()].iloc[0])
            rows.append({**labels, "measure": measure, "target": goal, "seed_0": seed0,
                         "mean": float(values.mean()), "seeds": len(values),
                         "reached": bool(seed0 >= goal and values.mean() >= goal)})
    return pd.DataFrame(rows)


def most_colourful(df: pd.DataFrame, min_psnr_vs_gray: float = 0.3) -> pd.DataFrame:
    """Per model and set, the most colourful point among those at least `min_psnr_vs_gray` dB over gray
    (the colourfulness target's condition); a group with no such point gets a row whose `point` says so."""
    rows = []
    for (model, dataset), g in df.groupby(["model", "dataset"], sort=False):
        ok = g[g["psnr_vs_gray"] >= min_psnr_vs_gray]
        if len(ok):
            rows.append({**ok.loc[ok["colorfulness_ratio"].idxmax()].to_dict(), "point": "found"})
        else:
            rows.append({"model": model, "dataset": dataset, "point": f"none at >= {min_psnr_vs_gray} dB over gray"})
    return pd.DataFrame(rows)


def frontier(df: pd.DataFrame, metric: str = "psnr_vs_gray") -> pd.DataFrame:
    """The points no cheaper point beats on `metric` (per model and dataset), cheapest first."""
    out = []
    for _, g in df.sort_values("cpu_minutes").groupby(["model", "dataset"], sort=False):
        best = -np.inf
        for _, row in g.iterrows():
            if row[metric] > best:
                out.append(row)
                best = row[metric]
    return pd.DataFrame(out).reset_index(drop=True)


# --- Cheng et al.: quality against its reference photos and the pixels sampled from each ---------------
# Its net trains in seconds; what it learns from is the training pixels (sec. 4, Fig. 12: quality against
# their number). Two ways to more of them: more reference photos at the preset's pixels per photo, and more
# pixels of each of the preset's photos. The same photo counts drawn from MiniPlaces' 100 scene kinds
# instead of SUN8's 8 answer whether the reference set's variety pays. Counts are class-balanced subsets
# (`data.decoded(..., limit)`); a smaller subset lies inside a larger one.
CHENG_GRID = {
    "smoke": {"sets": ("smoke",), "photos": (9, 36), "pixels": (32, 64)},
    "cpu": {"sets": ("sun8", "miniplaces"), "photos": (60, 120, 240, 480, 1483), "pixels": (64, 256, 1024)},
}
# the validation photos of each reference set (loss curves only; `experiments.cheng2015.DATA`)
_CHENG_VAL = {"sun8": ("test", 40), "miniplaces": ("val", 40), "smoke": ("val", None)}


@dataclass(frozen=True)
class ChengPoint:
    references: str  # the dataset of the reference photos (its train split)
    photos: int  # reference photos asked for: a class-balanced subset of the train split
    pixels: int  # sampled per reference photo
    seed: int = 0

    def request(self, profile: str) -> tuple[str, dict]:
        """`experiments.get_all`'s (model, kwargs) of this point: the preset with its photos and pixels."""
        from colorlab.experiments import cheng2015

        size = cheng2015.DATA[profile][0].size
        split, limit = _CHENG_VAL[self.references]
        every = self.photos >= _train_photos(self.references)  # the whole split: the same run as the preset's
        return "cheng2015", {"pixels_per_image": self.pixels, "seed": self.seed,
                             "data": profiles.DataSpec(self.references, "train", size, limit=None if every else self.photos),
                             "val": profiles.DataSpec(self.references, split, size, limit=limit)}


def _train_photos(dataset: str) -> int:
    """How many files the train split of `dataset` lists (before grayscale originals are left out)."""
    return len(data.samples(dataset, "train"))


def cheng_points(profile: str = "cpu", seed: int = 0) -> list[ChengPoint]:
    """Every photo count of each reference set at the preset's pixels per photo, and every pixel count of
    the preset's photos (SUN8, `experiments.cheng2015.DATA`): the preset itself is one point of both."""
    grid, (refs, photos, pixels) = CHENG_GRID[profile], _cheng_preset(profile)
    pts = [ChengPoint(s, n, pixels, seed) for s in grid["sets"] for n in grid["photos"]]
    pts += [ChengPoint(refs, photos, p, seed) for p in grid["pixels"]]
    return list(dict.fromkeys(pts))


def _cheng_preset(profile: str) -> tuple[str, int, int]:
    """(reference set, photos, pixels per photo) of Cheng's preset (`experiments.cheng2015.DATA`)."""
    from colorlab.experiments import cheng2015

    spec = cheng2015.DATA[profile][0]
    return spec.name, spec.limit or _train_photos(spec.name), cheng2015.default_config(profile).pixels_per_image


def cheng_photo_runs(profile: str, seeds: list[int], workers: int = 1,
                     progress: bool = False) -> tuple[dict[str, list], dict[str, int]]:
    """Cheng's preset at every seed beside the same net on the curve's next smaller photo count, for the
    claim "more reference photos colour better" (Cheng Fig. 12), paired by seed: ({variant: runs}, {variant: photos})."""
    requests, counts = _cheng_photo_requests(profile, seeds)
    trained = experiments.get_all(requests, profile, workers, progress)
    return {name: trained[i * len(seeds):(i + 1) * len(seeds)] for i, name in enumerate(counts)}, counts


def _cheng_photo_requests(profile: str, seeds: list[int]) -> tuple[list[tuple[str, dict]], dict[str, int]]:
    refs, every, pixels = _cheng_preset(profile)
    counts = {"every reference photo": every,
              "fewer reference photos": max(n for n in CHENG_GRID[profile]["photos"] if n < every)}
    return [ChengPoint(refs, n, pixels, s).request(profile) for n in counts.values() for s in seeds], counts


def cheng_section(profile: str, seed: int, seeds: list[int]) -> list[tuple[str, dict]]:
    """Every run of notebook 09's Cheng section: the curve's points at `seed` (`cheng_points`), the preset at
    `seeds` (`preset_seeds`) and the photo-count claim's runs (`cheng_photo_runs`), for `prepare`."""
    return ([p.request(profile) for p in cheng_points(profile, seed)] + [("cheng2015", {"seed": s}) for s in seeds]
            + _cheng_photo_requests(profile, seeds)[0])


def prepare(requests: list[tuple[str, dict]], profile: str, eval_sets: list[study.EvalSet], workers: int = 1,
            progress: bool = False) -> list:
    """Train the requests not yet trained and score every run on every set where it is not yet scored, all in one
    go: trained `workers` at a time, scored in one group per worker (`study.score_runs`: Cheng et al.'s feature
    maps made once per photo and group). The calls that tabulate them then read the caches."""
    trained = experiments.get_all(requests, profile, workers, progress)
    study.score_runs(trained, eval_sets, workers, progress)
    return trained


def cheng_curve(pts: list[ChengPoint], profile: str, eval_sets: list[study.EvalSet], workers: int = 1,
                progress: bool = False) -> pd.DataFrame:
    """Each point trained once and scored as `curve` (both `workers` side by side), with the reference photos it had (a
    grayscale original in a subset is left out) and its training pixels (those photos x pixels per photo)."""
    requests = [p.request(profile) for p in pts]
    trained = experiments.get_all(requests, profile, workers, progress)
    named = []
    for p, (_, kw), run in zip(pts, requests, trained):
        spec = kw["data"]
        had = len(data.decoded(spec.name, spec.split, spec.size, spec.limit, progress=False).rgb)
        named.append(({**asdict(p), "reference_photos": had, "training_pixels": had * p.pixels}, run))
    return quality_rows(named, eval_sets, progress, workers=workers)
