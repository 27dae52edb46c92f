"""Every registered paper offers the network and experiment protocols, and the layers point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from colorlab import experiments, keys, models, protocol

LIB = Path(keys.__file__).resolve().parent


@pytest.mark.parametrize("name", sorted(models.MODULES))
def test_every_model_module_follows_the_protocol(name):
    module = models.get(name)
    assert isinstance(module, protocol.ModelModule), name
    assert {"paper", "cpu", "smoke"} <= set(module.PRESETS)
    net = module.build(module.PRESETS["smoke"])
    assert isinstance(net, protocol.Colorizer)


@pytest.mark.parametrize("name", sorted(experiments.MODULES))
def test_every_experiment_module_follows_the_protocol(name):
    exp = experiments.module(name)
    assert isinstance(exp, protocol.ExperimentModule), name
    assert {"paper", "cpu", "smoke"} <= set(exp.TRAIN)
    assert name in models.MODULES  # one network module per experiment


UPPER = {"colorlab.train", "colorlab.batches", "colorlab.runs", "colorlab.experiments", "colorlab.study",
         "colorlab.cli", "colorlab.commands", "colorlab.claims", "colorlab.bench", "colorlab.playground",
         "colorlab.budget", "colorlab.training_speed", "colorlab.readout"}


def _under(name: str, layer: str) -> bool:
    return name == layer or name.startswith(layer + ".")


def test_networks_import_nothing_above_them():
    for name in keys.closure([f"colorlab.models.{m}" for m in models.MODULES]):
        assert not any(_under(name, u) for u in UPPER), f"a network imports {name}"


def test_the_loop_imports_neither_the_store_nor_the_experiments():
    closure = keys.closure(["colorlab.train"])
    assert not any(_under(n, u) for n in closure for u in UPPER - {"colorlab.train", "colorlab.batches"}), closure


def test_no_import_cycles():
    mods, graph = keys._graph(LIB)
    state: dict[str, int] = {}

    def visit(name, path):
        state[name] = 1
        for dep in graph[name]:
            if dep == name or (name.startswith(dep + ".") and (mods[dep].name == "__init__.py")):
                continue  # a module inside a package, importing its package's __init__
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_modules_stay_small():
    sizes = {str(p.relative_to(LIB)): len(p.read_text().splitlines()) for p in LIB.rglob("*.py")}
    assert {k: v for k, v in sizes.items() if v > 450} == {}
    for name in models.MODULES:
        if name != "mobilenet_v2":
            assert sizes[f"models/{name}.py"] <= 300, name
