"""`colorlab colorize`: weights from checkpoints / exports / runs, any size, bad files skipped, atomic outputs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from colorlab import cli, color, images
from colorlab import colorize as cz
from colorlab.models import iizuka2016 as iz

CFG = replace(iz.PRESETS["smoke"], width=0.125)


class Payload:
    """An arbitrary pickled object: `weights_only=True` refuses to rebuild it."""


def _photo(h, w, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(30, 220, size=(max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    return images.resize(small, h, w)


@pytest.fixture
def trained(tmp_path) -> tuple[iz.Iizuka2016, Path]:
    """A smoke net with non-trivial BN statistics, saved as final.pt is by colorlab.train."""
    torch.manual_seed(0)
    net = iz.build(CFG)
    with torch.no_grad():
        net.train()(torch.rand(6, 1, 32, 32))
    net.eval()
    path = tmp_path / "final.pt"
    torch.save({"model": net.state_dict(), "config": asdict(CFG), "model_name": "iizuka2016", "step": 5}, path)
    return net, path


@pytest.fixture
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    images.write_image(root / "a.png", _photo(37, 53))
    images.write_image(root / "sub" / "b.jpg", _photo(64, 40, seed=1))
    images.write_image(root / "gray.png", _photo(20, 30, seed=2)[..., 0])  # a grayscale file
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    return root


def test_cli_end_to_end_skips_bad_files_and_keeps_old_outputs(trained, photos, tmp_path, capsys):
    _, ckpt = trained
    out = tmp_path / "out"
    out.mkdir()
    (out / "broken.png").write_bytes(b"an older result that must survive")
    images.write_image(out / "a.png", np.zeros((4, 4, 3), np.uint8))  # replaced, whole
    code = cli.main(["colorize", "--model", "iizuka2016", "--checkpoint", str(ckpt), str(photos),
                     "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "skipped 1" in err and "broken.jpg" in err
    assert (out / "broken.png").read_bytes() == b"an older result that must survive"
    for rel, (h, w) in {"a.png": (37, 53), "sub/b.png": (64, 40), "gray.png": (20, 30)}.items():
        assert images.read_rgb(out / rel).shape == (h, w, 3), rel
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left


def test_clean_run_exits_zero_and_output_keeps_lightness(trained, photos, tmp_path):
    net, ckpt = trained
    (photos / "broken.jpg").unlink()
    out = tmp_path / "out"
    assert cli.main(["colorize", "--checkpoint", str(ckpt), str(photos / "a.png"), "--out", str(out), "--quiet"]) == 0
    result = images.read_rgb(out / "a.png")
    truth = _photo(37, 53)
    L_truth = color.rgb_to_lab(color.to_float(truth))[:, :1]
    L_out = color.rgb_to_lab(color.to_float(result))[:, :1]
    assert float((L_out - L_truth).abs().mean()) < 0.5  # only 8-bit rounding between them
    direct = cz.colorize_array(iz.fold_batchnorm(net), truth)
    assert np.abs(direct.astype(int) - result.astype(int)).max() <= 1


def test_refuses_without_weights_unless_random(photos, tmp_path, capsys, monkeypatch):
    """No --run, no --checkpoint and no shipped file: a one-line refusal that says what to pass."""
    monkeypatch.setenv("COLORLAB_WEIGHTS", str(tmp_path / "no-shipped-weights"))
    out = tmp_path / "out"
    assert cli.main(["colorize", "--model", "iizuka2016", str(photos / "a.png"), "--out", str(out)]) == 2
    assert "--checkpoint" in capsys.readouterr().err and not out.exists()
    code = cli.main(["colorize", "--model", "iizuka2016", "--random-weights", "--profile", "smoke",
                     str(photos / "a.png"), "--out", str(out), "--quiet"])
    assert code == 0 and "UNTRAINED" in capsys.readouterr().err.upper()
    assert (out / "a.png").exists()


def test_checkpoints_load_with_weights_only(trained, tmp_path):
    net, ckpt = trained
    model = cz.load_model("iizuka2016", checkpoint=ckpt)
    assert not model.training and model.cfg == CFG
    gray = torch.rand(1, 1, 24, 40)
    assert (model.colorize(gray) - net.colorize(gray)).abs().max() < 1e-4  # folded BN, same outputs

    resumable = tmp_path / "checkpoint.pt"  # colorlab.train's checkpoint keeps the name under "meta"
    torch.save({"model": net.state_dict(), "config": asdict(CFG), "meta": {"model_name": "iizuka2016"}, "step": 3}, resumable)
    assert cz.load_model(None, checkpoint=resumable).cfg == CFG
    evil = tmp_path / "evil.pt"
    torch.save({"model": net.state_dict(), "config": asdict(CFG), "model_name": "iizuka2016", "x": Payload()}, evil)
    with pytest.raises(cz.ModelLoadError, match="evil.pt"):
        cz.load_model("iizuka2016", checkpoint=evil)
    with pytest.raises(cz.ModelLoadError, match="not koalarization2017"):
        cz.load_model("koalarization2017", checkpoint=ckpt)
    with pytest.raises(cz.ModelLoadError, match="no such"):
        cz.load_model("iizuka2016", checkpoint=tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"model": net.state_dict(), "config": asdict(replace(CFG, width=0.25)), "model_name": "iizuka2016"}, bad)
    with pytest.raises(cz.ModelLoadError, match="do not fit"):
        cz.load_model(None, checkpoint=bad)


def test_safetensors_export_loads(trained, tmp_path):
    net, _ = trained
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path),
              metadata={"model_name": "iizuka2016", "config": json.dumps(asdict(CFG))})
    model = cz.load_model(None, checkpoint=path)
    gray = torch.rand(1, 1, 16, 16)
    assert (model.colorize(gray) - net.colorize(gray)).abs().max() < 1e-4


def test_run_key_loads_a_finished_run(trained, tmp_path, monkeypatch, photos):
    _, ckpt = trained
    runs_root = Path(tmp_path / "runs")
    monkeypatch.setenv("COLORLAB_RUNS", str(runs_root))
    key = "abcdef" + "0" * 58
    folder = runs_root / "iizuka2016" / key[:12]
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"key": key, "model_name": "iizuka2016", "model_config": asdict(CFG),
                                                    "train_config": {}}))
    (folder / "final.pt").write_bytes(ckpt.read_bytes())
    (folder / "done").write_text(json.dumps({"final_sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest()}))
    model = cz.load_model("iizuka2016", run="abcdef")
    assert model.cfg == CFG
    with pytest.raises(cz.ModelLoadError, match="no runs"):
        cz.load_model("iizuka2016", run="123456")
    out = tmp_path / "out"
    assert cli.main(["colorize", "--run", "abcdef", str(photos / "a.png"), "--out", str(out), "--quiet"]) == 0


def test_size_and_global_from(trained, tmp_path):
    net, _ = trained
    model = iz.fold_batchnorm(net)
    photo = _photo(90, 60)
    small = cz.colorize_array(model, photo, size=32)
    assert small.shape == (90, 60, 3)
    L = [color.rgb_to_lab(color.to_float(x))[:, :1] for x in (photo, small)]
    assert float((L[0] - L[1]).abs().mean()) < 0.5  # full-resolution lightness kept
    styled = cz.colorize_array(model, photo, global_from=_photo(50, 50, seed=9))
    assert styled.shape == (90, 60, 3)

    class NoGlobal(torch.nn.Module):
        def colorize(self, gray):
            return gray.expand(-1, 3, -1, -1)

    with pytest.raises(ValueError, match="global"):
        cz.colorize_array(NoGlobal(), photo, global_from=photo)
    assert (cz.colorize_array(NoGlobal(), photo[..., 0]) == cz.colorize_array(NoGlobal(), photo[..., :1])).all()


def test_plan_names_outputs_and_avoids_collisions(photos, tmp_path):
    out = photos / "colorized"  # inside the input folder: its own outputs are not inputs
    images.write_image(out / "old.png", _photo(8, 8))
    other = tmp_path / "other"
    other.mkdir()
    images.write_image(other / "a.jpg", _photo(8, 8))
    pairs, problems = cz.plan([photos, other / "a.jpg", tmp_path / "nope"], out)
    rels = sorted(dst.relative_to(out.resolve()).as_posix() for _, dst in pairs)
    assert rels == ["a.png", "broken.png", "gray.png", "sub/b.png"]
    reasons = {Path(p).name: why for p, why in problems}
    assert "already" in reasons["a.jpg"] and "no such" in reasons["nope"]


def test_gain_makes_the_colours_more_vivid_and_refuses_nonsense(trained, photos, tmp_path, capsys):
    _, ckpt = trained
    src = str(photos / "a.png")
    for gain, folder in ((1.0, "own"), (2.0, "vivid")):
        assert cli.main(["colorize", "--checkpoint", str(ckpt), src, "--out", str(tmp_path / folder), "--quiet",
                         "--gain", str(gain)]) == 0
    chroma = {f: color.rgb_to_lab(color.to_float(images.read_rgb(tmp_path / f / "a.png")))[:, 1:].norm(dim=1).mean().item()
              for f in ("own", "vivid")}
    assert chroma["vivid"] > 1.5 * chroma["own"]
    capsys.readouterr()
    assert cli.main(["colorize", "--checkpoint", str(ckpt), src, "--out", str(tmp_path / "bad"), "--gain", "-1"]) == 2
    assert "--gain" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    styled = tmp_path / "styled"  # with Iizuka's style transfer, and at a working size
    assert cli.main(["colorize", "--checkpoint", str(ckpt), src, "--out", str(styled), "--quiet", "--gain", "1.5",
                     "--global-from", str(photos / "sub" / "b.jpg"), "--size", "24"]) == 0
    assert images.read_rgb(styled / "a.png").shape == (37, 53, 3)
