"""`colorlab data list | fetch NAME | verify NAME`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from colorlab import settings
from colorlab.data import registry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="each dataset: present?, where, size, terms")
    ls.add_argument("--data-dir", type=Path, help="look here instead of COLORLAB_DATA / <repo>/data")
    fetchable = [n for n, d in registry.REGISTRY.items() if d.sources]
    f = sub.add_parser("fetch", help="download, verify and unpack a dataset")
    f.add_argument("name", choices=fetchable)
    f.add_argument("--dest", type=Path, help="data folder to write into (default: COLORLAB_DATA or <repo>/data)")
    f.add_argument("--allow-unverified", action="store_true",
                   help="download sources with no pinned SHA-256 (their digest is printed so you can pin it)")
    f.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    v = sub.add_parser("verify", help="hash a dataset folder and compare with the registered digests")
    v.add_argument("name", choices=fetchable)
    v.add_argument("--data-dir", type=Path, help="look here instead of COLORLAB_DATA / <repo>/data")


def run(args: argparse.Namespace) -> int:
    from colorlab.data import fetch, verify

    try:
        if args.action == "list":
            print(listing(args.data_dir))
            return 0
        if args.action == "fetch":
            fetch.fetch_dataset(args.name, args.dest, allow_unverified=args.allow_unverified, timeout=args.timeout)
            return 0
        report = verify.verify_dataset(args.name, args.data_dir)
        print(report)
        return 0 if report.ok else 1
    except (registry.DatasetMissingError, fetch.FetchError) as e:
        print(f"error: {e}")
        return 1


def _disk_size(folder: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)


def listing(data_dir: Path | None = None) -> str:
    """A table of every registered dataset and whether it is here."""
    from tabulate import tabulate

    data_dir = Path(data_dir).expanduser().resolve() if data_dir else settings.data_dir()
    rows = []
    for ds in registry.REGISTRY.values():
        if not ds.sources:
            where, present, size = settings.cache_dir() / ds.folder, "built on use", ds.size
        else:
            where = data_dir / ds.folder
            present = "yes" if ds.present(where) else "no"
            size = f"{_disk_size(where) / 1e6:.0f} MB" if present == "yes" else f"({ds.size})"
        rows.append([ds.name, present, where, ", ".join(ds.splits) or "-", size, ds.terms])
    table = tabulate(rows, headers=["dataset", "present", "where", "splits", "size", "terms"])
    return f"data directory: {data_dir} (COLORLAB_DATA)\n{table}\nget one with `colorlab data fetch NAME`"
