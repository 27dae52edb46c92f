"""`colorlab` command line: one sub-command per module that owns the logic.

Each command module exposes `add_arguments(parser)` and `run(args) -> int`;
it is imported only when its command is used, so `colorlab --help` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("colorlab.data.commands", "list, fetch and verify datasets"),
    "evaluate": ("colorlab.evaluation", "score colourized images against ground truth"),
    "colorize": ("colorlab.colorize", "colourize images or folders with a trained model"),
    "train": ("colorlab.train", "train a model (single process or torchrun)"),
    "runs": ("colorlab.runs", "list trained runs and export one to a weights file"),
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
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
