"""The README's embedded tables, written from `results/tables/` so they never drift from the measurement.

A table in README.md sits between two markers; the opening one names the table and, optionally, which
columns and rows to show and how to print floats:

    <!-- table 09_targets -->
    ...whatever was written last time...
    <!-- /table -->

    <!-- table 09_budget_curve columns=model,recipe,steps,psnr_vs_gray where=dataset=miniplaces fmt=.2f -->

`fill` rewrites every marked table from `results/tables/<name>.csv`; `stale` lists the ones whose text
differs. A cpu `make reproduce` into `results/` calls `update` on the README at its end, and a test
fails when a committed README disagrees with the committed tables. The prose around the tables is
written by hand.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from colorlab import atomic, reports, settings
from colorlab.errors import ColorlabError

MARKER = re.compile(r"(<!-- table (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)
OPTIONS = ("columns", "where", "fmt")


def readme_path() -> Path:
    return settings.REPO_ROOT / "README.md"


def parse(spec: str, where: Path) -> tuple[str, dict[str, str]]:
    """`"NAME key=value ..."` -> (NAME, options); unknown options are an error naming the README."""
    name, *rest = spec.split()
    options = {}
    for item in rest:
        key, sep, value = item.partition("=")
        if not sep or key not in OPTIONS:
            raise ColorlabError(f"table {name}: option {item!r} is not one of {', '.join(o + '=' for o in OPTIONS)}",
                                path=where)
        options[key] = value
    return name, options


def render(spec: str, tables: Path, where: Path) -> str:
    """The Markdown of one marked table, from its CSV under `tables`."""
    import pandas as pd

    name, options = parse(spec, where)
    csv = tables / f"{name}.csv"
    if not csv.is_file():
        raise ColorlabError(f"the README embeds table {name}, which {tables} does not hold", path=where,
                            fix="make reproduce (or remove the marker)")
    df = pd.read_csv(csv)
    for condition in filter(None, options.get("where", "").split(";")):
        column, _, value = condition.partition("=")
        if column not in df.columns:
            raise ColorlabError(f"table {name}: where= names column {column!r}, which it lacks", path=csv)
        df = df[df[column].astype(str) == value]
    if "columns" in options:
        wanted = options["columns"].split(",")
        missing = [c for c in wanted if c not in df.columns]
        if missing:
            raise ColorlabError(f"table {name}: columns= names {', '.join(missing)}, which it lacks", path=csv)
        df = df[wanted]
    return df.to_markdown(index=False, floatfmt=options.get("fmt", ".3f")) + "\n"


def _rewritten(text: str, tables: Path, where: Path) -> tuple[str, list[str]]:
    """`text` with every marked table rendered from `tables` (each once), and the names whose text changed."""
    changed = []

    def one(m: re.Match) -> str:
        body = render(m.group("spec"), tables, where)
        if body != m.group("body"):
            changed.append(parse(m.group("spec"), where)[0])
        return m.group(1) + body + m.group(4)

    return MARKER.sub(one, text), changed


def fill(text: str, tables: Path, where: Path) -> str:
    """`text` with every marked table rewritten from `tables`."""
    return _rewritten(text, tables, where)[0]


def stale(readme: Path | None = None, tables: Path | None = None) -> list[str]:
    """The names of the README's marked tables whose text differs from what `tables` gives."""
    readme = readme or readme_path()
    return _rewritten(readme.read_text(), tables or reports.out_dir("tables"), readme)[1]


def update(readme: Path | None = None, tables: Path | None = None) -> list[str]:
    """Rewrite the README's marked tables in place (atomically); returns the names that changed."""
    readme = readme or readme_path()
    text, changed = _rewritten(readme.read_text(), tables or reports.out_dir("tables"), readme)
    if changed:
        atomic.write_text(readme, text)
    return changed


def main(argv: list[str] | None = None) -> int:
    """`python -m colorlab.readme [--check]`: rewrite the README's tables, or fail when one is stale."""
    parser = argparse.ArgumentParser(prog="python -m colorlab.readme", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="only list stale tables; exit 1 if any")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        print("stale README tables: " + ", ".join(names) if names else "README tables match results/tables")
        return 1 if names else 0
    names = update()
    print(f"rewrote {len(names)} README table(s): {', '.join(names)}" if names else "README tables already match")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
