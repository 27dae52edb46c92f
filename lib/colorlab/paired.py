"""Runs of one network paired by seed: two configurations (`compare`), or one read out several ways (`sweep_readouts`).

    from colorlab import paired
    a = paired.Variant.parse(["color_loss=l1"])          # overrides of the profile's preset
    b = paired.Variant.parse([], name="preset")          # the preset itself
    record = paired.compare("iizuka2016", "cpu", a, b, seeds=[0, 1, 2],
                            sets=["miniplaces", "kodak24", "imagenet-sample"])
    print(paired.differences_table(record))

    sweep = paired.sweep_readouts("iizuka2016", "cpu", [1.25, 1.5, 2.0], seeds=[0, 1, 2],
                                  common={"color_loss": "l1"})  # one configuration read out with chroma gains
    print(paired.differences_table(sweep, "readout"))         # each gain - the runs' own colours, by seed

`colorlab compare` and `colorlab readouts` are the same from the shell. Each (variant, seed) is one
run of the run store (`experiments.get_all`: trained once, cached by its key, `workers` at a time)
and each score is cached in its run's folder (`study.score_runs`), so a rerun costs nothing. The
answer, per evaluation set: every run's quality beside gray (`budget.quality_rows`), and a - b per
metric paired by seed (`study.paired_difference`) with its 95% t-interval, read as "higher", "lower"
or "undecided" (the interval holds 0). Pairing by seed counts because both variants start from the
same seed's weights where the architectures allow and see the same batches. The scene head's top-1
(the run's own validation, where the network has one) is paired the same way.

A readout (`readout.Readout`: a chroma gain, the scale the net runs at) is inference only: every
readout of a sweep is the same runs' weights, paired by seed against their own colours, with the
colourfulness target per readout and set (`budget.vivid_targets`).

This sits with scoring and the studies: it reaches the run store through `experiments`.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

import pandas as pd
import torch

from colorlab import budget, experiments, machine, readout, runs, study
from colorlab.errors import ColorlabError

# The split each dataset is scored on: held out from training wherever the dataset has a split.
SPLITS = {"miniplaces": "val", "kodak24": "all", "imagenet-sample": "all", "sun8": "test", "smoke": "val"}
METRICS = ("psnr", "auc", "colorfulness_ratio")
TOP1 = "scene top-1 (the run's validation)"
OWN = readout.Readout().label  # "gain 1": the runs' own colours (the identity readout), every readout's reference
READING = ("each run key pins the code, configs and data (checksummed datasets) its run trained with; the commit is "
           "the checkout that assembled this record, cached runs and scores kept; weights also depend on the CPU and "
           "on each run's thread count, which keys do not hold")


@dataclass(frozen=True)
class Variant:
    """A name and the config overrides (`KEY=VALUE` as `colorlab train --set`) it puts on the profile's preset."""

    name: str
    overrides: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, items: list[str], name: str | None = None) -> Variant:
        pairs = []
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ColorlabError(f"a variant's override must be KEY=VALUE, got {item!r}")
            if key.rpartition(".")[2] == "seed":
                raise ColorlabError("the seeds are the comparison's (--seeds), not a variant's override")
            pairs.append((key, value))
        fields = [k.rpartition(".") for k, _ in pairs]
        for i, (scope, _, field) in enumerate(fields):  # `alpha` and `model.alpha` are one field; `model.x`, `train.x` two
            if any(f == field and (s == scope or not s or not scope) for s, _, f in fields[:i]):
                raise ColorlabError(f"field {field!r} is set twice in {items}")
        return cls(name or (" ".join(items) if items else "preset"), tuple(pairs))


def default_sets(profile: str) -> list[str]:
    """The budget curve's sets: MiniPlaces val and Kodak24 (the smoke profile's own few photos at smoke)."""
    return ["smoke"] if profile == "smoke" else ["miniplaces", "kodak24"]


def eval_sets(names: list[str] | None, profile: str, limit: int | None = 1000) -> list[study.EvalSet]:
    """The named sets (none named: `default_sets`) on their held-out split (`SPLITS`), each at most `limit` photos
    spread over it (None: all; Kodak24's 24 fit under the default), grayscale originals left out."""
    if limit is not None and limit < 1:
        raise ColorlabError(f"limit must be a positive number of photos (or None for all), got {limit}")
    names = names or default_sets(profile)
    unknown = [n for n in names if n not in SPLITS]
    if unknown:
        raise ColorlabError(f"no evaluation split known for {unknown}; choose from {sorted(SPLITS)}")
    return [study.load_eval_set(n, SPLITS[n], limit) for n in dict.fromkeys(names)]


def variant_requests(model: str, a: Variant, b: Variant, common: dict[str, str]) -> dict[str, tuple[str, dict]]:
    """{name: (model, overrides)} of both variants, the `common` overrides under each (`experiments.get_over_seeds`)."""
    return {v.name: (model, {**common, **dict(v.overrides)}) for v in (a, b)}


def recipes(profile: str, variants: dict[str, tuple[str, dict]], seeds: list[int]) -> dict:
    """{(variant, seed): its `runs.Recipe`}: the runs a comparison needs, keyed, nothing trained."""
    return {(name, s): experiments.recipe(m, profile, progress=False, **kw, seed=s)
            for name, (m, kw) in variants.items() for s in seeds}


def _direction(d: dict) -> str:
    return {"reproduced": "higher", "not reproduced": "lower"}.get(study.verdict(d, "a>b"), "undecided")


def _check(seeds: list[int], common: dict[str, str], workers: int) -> None:
    if not seeds or len(set(seeds)) < len(seeds):
        raise ColorlabError(f"seeds must be distinct and at least one, got {seeds}")
    if any(k.rpartition(".")[2] == "seed" for k in common):
        raise ColorlabError("the seeds are given apart (seeds=..., --seeds), not as an override")
    if workers < 1:
        raise ColorlabError(f"workers must be at least 1, got {workers}")


def _provenance(chosen: list[study.EvalSet], named: list[tuple[str, object]]) -> dict:
    """What every record holds beside its numbers: how to read it, the machine, the commit, the sets, the runs."""
    described = machine.describe()
    return {
        "reading": READING,
        "machine": {k: described[k] for k in ("cpu", "isa", "isa_flags", "native_bf16", "torch")},
        "commit": machine.commit(),
        "sets": [{"dataset": es.dataset, "split": es.split, "images": len(es), "skipped": len(es.skipped)}
                 for es in chosen],
        "runs": {name: {"key": run.key[:12], "threads": run.metrics.get("threads"),
                        "train_seconds": run.metrics.get("train_seconds"), "cpu_seconds": runs.cpu_seconds(run.metrics)}
                 for name, run in named},
    }


def compare(model: str, profile: str, a: Variant, b: Variant, seeds: list[int], sets: list[str] | None = None,
            limit: int | None = 1000, common: dict[str, str] | None = None, workers: int = 1,
            progress: bool = False) -> dict:
    """Train (or load) `a` and `b` at every seed, with the `common` overrides under both, score them on every set
    (`eval_sets(sets, profile, limit)`) and pair them by seed, training and scoring `workers` at a time.
    Returns a JSON-able record: the machine, the commit, the command that makes it again, the runs (key,
    threads, CPU-seconds), every run's quality beside gray (`points`) and the differences a - b (`paired`)."""
    if a.name == b.name:
        raise ColorlabError(f"the two variants need different names (both are {a.name!r})")
    common = dict(common or {})
    _check(seeds, common, workers)
    threads = torch.get_num_threads()  # runs trained in this process (one worker, or one run left) use these
    variants = variant_requests(model, a, b, common)
    found = recipes(profile, variants, seeds)  # a bad field fails here, before anything trains
    for s in seeds:
        if found[(a.name, s)].key == found[(b.name, s)].key:
            raise ColorlabError(f"variants {a.name!r} and {b.name!r} are the same configuration at seed {s} "
                                f"(run {found[(a.name, s)].key[:12]}): nothing to compare")
    chosen = eval_sets(sets, profile, limit)
    trained = experiments.get_over_seeds(variants, seeds, profile, workers, progress)
    named = [({"variant": name, "seed": s}, run) for name, got in trained.items() for s, run in zip(seeds, got)]
    points = budget.quality_rows(named, chosen, progress, workers=workers)  # each run's means: what pairing needs
    diffs = [study.paired_difference(points, a.name, b.name, m, es.dataset) for es in chosen for m in METRICS]
    if points["top1"].notna().all():  # a run's own validation, the same on every set's row
        diffs.append({**study.paired_difference(points, a.name, b.name, "top1", chosen[0].dataset), "dataset": TOP1})
    for d in diffs:
        d["a_against_b"] = _direction(d)
    flags = []
    for flag, v in (("--a", a), ("--b", b)):
        overrides = [shlex.quote(f"{k}={val}") for k, val in v.overrides]
        flags += ([flag] + overrides if overrides else []) + [f"{flag}-name", shlex.quote(v.name)]
    flags += [f"--set {shlex.quote(f'{k}={v}')}" for k, v in common.items()]
    return _json_clean({
        "what": f"{model} at the {profile} profile: {a.name!r} against {b.name!r}, seeds {list(seeds)}, paired by seed "
                "(95% t-intervals of a - b over seeds)",
        "command": command("compare", model, profile, flags, seeds, chosen, limit, workers, threads),
        **_provenance(chosen, [(f"{labels['variant']}/{labels['seed']}", run) for labels, run in named]),
        "model": model, "profile": profile, "seeds": list(seeds),
        "variants": {v.name: dict(v.overrides) for v in (a, b)}, "common": common,
        "points": points.to_dict("records"),
        "paired": diffs,
    })


def readouts(gains: list[float], shorter: list[int] | None = None) -> dict[str, readout.Readout]:
    """{label: readout}: every gain, and gain 1 (the runs' own colours, first), at the net's own scale and at each
    `shorter` scale (pixels of the photo's shorter side), so a scale's effect shows apart from a gain's."""
    found = {}
    for s in [None, *(shorter or [])]:
        for g in [1.0, *gains]:
            try:
                r = readout.Readout(gain=float(g), shorter=s)
            except (TypeError, ValueError) as err:
                raise ColorlabError(f"bad readout (gain {g}, shorter {s}): {err}") from None
            found.setdefault(r.label, r)
    return found


def sweep_readouts(model: str, profile: str, gains: list[float], seeds: list[int], sets: list[str] | None = None,
                   limit: int | None = 1000, common: dict[str, str] | None = None, shorter: list[int] | None = None,
                   workers: int = 1, progress: bool = False) -> dict:
    """Train (or load) the preset with the `common` overrides at every seed, read each run out every way of
    `readouts(gains, shorter)`, score each on every set and pair each readout against the runs' own colours by seed.
    Inference only: the readouts share each run's weights, and their scores are cached in its folder. Returns a
    JSON-able record as `compare`'s (its `points` with a `readout` column, `runs` by seed, no top-1: a readout does
    not change the scene head), with `vivid_targets` (ratio >= 0.75 at >= +0.3 dB over gray, first seed and mean)."""
    common = dict(common or {})
    _check(seeds, common, workers)
    found = readouts(gains, shorter)
    if len(found) < 2:
        raise ColorlabError(f"gains {gains} hold no readout besides the runs' own colours (gain 1): nothing to sweep")
    threads = torch.get_num_threads()
    variants = {"runs": (model, common)}
    recipes(profile, variants, seeds)  # a bad field fails here, before anything trains
    chosen = eval_sets(sets, profile, limit)
    trained = experiments.get_over_seeds(variants, seeds, profile, workers, progress)["runs"]
    points = budget.readout_sweep(trained, found, chosen, progress, workers)
    by_variant = points.rename(columns={"readout": "variant"})
    diffs = [study.paired_difference(by_variant, label, OWN, m, es.dataset)
             for es in chosen for label in found if label != OWN for m in METRICS]
    for d in diffs:
        d["a_against_b"] = _direction(d)
    scales = sorted({r.shorter for r in found.values() if r.shorter is not None})
    flags = [f"--set {shlex.quote(f'{k}={v}')}" for k, v in common.items()]
    flags += ["--gains"] + ([readout.number(g) for g in dict.fromkeys(float(g) for g in gains)] or ["1"])
    flags += ["--shorter"] + [str(s) for s in scales] if scales else []
    return _json_clean({
        "what": f"{model} at the {profile} profile" + (f" with {common}" if common else "") + f", seeds {list(seeds)}, "
                f"read out {len(found) - 1} more ways (inference only) and paired by seed against its own colours "
                "(95% t-intervals of readout - own)",
        "command": command("readouts", model, profile, flags, seeds, chosen, limit, workers, threads),
        **_provenance(chosen, [(str(s), run) for s, run in zip(seeds, trained)]),
        "model": model, "profile": profile, "seeds": list(seeds), "common": common,
        "readouts": {label: {"gain": r.gain, "shorter": r.shorter} for label, r in found.items()},
        "points": points.to_dict("records"),
        "paired": diffs,
        "vivid_targets": budget.vivid_targets(points).to_dict("records"),
    })


def _json_clean(obj):
    """The record as strict JSON: NaN (an interval of one seed, a top-1 a net lacks) as None, numpy scalars as Python."""
    if isinstance(obj, dict):
        return {k: _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def command(name: str, model: str, profile: str, flags: list[str], seeds: list[int], chosen: list[study.EvalSet],
            limit: int | None, workers: int, threads: int) -> str:
    """The `colorlab NAME` command line that makes a record again, on the same threads: the run key does not hold
    the thread count, and another count rounds floats in another order (other weights from empty caches)."""
    parts = [f"colorlab {name}", f"--model {model}", f"--profile {profile}", *flags]
    parts += ["--seeds"] + [str(s) for s in seeds] + ["--sets"] + [es.dataset for es in chosen]
    return " ".join(parts + [f"--limit {limit if limit is not None else 0}", f"--workers {workers}",
                             f"--threads {threads}"])


def points_table(record: dict, by: str = "variant") -> pd.DataFrame:
    """Each variant's (`by="readout"`: each readout's) mean over the seeds, per set: metrics beside gray,
    colourfulness ratio, scene top-1."""
    df = pd.DataFrame(record["points"])
    cols = [c for c in ("psnr_vs_gray", "auc_vs_gray", "colorfulness_ratio", "top1", "cpu_minutes") if c in df]
    means = df.groupby(["dataset", by], sort=False)[cols].mean()
    return means.join(df.groupby(["dataset", by], sort=False).size().rename("seeds")).reset_index()


def differences_table(record: dict, a: str = "a") -> pd.DataFrame:
    """The paired differences a - b, one row per set, a (named `a`: "readout" for a sweep) and metric."""
    cols = ["dataset", "a", "metric", "seeds", "diff", "ci_low", "ci_high", "a_against_b"]
    return pd.DataFrame(record["paired"])[cols].rename(columns={"a": a})
