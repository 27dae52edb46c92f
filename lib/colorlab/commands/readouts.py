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

import pandas as pd

from colorlab import experiments, paired
from colorlab.commands.compare import add_run_arguments, check_run_arguments, print_dry_run, write_record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help=f"one of {sorted(experiments.MODULES)}")
    parser.add_argument("--profile", default="cpu", help="smoke | cpu | gpu | paper (default: cpu)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override of the preset")
    parser.add_argument("--gains", nargs="+", type=float, default=[1.25, 1.5, 1.75, 2.0],
                        help="chroma gains (default 1.25 1.5 1.75 2; the runs' own colours, gain 1, always come too)")
    parser.add_argument("--shorter", nargs="+", type=int, metavar="PIXELS",
                        help="also run the net with the photo's shorter side at these pixels, each with gain 1 and "
                             "every gain")
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    check_run_arguments(args)
    common = dict(paired.Variant.parse(args.set, "common").overrides)
    found = paired.readouts(args.gains, args.shorter)  # bad gains or scales are refused before anything else
    if args.dry_run:
        print_dry_run(paired.recipes(args.profile, {"runs": (args.model, common)}, args.seeds))
        print(f"readouts: {', '.join(found)} (each run's scores of each are cached in its folder)")
        return 0
    record = paired.sweep_readouts(args.model, args.profile, args.gains, args.seeds, args.sets, args.limit or None,
                                   common, args.shorter, args.workers, progress=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(paired.points_table(record, by="readout").round(4).to_string(index=False))
        print()
        print(paired.differences_table(record, "readout").round(4).to_string(index=False))
        print()
        print(pd.DataFrame(record["vivid_targets"]).round(3).to_string(index=False))
    write_record(record, args.out)
    return 0
