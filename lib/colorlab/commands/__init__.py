"""`colorlab` sub-commands whose logic spans layers (the CLI layer); each has `add_arguments` and `run`."""
