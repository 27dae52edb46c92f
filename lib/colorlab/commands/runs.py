"""`colorlab runs list | export | diff`: the run store's table of trained runs, one run's weights to one file, and
how far two runs' weights are apart.

    colorlab runs list [--model NAME]             # method, key, config, data, steps, metrics, status
    colorlab runs export KEY out.safetensors      # a self-describing weights file (`weights.export`)
    colorlab runs diff KEY KEY                    # bit-identical weights? else the largest difference
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from colorlab import keys, settings
from colorlab.configs import network_module
from colorlab.errors import ColorlabError
from colorlab.runs import Run, all_runs, load_run


def _summary(run: Run) -> str:
    try:
        defaults = keys.jsonable(asdict(network_module(run.config).Config()))
    except Exception:  # noqa: BLE001 - a model that is gone still lists
        defaults = {}
    changed = {k: v for k, v in run.model_config.items() if defaults.get(k) != v}
    t = run.train_config
    parts = [f"{k}={v}" for k, v in changed.items()]
    if "optimizer" in t:
        parts += [f"{t['optimizer']} lr={t.get('lr')}", f"batch={t.get('batch_size')}"]
    return ", ".join(parts + [f"seed={t.get('seed')}"])


def _data_summary(data: dict) -> str:
    spec = data.get("train")
    if not isinstance(spec, dict) or "name" not in spec:
        return str(data.get("arrays", data.get("train", "")))[:40]
    limit = f" limit {spec['limit']}" if spec.get("limit") else ""
    return f"{spec['name']}/{spec['split']}@{spec['size']}{limit}"


def list_runs(model_name: str | None = None) -> pd.DataFrame:
    """One row per run: method, key, config summary, data, steps, final metrics, the run it continued (if any),
    date, status."""
    rows = []
    for run in all_runs(model_name):
        m = run.metrics
        history = run.history
        rows.append({
            "method": run.model_name, "key": run.key[:12], "config": _summary(run),
            "data": _data_summary(run.config.get("data", {})),
            "steps": int(history["step"].iloc[-1]) if len(history) and "step" in history else m.get("steps", 0),
            "target_steps": run.train_config.get("steps"),
            "val_loss": m.get("val_loss"), "val_top1": m.get("val_top1"), "train_seconds": m.get("train_seconds"),
            "continues": run.config.get("continues", {}).get("key", "")[:12],
            "date": run.config.get("created"), "status": "done" if run.done else "unfinished",
        })
    columns = ["method", "key", "config", "data", "steps", "target_steps", "val_loss", "val_top1",
               "train_seconds", "continues", "date", "status"]
    return pd.DataFrame(rows, columns=columns)


def weight_difference(a: Run, b: Run) -> dict:
    """How far two runs of one network are apart: whether every weight is bit-identical (same dtype, same bytes),
    the largest absolute difference, the tensors that differ and those holding a non-finite value, and each run's
    key, thread count and training seconds. Two runs of one configuration and seed differ where their threads
    differ: another count rounds floats in another order."""
    if a.key == b.key:
        raise ColorlabError(f"both keys name run {a.key[:12]}: give two runs")
    sa, sb = a.model.state_dict(), b.model.state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise ColorlabError(f"runs {a.key[:12]} ({a.model_name}) and {b.key[:12]} ({b.model_name}) are not the same "
                            "network: their weights differ in names or shapes")

    def same_bytes(x, y):
        return x.dtype == y.dtype and torch.equal(x.reshape(-1).view(torch.uint8), y.reshape(-1).view(torch.uint8))

    differing = [k for k in sa if not same_bytes(sa[k], sb[k])]
    gaps = [float((sa[k].double() - sb[k].double()).abs().max()) for k in differing if sa[k].numel()]
    return {"bit_identical": not differing, "max_abs_difference": max(gaps, default=0.0),
            "tensors_differing": len(differing), "tensors": len(sa),
            "tensors_not_finite": sum(not bool(torch.isfinite(t).all()) for t in (*sa.values(), *sb.values())
                                      if t.is_floating_point()),
            "runs": {run.key[:12]: {"threads": run.metrics.get("threads"),
                                    "train_seconds": run.metrics.get("train_seconds")} for run in (a, b)}}


# --- command line: `colorlab runs list | export | diff` -----------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("list", help="list trained runs")
    p.add_argument("--model", help="only this model")
    p = sub.add_parser("export", help="write a run's weights to one safetensors file")
    p.add_argument("key", help="run key (at least 6 leading digits)")
    p.add_argument("out", type=Path, help="output file (.safetensors)")
    p.add_argument("--model", help="model name, to narrow the key search")
    p = sub.add_parser("diff", help="whether two runs' weights are bit-identical, else how far apart")
    p.add_argument("keys", nargs=2, metavar="KEY", help="two run keys (at least 6 leading digits each)")
    p.add_argument("--model", help="model name, to narrow the key search")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        df = list_runs(args.model)
        print(f"no runs under {settings.runs_dir()}" if df.empty else df.to_markdown(index=False, floatfmt=".4g"))
        return 0
    if args.action == "diff":
        print(json.dumps(weight_difference(*(load_run(args.model, k) for k in args.keys)), indent=1))
        return 0
    from colorlab import weights

    found = load_run(args.model, args.key)
    out = weights.export(found, args.out)
    print(f"wrote {out} ({found.model_name}, run {found.key[:12]})")
    return 0
