"""`colorlab weights`: build, verify and list the small trained models the project ships (`make weights`).

    colorlab weights build [--profile cpu] [--seed 0] [--model NAME ...]   # train (or load) and export
    colorlab weights verify                                                # check every file's SHA-256
    colorlab weights list

`build` gets each paper's run through the run store (`experiments.get`), so
from empty caches it retrains every model from scratch (under the run keys of
the current code and CPU); with the runs cached it only exports. Each file gets a model
card beside it (the training command, run key, data, date, CPU, and
validation metrics beside the gray baseline) and the manifest is rewritten.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from colorlab import atomic, baselines, experiments, machine, profiles, study, weights
from colorlab.errors import ColorlabError

# What each shipped model can and cannot do, for its card.
LIMITS = {
    "iizuka2016": "Self-contained. A quarter-width network trained at 64 x 64 on 24,594 MiniPlaces photos for "
                  "the cpu budget (3,000 steps of AdamW with a warm-up and cosine decay, not the paper's "
                  "ADADELTA): it colours skies, grass and skin plausibly but dully (about half the photos' "
                  "colourfulness), and does not know rarer objects' colours. Style transfer (--global-from) works.",
    "koalarization2017": "Needs the MobileNetV2 classifier from the data mirror (`colorlab data fetch "
                         "mobilenet_v2`), which is not inside this file. A quarter-width network trained at "
                         "64 x 64 on the same photos for 1,000 steps of the paper's Adam; similarly dull colours.",
    "cheng2015": "Self-contained: the scene parser is inside the file. Trained on all 1,483 SUN8 training photos; "
                 "vivid colours that are often wrong outside the eight SUN8 scene kinds (airport, "
                 "auditorium, bamboo forest, campus, desert, football field, kitchen, sky).",
}


def card(name: str, run, scores: pd.DataFrame, path: Path) -> str:
    """The model card of one shipped file (Markdown)."""
    m = machine.describe()
    table = scores.to_markdown(index=False, floatfmt=".3f")
    return "\n".join([
        f"# {path.name}", "",
        f"- model: `{name}` ({run.config.get('module')}), config `{json.dumps(run.model_config, sort_keys=True)}`",
        f"- training command: `{run.command}`",
        f"- run key: `{run.key}`",
        f"- data: `{json.dumps(run.config.get('data', {}), sort_keys=True)}`",
        f"- trained: {run.config.get('created')}, {run.metrics.get('train_seconds', float('nan')):.0f} s of training",
        f"- machine of this build: {m['cpu']} ({m['isa']}), {m['physical_cores']} cores, torch {m['torch']}",
        f"- SHA-256: `{weights.sha256(path)}` (also in `{weights.MANIFEST}`)", "",
        "## Validation, beside the gray baseline", "",
        table, "",
        "## What it can and cannot do", "",
        LIMITS.get(name, ""), "",
        "Rebuild with `make weights`: from empty caches it retrains the command above. The run key is the one of this "
        "build's code and CPU; it changes with the code that trains the model and, for the CNNs, with whether the CPU "
        "computes bf16 natively. The weights also depend on the CPU and on the thread count they train on (float sums "
        "in another order), which the key does not hold.", "",
    ])


def scores(run, sets: list) -> pd.DataFrame:
    """Mean PSNR, SSIM, AuC and colourfulness ratio of the run and of gray on each set (cached per run)."""
    frames = [study.evaluate({run.model_name: run, "gray": baselines.GrayBaseline()}, s, progress=False) for s in sets]
    table = study.summarize(pd.concat(frames, ignore_index=True))
    return table.drop(columns=[c for c in ("seconds",) if c in table])


def build(names: list[str], profile: str, seed: int, folder: Path, limit: int | None) -> list[Path]:
    sets = [study.load_eval_set(d, s, limit) for d, s in profiles.eval_sets(profile) if d in ("miniplaces", "kodak24", "smoke")]
    written = []
    for name in names:
        run = experiments.get(name, profile, seed=seed)
        path = weights.export(run, folder / weights.SHIPPED[name])
        written.append(path)
        table = scores(run, sets)
        atomic.write_text(path.with_suffix(".md"), card(name, run, table, path))
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, run {run.key[:12]})")
    weights.write_manifest(folder)
    for name in names:  # the card's digest and the manifest must agree
        weights.shipped_path(name, folder)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("build", help="train (or load) each paper's model and export it with a card")
    p.add_argument("--profile", default="cpu", choices=profiles.PROFILES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", action="append", choices=sorted(weights.SHIPPED), help="only these (repeatable)")
    p.add_argument("--limit", type=int, help="validation images per set for the card (default: the profile's)")
    p.add_argument("--out", type=Path, help="folder (default: weights/ or COLORLAB_WEIGHTS)")
    sub.add_parser("verify", help="check every shipped file against the manifest")
    sub.add_parser("list", help="the shipped files and their run keys")


def run(args: argparse.Namespace) -> int:
    folder = Path(getattr(args, "out", None) or weights.weights_dir())
    if args.action == "build":
        folder.mkdir(parents=True, exist_ok=True)
        limit = args.limit if args.limit is not None else profiles.eval_limit(args.profile)
        build(args.model or list(weights.SHIPPED), args.profile, args.seed, folder, limit)
        return 0
    found = [n for n in weights.SHIPPED if (folder / weights.SHIPPED[n]).exists()]
    if not found:
        raise ColorlabError("no shipped weights here", path=folder, fix="make weights")
    for name in found:
        path = weights.shipped_path(name, folder)  # raises on a mismatch
        if args.action == "list":
            _, meta = weights.load_exported(path)
            print(f"{name:18s} {path.name:36s} run {meta['key'][:12]}  {path.stat().st_size / 1e6:.1f} MB")
        else:
            print(f"ok {path}")
    return 0
