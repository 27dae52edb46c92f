"""`colorlab readouts`: one configuration's runs read out with chroma gains, each paired by seed against its own colours.

    colorlab readouts --model iizuka2016 --set color_loss=l1 --gains 1.25 1.5 2 --seeds 0 1 2 \\
        --sets miniplaces kodak24 --workers 2 --out results/json/gains.json
    colorlab readouts --model koalarization2017 --gains 1.5 --shorter 64 --dry-run

The runs are the profile's preset with the `--set` overrides (as `colorlab train --set`), trained
once and cached by key; each readout (`colorlab.readout`: the model's a, b times a gain, the net run
at `--shorter` pixels) is inference only, its scores cached in the run's folder, so a second call
costs seconds. Prints each readout's mean quality beside gray, readout - own colours per set and
metric with its 95% interval over the seeds, and the colourfulness target (ratio >= 0.75 at >= +0.3
dB over gray, at the first seed and on the mean); `--out` keeps the whole record as JSON.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd
import torch

from colorlab import atomic, experiments, paired, runs
from colorlab.errors import ColorlabError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help=f"one of {sorted(experiments.MODULES)}")
    parser.add_argument("--profile", default="cpu", help="smoke | cpu | gpu | paper (default: cpu)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override of the preset")
    parser.add_argument("--gains", nargs="+", type=float, default=[1.25, 1.5, 1.75, 2.0],
                        help="chroma gains (default 1.25 1.5 1.75 2; the runs' own colours, gain 1, always come too)")
    parser.add_argument("--shorter", nargs="+", type=int, metavar="PIXELS",
                        help="run the net with the photo's shorter side at these pixels, each with every gain")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default 0 1 2)")
    parser.add_argument("--sets", nargs="*", default=None, metavar="DATASET",
                        help=f"evaluation sets, of {sorted(paired.SPLITS)} (default: MiniPlaces val and Kodak24; smoke: its own)")
    parser.add_argument("--limit", type=int, default=1000, help="photos per set, spread over it (0: all; default 1000)")
    parser.add_argument("--workers", type=int, default=1, help="runs trained and scored side by side, one thread each")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for this process (runs it trains itself)")
    parser.add_argument("--out", help="write the record here as JSON")
    parser.add_argument("--dry-run", action="store_true", help="print each run's key and whether it is trained")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.limit < 0:
        raise ColorlabError(f"--limit must be 0 (all photos) or a positive number, got {args.limit}")
    common = dict(paired.Variant.parse(args.set, "common").overrides)
    if args.dry_run:
        found = paired.recipes(args.profile, {"runs": (args.model, common)}, args.seeds)
        for (_, s), recipe in found.items():
            print(f"seed {s}: run {recipe.key[:12]} {runs.status(recipe)[1]}")
        return 0
    record = paired.sweep_readouts(args.model, args.profile, args.gains, args.seeds, args.sets, args.limit or None,
                                   common, args.shorter, args.workers, progress=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(paired.points_table(record, by="readout").round(4).to_string(index=False))
        print()
        print(paired.differences_table(record).round(4).to_string(index=False))
        print()
        print(pd.DataFrame(record["vivid_targets"]).round(3).to_string(index=False))
    if args.out:
        atomic.write_text(args.out, json.dumps(record, indent=1, allow_nan=False) + "\n")
        print(f"record in {args.out}")
    return 0
