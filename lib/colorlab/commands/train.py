"""`colorlab train`: get a trained model of a paper at a profile, through the run store.

    colorlab train --model iizuka2016 --profile cpu [--seed 1] [--set use_global=false] [--dry-run]
    colorlab train --model iizuka2016 --data class_photos/ [--val held_out/]
    torchrun --nproc-per-node 2 -m colorlab train --model iizuka2016 --profile gpu

Prints `run KEY in FOLDER` and the run's final metrics. A finished run with
the same key is loaded, not trained again; an interrupted one resumes.
`--dry-run` answers "will this retrain?" and trains nothing.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.distributed as dist

from colorlab import experiments, runs
from colorlab.errors import ColorlabError

STATES = {
    "trained": "trained: it would be loaded, not trained again",
    "damaged": "finished, but its weights fail verification: it would be trained again",
    "unfinished": "unfinished: training would resume from its checkpoint",
    "new": "not trained: it would be trained",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help=f"one of {sorted(experiments.MODULES)}")
    parser.add_argument("--profile", default="cpu", help="smoke | cpu | gpu | paper (default: cpu)")
    parser.add_argument("--steps", type=int, help="training steps (default: the profile's)")
    parser.add_argument("--seed", type=int, help="seed of init, data order and augmentation (default 0)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a model or train config field (model.KEY / train.KEY when both have it); repeatable")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="continue an interrupted run with the same config (default); --no-resume starts it over")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bfloat16 autocast on or off (default: the preset's; cpu = on where the CPU has native bf16)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: auto)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for this process")
    parser.add_argument("--data", metavar="FOLDER", help="train on this folder of photos (recursively) instead of "
                        "the profile's dataset; grayscale and unreadable files are skipped and named")
    parser.add_argument("--val", metavar="FOLDER", help="validation photos for --data (loss curves); optional")
    parser.add_argument("--dry-run", action="store_true", help="print the run's key, folder and state; train nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def overrides(args: argparse.Namespace) -> dict:
    """The command's config overrides: `--set KEY=VALUE` items, then the direct flags."""
    out = {}
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep:
            raise ColorlabError(f"--set expects KEY=VALUE, got {item!r}")
        out[key] = text
    direct = {"train.steps": args.steps, "train.seed": args.seed, "train.device": args.device, "train.bf16": args.bf16}
    out.update({k: v for k, v in direct.items() if v is not None})
    return out


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    main = int(os.environ.get("RANK", "0")) == 0
    if args.val and not args.data:
        raise ColorlabError("--val needs --data (the training folder)")
    recipe = experiments.recipe(args.model, args.profile, progress=not args.no_progress, data=args.data,
                                val=args.val, **overrides(args))
    if args.dry_run:
        found, state = runs.status(recipe)
        print(f"run {found.key[:12]} in {found.dir}")
        shorter = runs.continued_from(recipe, args.resume) if state != "trained" else None
        print(STATES[state] if shorter is None else
              f"not trained: it would continue run {shorter.key[:12]} from its step {shorter.train_config['steps']}")
        return 0
    if main:
        print(f"model {args.model} ({args.profile}): {recipe.model_cfg}\ntrain: {recipe.train_cfg}")
        print(f"run {recipe.key[:12]} in {recipe.folder}", flush=True)
    try:
        result = runs.get(recipe, progress=not args.no_progress, resume=args.resume)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if main:
        print(f"run {result.key[:12]} in {result.dir}")
        print(json.dumps(result.metrics, indent=2, sort_keys=True))
    return 0
