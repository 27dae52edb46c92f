"""The notebook runner behind `make reproduce`.

Runs `notebooks/NN_*.ipynb` in numeric order through papermill, passing the
profile to each notebook's `parameters` cell. Executed copies go to
`results/executed/`, and a budget record to `results/json/reproduce_<profile>.json` (from empty
caches; `reproduce_<profile>_cached.json` for a whole run over filled ones)
(machine, commit, empty caches or not, seconds per notebook); the
notebooks themselves write their tables and figures through
`colorlab.reports`. A failing notebook stops the run with a non-zero exit
that names the notebook and the cell.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from colorlab import profiles, reports, settings

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_[\w-]+\.ipynb$")


def notebooks_dir() -> Path:
    return settings.REPO_ROOT / "notebooks"


def discover(folder: Path | None = None, only: list[str] | None = None) -> list[Path]:
    """Numbered notebooks in order; `only` keeps those whose number or name matches."""
    folder = folder or notebooks_dir()
    found = sorted(p for p in folder.iterdir() if NOTEBOOK_PATTERN.match(p.name))
    if only:
        found = [p for p in found if any(p.name.startswith(o) or p.stem == o for o in only)]
    return found


class NotebookFailed(RuntimeError):
    """A notebook raised: names the notebook, the cell and the error."""


@dataclass
class Outcome:
    notebook: str
    seconds: float
    executed: str


def source_cell(path: Path, executed_index: int) -> int:
    """1-based number, in the notebook as written, of a cell of its executed copy.

    papermill inserts an `injected-parameters` cell after the `parameters` cell, which
    shifts every later cell by one in the executed copy.
    """
    cells = json.loads(path.read_text())["cells"]
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    shift = 1 if tagged and executed_index > tagged[0] else 0
    return executed_index - shift + 1


def run_one(path: Path, profile: str, out_dir: Path, parameters: dict | None = None, timeout: int | None = None) -> Outcome:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / path.name
    params = {"PROFILE": profile, **(parameters or {})}
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(path),
            str(executed),
            parameters=params,
            kernel_name="python3",
            cwd=str(path.parent),
            progress_bar=False,
            execution_timeout=timeout,
        )
    except PapermillExecutionError as err:
        raise NotebookFailed(
            f"{path.name}: cell {source_cell(path, err.cell_index)} (execution count {err.exec_count}) raised "
            f"{err.ename}: {err.evalue}\n  executed copy with the traceback: {executed}"
        ) from None
    return Outcome(path.name, time.perf_counter() - start, str(executed))


def results_root(profile: str) -> Path:
    """Where a profile's tables and figures go: results/ for the cpu study the README shows,
    results/<profile>/ for every other profile, so a smoke or gpu run never overwrites it.
    An explicit COLORLAB_RESULTS wins."""
    if os.environ.get("COLORLAB_RESULTS") or profile == profiles.DEFAULT_PROFILE:
        return settings.results_dir()
    return settings.results_dir() / profile


def _finished_runs() -> int:
    root = settings.runs_dir()
    return sum(1 for _ in root.glob("*/*/done")) if root.exists() else 0


def _caches_empty() -> bool:
    """No finished run and nothing else derived (decoded photos, embeddings, scores) in the cache folder."""
    cache = settings.cache_dir()
    others = [p for p in cache.iterdir() if p != settings.runs_dir()] if cache.is_dir() else []
    return _finished_runs() == 0 and not others


def reproduce(profile: str, only: list[str] | None = None, parameters: dict | None = None, timeout: int | None = None) -> list[Outcome]:
    """Run the notebooks at `profile` into `results_root(profile)`; write a budget record beside the tables:
    the machine (CPU model, ISA), the commit, whether the run store was empty, and each notebook's seconds."""
    profiles.check(profile)
    root = results_root(profile)
    before = os.environ.get("COLORLAB_RESULTS")
    os.environ["COLORLAB_RESULTS"] = str(root)  # the notebooks' kernels inherit it
    try:
        return _reproduce(profile, root, only, parameters, timeout)
    finally:
        if before is None:
            os.environ.pop("COLORLAB_RESULTS", None)
        else:
            os.environ["COLORLAB_RESULTS"] = before


def _reproduce(profile: str, root: Path, only, parameters, timeout) -> list[Outcome]:
    from colorlab import machine

    out_dir = root / "executed"
    started = {"commit": machine.commit(), "machine": machine.describe(), "finished_runs_before": _finished_runs(),
               "caches_empty": _caches_empty(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    chosen = discover(only=only)
    if not chosen:
        from colorlab.errors import ColorlabError

        raise ColorlabError(f"no notebook matches --only {' '.join(only or [])}", path=notebooks_dir(),
                            fix="colorlab reproduce --only 02 06  (numbers or names of notebooks/NN_*.ipynb)")
    outcomes = []
    for nb in chosen:
        print(f"[reproduce] {nb.name} (PROFILE={profile}) ...", flush=True)
        outcome = run_one(nb, profile, out_dir, parameters, timeout)
        print(f"[reproduce] {nb.name} done in {outcome.seconds:.1f} s", flush=True)
        outcomes.append(outcome)
    record = {
        "profile": profile, **started, "only": only, "notebooks": [{**o.__dict__, "executed": _relative(o.executed)} for o in outcomes],
        "total_seconds": sum(o.seconds for o in outcomes),
    }
    # a partial run keeps its own record, and so does a whole run over filled caches (`_cached`), so the
    # budget from empty caches is not overwritten by a part of the study or by a second run
    part = "_only_" + "-".join(nb.name[:2] for nb in chosen) if only else "" if started["caches_empty"] else "_cached"
    reports.save_json(record, f"reproduce_{profile}{part}", root=root)
    if Path(root).resolve() == (settings.REPO_ROOT / "results").resolve():
        from colorlab import readme

        changed = readme.update(tables=Path(root) / "tables")
        print(f"[reproduce] README tables rewritten from results/tables: {', '.join(changed) or 'none changed'}")
    return outcomes


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(settings.REPO_ROOT))
    except ValueError:
        return str(path)


def has_outputs(path: Path) -> bool:
    nb = json.loads(path.read_text())
    return any(c.get("outputs") or c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code")


def _literal(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=profiles.DEFAULT_PROFILE, choices=profiles.PROFILES)
    parser.add_argument("--only", nargs="*", help="notebook numbers or names to run (default: all)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="extra parameter for every notebook (JSON literal or string)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")


def run(args: argparse.Namespace) -> int:
    extra = dict(kv.split("=", 1) for kv in args.param)
    try:
        outcomes = reproduce(args.profile, args.only, {k: _literal(v) for k, v in extra.items()}, args.timeout)
    except NotebookFailed as err:
        print(f"[reproduce] FAILED {err}", file=sys.stderr)
        return 1
    total = sum(o.seconds for o in outcomes)
    print(f"[reproduce] {len(outcomes)} notebooks in {total / 60:.1f} min; results in {results_root(args.profile)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m colorlab.notebooks --check-clean NB...`: fail when a notebook carries outputs."""
    parser = argparse.ArgumentParser(prog="python -m colorlab.notebooks")
    parser.add_argument("--check-clean", nargs="*", type=Path, required=True)
    args = parser.parse_args(argv)
    dirty = [p for p in args.check_clean if has_outputs(p)]
    for p in dirty:
        print(f"{p}: has outputs committed; clear them (results come from `make reproduce`)", file=sys.stderr)
    return 1 if dirty else 0


if __name__ == "__main__":
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    raise SystemExit(main())
