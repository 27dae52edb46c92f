"""`colorlab` command line: one sub-command per module that owns the logic.

Each command module exposes `add_arguments(parser)` and `run(args) -> int`;
it is imported only when its command is used, so `colorlab --help` is fast.
Expected failures (`colorlab.errors.ColorlabError`: a missing or damaged file,
a bad option) end as one line on stderr naming the file, the problem and the
command that mends it, with exit status 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("colorlab.data.commands", "list, fetch and verify datasets"),
    "evaluate": ("colorlab.evaluation", "score colourized images against ground truth"),
    "colorize": ("colorlab.colorize", "colourize images or folders with a trained model"),
    "train": ("colorlab.commands.train", "train a model, or load its finished run (single process or torchrun)"),
    "compare": ("colorlab.commands.compare", "train two configurations at the same seeds and score them paired by seed"),
    "readouts": ("colorlab.commands.readouts", "read one configuration's runs out with chroma gains, paired by seed"),
    "runs": ("colorlab.commands.runs", "list trained runs and export one to a weights file"),
    "weights": ("colorlab.commands.weights", "build, verify and list the shipped trained models"),
    "bench": ("colorlab.bench", "time inference and training, write results/bench.json"),
    "reproduce": ("colorlab.notebooks", "run the numbered notebooks through papermill"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="colorlab", description="colorlab: automatic image colorization study")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if argv[:1] == [name]:
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    from colorlab.data.registry import DatasetMissingError
    from colorlab.errors import ColorlabError

    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except (ColorlabError, DatasetMissingError) as err:  # both name the file and the command that mends it
        print(f"colorlab {args.command}: {err.line() if isinstance(err, ColorlabError) else err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
