"""The three descriptions of the environment agree, nothing happens on import, and records name their commit."""

import re
import subprocess
import sys
import tomllib

from colorlab import machine, settings

ROOT = settings.REPO_ROOT


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        m = re.match(r"^\s*(?:-\s+)?([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_pyproject_environment_yml_and_lock_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = _pins(project["dependencies"] + [d for ds in project["optional-dependencies"].values() for d in ds])
    conda = _pins((ROOT / "environment.yml").read_text().splitlines())
    lock = _pins((ROOT / "requirements.lock").read_text().splitlines())
    assert direct == {k: v for k, v in conda.items() if k in direct} and set(direct) <= set(conda)
    for name, version in direct.items():
        assert lock.get(name) == version, f"{name}: pyproject pins {version}, requirements.lock has {lock.get(name)}"
    assert direct["torch"] == "2.13.0"
    assert "torchvision" not in lock and "torchvision" not in conda


def test_import_has_no_side_effects():
    code = (
        "import random, torch, numpy as np; s = torch.initial_seed(); st = random.getstate();"
        "import colorlab, colorlab.color, colorlab.settings, colorlab.models, colorlab.profiles, colorlab.reports;"
        "assert torch.initial_seed() == s and random.getstate() == st; import sys;"
        "assert 'torchvision' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "colorlab", "--help"], check=True, capture_output=True, text=True).stdout
    for command in ("data", "evaluate", "colorize", "train", "runs", "bench", "reproduce"):
        assert command in out


def test_a_records_commit_is_dirty_for_code_changes_not_for_other_records(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    for name in ("code.py", "results/record.json"):
        (tmp_path / name).write_text("1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "x")
    clean = machine.commit(tmp_path)
    assert len(clean) == 12 and not clean.endswith("+dirty")
    (tmp_path / "results" / "record.json").write_text("2\n")  # a record written by the study: still clean
    assert machine.commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("2\n")
    assert machine.commit(tmp_path) == clean + "+dirty"
