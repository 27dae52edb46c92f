"""`colorlab compare`: two configurations of one network at the same seeds, scored paired by seed.

    colorlab compare --model iizuka2016 --a color_loss=l1 --seeds 0 1 2 \\
        --sets miniplaces kodak24 imagenet-sample --workers 2 --out results/json/l1_loss.json
    colorlab compare --model koalarization2017 --a use_embedding=false --a-name "no embedding" --dry-run

`--a` and `--b` take `KEY=VALUE` overrides of the profile's preset (as `colorlab train --set`;
none: the preset itself); `--set` puts overrides under both. Runs and scores are cached, so a
second call costs seconds. Prints each variant's mean quality beside gray and a - b per set and
metric with its 95% interval over the seeds ("higher", "lower", "undecided"); `--out` keeps the
whole record as JSON (machine, commit, run keys, per-run points, the command that makes it again).
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
    for v in ("a", "b"):
        parser.add_argument(f"--{v}", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                            help=f"variant {v}'s overrides of the preset (none: the preset); repeatable")
        parser.add_argument(f"--{v}-name", help=f"variant {v}'s name (default: its overrides, or 'preset')")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override under both variants")
    add_run_arguments(parser)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `colorlab compare` and `colorlab readouts` share: seeds, sets, workers, threads, output."""
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="paired seeds (default 0 1 2)")
    parser.add_argument("--sets", nargs="*", default=None, metavar="DATASET",
                        help=f"evaluation sets, of {sorted(paired.SPLITS)} (default: MiniPlaces val and Kodak24; smoke: its own)")
    parser.add_argument("--limit", type=int, default=1000, help="photos per set, spread over it (0: all; default 1000)")
    parser.add_argument("--workers", type=int, default=1, help="runs trained and scored side by side, one thread each")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for this process (runs it trains itself)")
    parser.add_argument("--out", help="write the record here as JSON")
    parser.add_argument("--dry-run", action="store_true", help="print each run's key and whether it is trained")


def check_run_arguments(args: argparse.Namespace) -> None:
    """Set this process's threads; refuse a negative limit or no worker; say that one seed gives no interval."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.limit < 0:
        raise ColorlabError(f"--limit must be 0 (all photos) or a positive number, got {args.limit}")
    if args.workers < 1:
        raise ColorlabError(f"--workers must be at least 1, got {args.workers}")
    if len(args.seeds) < 2 and not args.dry_run:
        print("one seed: the differences carry no interval (each reads 'undecided')")


def print_dry_run(found: dict) -> None:
    """Each run a record needs ({(name, seed): recipe}), its key and whether it is trained."""
    for (name, s), recipe in found.items():
        print(f"{name} seed {s}: run {recipe.key[:12]} {runs.status(recipe)[1]}")


def write_record(record: dict, out: str | None) -> None:
    if out:
        atomic.write_text(out, json.dumps(record, indent=1, allow_nan=False) + "\n")
        print(f"record in {out}")


def _variants(args: argparse.Namespace) -> tuple[paired.Variant, paired.Variant, dict[str, str]]:
    a = paired.Variant.parse(args.a, args.a_name)
    b = paired.Variant.parse(args.b, args.b_name)
    common = dict(paired.Variant.parse(args.set, "common").overrides)
    return a, b, common


def run(args: argparse.Namespace) -> int:
    check_run_arguments(args)
    a, b, common = _variants(args)
    if args.dry_run:
        print_dry_run(paired.recipes(args.profile, paired.variant_requests(args.model, a, b, common), args.seeds))
        return 0
    record = paired.compare(args.model, args.profile, a, b, args.seeds, args.sets, args.limit or None, common,
                            args.workers, progress=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(paired.points_table(record).round(4).to_string(index=False))
        print()
        print(paired.differences_table(record).round(4).to_string(index=False))
    write_record(record, args.out)
    return 0
