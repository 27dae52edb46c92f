"""Shipped weights: built through the run store, carded, listed in a checksum manifest, verified on load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorlab import cli, images, settings, weights
from colorlab.errors import ColorlabError, CorruptFileError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    monkeypatch.setenv("COLORLAB_WEIGHTS", str(folder))
    return folder


def build(*models):
    args = ["weights", "build", "--profile", "smoke"] + [a for m in models for a in ("--model", m)]
    assert cli.main(args) == 0


def test_build_writes_file_card_and_manifest(shipped, capsys):
    build("iizuka2016")
    path = shipped / weights.SHIPPED["iizuka2016"]
    assert path.exists() and "wrote" in capsys.readouterr().out
    assert weights.read_manifest(shipped) == {path.name: weights.sha256(path)}
    card = path.with_suffix(".md").read_text()
    for needle in ("colorlab train --model iizuka2016 --profile smoke", "run key", "gray", "psnr", "SHA-256", "cores"):
        assert needle in card
    model, meta = weights.load_shipped("iizuka2016")
    assert meta["model_name"] == "iizuka2016" and model.colorize(torch.rand(1, 1, 20, 24)).shape == (1, 3, 20, 24)
    assert cli.main(["weights", "verify"]) == 0


def test_a_damaged_or_unlisted_file_is_a_clear_error(shipped, capsys):
    build("iizuka2016")
    path = shipped / weights.SHIPPED["iizuka2016"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="SHA-256 differs"):
        weights.load_shipped("iizuka2016")
    assert cli.main(["weights", "verify"]) == 2
    assert "SHA-256 differs" in capsys.readouterr().err
    (shipped / weights.MANIFEST).write_text("")
    with pytest.raises(CorruptFileError, match="not listed"):
        weights.shipped_path("iizuka2016")


def test_colorize_without_weights_uses_the_shipped_default(shipped, tmp_path, capsys):
    build("iizuka2016")
    photo = tmp_path / "photo.jpg"
    images.write_image(photo, (np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8))
    assert cli.main(["colorize", str(photo), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "using the shipped model" in out and weights.SHIPPED["iizuka2016"] in out
    assert images.read_rgb(tmp_path / "out" / "photo.png").shape == (30, 40, 3)
    # a paper whose file is not there: one line naming it and the command that makes it
    assert cli.main(["colorize", "--model", "cheng2015", str(photo), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cheng2015-cpu.safetensors" in err and "make weights" in err


@pytest.mark.slow
def test_cheng_file_is_self_contained(shipped, tmp_path, monkeypatch):
    """Its scene parser is inside: it colourises with an empty run store and cache."""
    build("cheng2015")
    monkeypatch.setenv("COLORLAB_RUNS", str(tmp_path / "empty-runs"))
    monkeypatch.setenv("COLORLAB_CACHE", str(tmp_path / "empty-cache"))
    model, meta = weights.load_shipped("cheng2015")
    assert meta["model_name"] == "cheng2015" and not settings.runs_dir().exists()
    assert model.colorize(torch.rand(1, 1, 24, 32)).shape == (1, 3, 24, 32)


def test_the_committed_weights_match_their_manifest():
    """What the repository ships (when it ships any) is what its manifest says."""
    folder = settings.REPO_ROOT / "weights"
    listed = weights.read_manifest(folder)
    for name, digest in listed.items():
        assert weights.sha256(folder / name) == digest, name
    if (folder / weights.MANIFEST).exists():
        assert set(listed) == {f.name for f in folder.glob("*.safetensors")}
    with pytest.raises(ColorlabError):
        weights.shipped_path("no-such-model", folder)
