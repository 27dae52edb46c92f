"""Notebook 07's library: the gallery works offline, methods are listed (baselines, runs, handed-out
files), a handed-out file gives the same pixels as its run and as `colorlab colorize --checkpoint`,
comparisons have the right rows, bad uploads give clear errors, and style transfer keeps the lightness."""

from __future__ import annotations

import datetime
import io
import json
import types
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from colorlab import baselines, cli, color, images, models, playground, playground_ui, runs, weights
from colorlab import experiments

SMOKE_PHOTOS = {"astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
                "china", "flower"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A few steps of the smoke Iizuka net, in a private cache, exported as a teacher would hand it out."""
    root = tmp_path_factory.mktemp("playground")
    env = {"COLORLAB_CACHE": str(root / "cache"), "COLORLAB_RUNS": str(root / "runs")}
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        torch.set_num_threads(1)
        try:
            run = experiments.get("iizuka2016", "smoke", progress=False, steps=6, eval_every=6, ckpt_every=6)
        finally:
            torch.set_num_threads(threads)
        handout = root / "handout"
        exported = weights.export(run, handout / "iizuka-smoke.safetensors")
    return types.SimpleNamespace(env=env, run=run, name=playground.method_name(run), handout=handout, file=exported)


@pytest.fixture
def use_runs(trained, monkeypatch):
    for k, v in trained.env.items():
        monkeypatch.setenv(k, v)
    return trained


def _photo(name: str = "chelsea", side: int = 64) -> np.ndarray:
    return playground.gallery(max_side=side, kodak=False)[name]


def _png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _upload(name: str, content: bytes) -> dict:
    """One entry of an ipywidgets 8 FileUpload value."""
    return {"name": name, "type": "", "size": len(content), "content": memoryview(content),
            "last_modified": datetime.datetime.now(datetime.timezone.utc)}


# --- photos ------------------------------------------------------------------------------
def test_gallery_is_offline_and_shrinks(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path / "no-data"))  # no Kodak24, no network
    photos = playground.gallery()
    assert set(photos) == SMOKE_PHOTOS
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 for p in photos.values())
    small = playground.gallery(max_side=40)
    assert all(max(p.shape[:2]) == 40 for p in small.values())
    assert not images.is_grayscale(photos["astronaut"])


@pytest.mark.data
def test_gallery_adds_kodak_when_present(mirror):
    mirror("kodak24")
    photos = playground.gallery(max_side=128)
    kodak = [n for n in photos if n.startswith("kodim")]
    assert len(kodak) == 24 and SMOKE_PHOTOS <= set(photos)
    assert {max(photos[n].shape[:2]) for n in kodak} == {128}  # 768 x 512 originals, shrunk


def test_pick_photos_names_the_choices():
    photos = {"a": np.zeros((4, 4, 3), np.uint8)}
    with pytest.raises(KeyError, match="'nope'.*choose among \\['a'\\]"):
        playground.pick_photos(photos, ["a", "nope"])


# --- uploads --------------------------------------------------------------------------------
def test_bad_upload_bytes_give_a_clear_error():
    with pytest.raises(images.ImageReadError) as err:
        playground.read_upload((_upload("holiday.jpg", b"this is not a jpeg"),))
    assert str(err.value).startswith("holiday.jpg: ")  # the student's file, not our temporary copy
    assert "not an image" in err.value.problem
    truncated = _png_bytes(_photo())[:200]
    with pytest.raises(images.ImageReadError, match="cat.png"):
        playground.read_upload((_upload("cat.png", truncated),))
    with pytest.raises(ValueError, match="no file uploaded"):
        playground.read_upload(())


def test_good_upload_reads_in_both_widget_formats():
    rgb = _photo()
    assert np.array_equal(playground.read_upload((_upload("cat.png", _png_bytes(rgb)),)), rgb)
    v7 = {"cat.png": {"metadata": {"name": "cat.png"}, "content": _png_bytes(rgb)}}  # ipywidgets 7
    assert np.array_equal(playground.read_upload(v7, max_side=32), images.resize(rgb, 32, 32))


def test_add_uploads_keeps_the_good_files_and_reports_the_bad():
    photos = {}
    added, errors = playground.add_uploads(photos, (_upload("bad.jpg", b"\x00" * 10), _upload("ok.png", _png_bytes(_photo()))))
    assert added == ["ok.png"] and list(photos) == ["ok.png"]
    assert len(errors) == 1 and errors[0].startswith("bad.jpg:")


# --- methods and handed-out files -------------------------------------------------------
def test_methods_list_baselines_runs_and_exported_files(use_runs):
    junk = use_runs.handout / "junk.safetensors"
    junk.write_bytes(b"not safetensors at all")
    try:
        with pytest.warns(UserWarning, match="junk.safetensors: skipped"):
            methods = playground.available_methods(use_runs.handout)
    finally:
        junk.unlink()
    assert list(methods)[:2] == ["gray", "mean-ab"]
    assert methods[use_runs.name].kind == "run" and methods[use_runs.name].source == use_runs.run.key
    exported = methods["iizuka-smoke.safetensors"]
    assert exported.kind == "file" and exported.model_name == "iizuka2016" and use_runs.run.key[:12] in exported.about
    table = playground.methods_table(methods)
    assert table["method"].tolist() == list(methods) and set(table["kind"]) == {"baseline", "run", "file"}
    picked = playground.default_selection(methods, "smoke")
    assert picked == ["gray", "mean-ab", use_runs.name, "iizuka-smoke.safetensors"]
    assert playground.default_selection(methods, "cpu") == ["gray", "mean-ab", "iizuka-smoke.safetensors"]
    assert playground.default_selection(methods, "cpu", ("gray",)) == ["gray", "mean-ab", "iizuka-smoke.safetensors"]
    with pytest.raises(KeyError, match="no method named \\['iizuka2016 zzz'\\]"):
        playground.select(methods, ["gray", "iizuka2016 zzz"])


def test_mean_ab_falls_back_to_the_smoke_photos(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path / "no-data"))
    ab = playground.mean_ab("cpu")
    assert "miniplaces is not here" in capsys.readouterr().out
    assert ab == playground.mean_ab("smoke") and 0 < abs(ab[0]) + abs(ab[1]) < 60


def test_demo_run_trains_smoke_without_the_profile_data(monkeypatch, capsys):
    from colorlab import data

    calls = []

    def fake(model_name, profile, **kw):
        calls.append(profile)
        if profile == "cpu":
            raise data.DatasetMissingError("miniplaces", "/nowhere")
        return "smoke run"

    monkeypatch.setattr(experiments, "get", fake)
    assert playground.demo_run("cpu", seed=3) == "smoke run" and calls == ["cpu", "smoke"]
    assert "training the smoke preset instead" in capsys.readouterr().out
    calls.clear()
    with pytest.raises(data.DatasetMissingError):
        monkeypatch.setattr(experiments, "get", lambda *a, **k: fake("x", "cpu"))
        playground.demo_run("smoke")


def test_missing_weights_folder_is_named(tmp_path):
    with pytest.raises(NotADirectoryError, match="no-such-folder"):
        playground.available_methods(tmp_path / "no-such-folder")


def test_exported_file_gives_the_run_and_cli_pixels(use_runs, tmp_path):
    """Train once, export, hand out: the file colours a photo exactly as the run does, in the
    notebook and through `colorlab colorize --checkpoint`, without retraining."""
    rgb = _photo("astronaut", 72)
    methods = playground.available_methods(use_runs.handout)
    from_run = playground.colorize_photo(methods[use_runs.name].model, rgb)[0]
    from_file = playground.colorize_photo(methods["iizuka-smoke.safetensors"].model, rgb)[0]
    assert np.array_equal(from_run, from_file)
    unfolded = playground.colorize_photo(use_runs.run.model, rgb)[0]  # the trained net itself, BN not folded
    assert np.abs(unfolded.astype(int) - from_file).max() <= 1
    assert not images.is_grayscale(from_file)
    images.write_image(tmp_path / "in" / "astronaut.png", rgb)
    argv = ["colorize", "--checkpoint", str(use_runs.file), str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--quiet"]
    assert cli.main(argv) == 0
    assert np.array_equal(images.read_rgb(tmp_path / "out" / "astronaut.png"), from_file)
    assert [r.key for r in runs.find_runs("iizuka2016")] == [use_runs.run.key]


# --- comparing ------------------------------------------------------------------------------
class _Broken(torch.nn.Module):
    def colorize(self, gray):
        raise RuntimeError("weights went missing")


def test_compare_rows_metrics_and_figure(use_runs):
    methods = {"gray": baselines.GrayBaseline(), "mean-ab": baselines.MeanChromaBaseline((8.0, 12.0)),
               "iizuka": use_runs.run.model, "broken": _Broken()}
    photos = {"chelsea": _photo("chelsea", 48), "old print": np.repeat(_photo("coffee", 48)[..., :1], 3, axis=2)}
    fig, df = playground.compare_photos(methods, photos)
    assert df[["photo", "method"]].values.tolist() == [[p, m] for p in photos for m in methods]
    ok = df[(df.photo == "chelsea") & (df.method != "broken")].set_index("method")
    assert np.isfinite(ok[["psnr", "ssim", "auc", "colorfulness_ratio", "seconds"]].values).all()
    assert ok.loc["gray", "colorfulness"] == 0 and ok.loc["gray", "colorfulness_ratio"] == 0
    assert ok.loc["mean-ab", "colorfulness"] > 0 and (ok["note"] == "").all()
    broken = df[df.method == "broken"]
    assert broken["note"].str.contains("RuntimeError: weights went missing").all() and broken["psnr"].isna().all()
    gray_photo = df[(df.photo == "old print") & (df.method != "broken")]  # no colour original: no scores
    assert gray_photo["auc"].isna().all() and gray_photo["colorfulness"].notna().all()
    axes = np.array(fig.axes).reshape(2, 6)
    assert [a.get_title() for a in axes[0]] == ["gray input", *methods, "ground truth"]
    assert axes[0, 1].get_xlabel().startswith("PSNR") and "no colour original" in axes[1, 5].get_xlabel()
    assert axes[1, 0].get_ylabel() == "old print"
    fig1, one = playground.compare({"gray": methods["gray"]}, photos["chelsea"], "cat")
    assert one[["photo", "method"]].values.tolist() == [["cat", "gray"]]


def test_style_transfer_keeps_lightness(use_runs):
    model = use_runs.run.model
    rgb, style = _photo("chelsea", 64), _photo("flower", 64)
    out = playground.restyle(model, rgb, style)

    def L(x):
        return color.rgb_to_lab(color.to_float(x).double())[:, 0].numpy()

    assert np.abs(L(style) - L(rgb)).mean() > 10  # the style photo's lightness is another one ...
    assert np.abs(L(out) - L(rgb)).max() < 1.0  # ... yet the result keeps the input's (8-bit rounding)
    own = playground.colorize_photo(model, rgb)[0]
    assert np.array_equal(playground.restyle(model, rgb, rgb), own)  # its own global features: no change
    fig, moved = playground.style_transfer(model, rgb, {"flower": style, "china": _photo("china", 64)})
    assert moved["style"].tolist() == ["flower", "china"] and np.isfinite(moved["mean_ab_change"]).all()
    assert len(fig.axes) == 8 and fig.axes[3].get_title() == "style's global features"
    with pytest.raises(ValueError, match="no global features"):
        playground.restyle(baselines.GrayBaseline(), rgb, style)


class _GlobalTint(torch.nn.Module):
    """Colours every pixel by the mean gray of the photo its global features come from."""

    cfg = types.SimpleNamespace(use_global=True)

    def colorize(self, gray, global_from=None):
        source = gray if global_from is None else global_from
        ab = (source.mean() - 0.5) * 30 * torch.ones_like(gray).expand(-1, 2, -1, -1)  # (B, 2, H, W)
        return color.join_lab(color.gray_to_L(gray), ab)  # (B, 3, H, W)


def test_restyle_takes_the_global_features_from_the_style_photo():
    rgb, dark = _photo("chelsea", 32), _photo("hubble_deep_field", 32)
    tint = _GlobalTint()
    own, styled = playground.colorize_photo(tint, rgb)[0], playground.restyle(tint, rgb, dark)
    lab = lambda x: color.rgb_to_lab(color.to_float(x).double())  # noqa: E731
    assert lab(styled)[:, 1].mean() < lab(own)[:, 1].mean() - 8  # a dark style photo: a colder tint
    _, moved = playground.style_transfer(tint, rgb, {"own": rgb, "dark": dark})
    assert moved.set_index("style")["mean_ab_change"].round(6).to_dict() == {"own": 0.0, "dark": pytest.approx(
        float(np.linalg.norm(lab(styled)[0, 1:] - lab(own)[0, 1:], axis=0).mean()), rel=1e-6)}
    assert playground.supports_global_from(tint) and not playground.supports_global_from(baselines.GrayBaseline())


# --- the interactive page -------------------------------------------------------------------
def test_ui_reports_bad_uploads_and_draws(use_runs):
    pytest.importorskip("ipywidgets")
    methods = playground.available_methods(use_runs.handout)
    page = playground_ui.build_ui(methods, {"chelsea": _photo("chelsea", 48)}, [use_runs.name, "not a method"])
    c = page.controls
    assert c["methods"].value == (use_runs.name,)
    c["upload"].value = (_upload("bad.jpg", b"abc"), _upload("cat.png", _png_bytes(_photo("coffee", 48))))
    assert "bad.jpg: not an image" in c["status"].value and "added cat.png" in c["status"].value
    assert c["photo"].value == "cat.png" and "cat.png" in c["style"].options
    c["style"].value, c["style_method"].value = "chelsea", use_runs.name
    c["button"].click()
    assert "done" in c["status"].value
    c["methods"].value = ()
    c["button"].click()
    assert "pick at least one method" in c["status"].value


def test_demo_uses_the_shipped_file_rather_than_training(use_runs, tmp_path, monkeypatch, capsys):
    """A student laptop with no data and no runs: the lesson's demo is the shipped file, nothing is trained."""
    from colorlab import weights as w

    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / w.SHIPPED["iizuka2016"]).write_bytes(use_runs.file.read_bytes())
    monkeypatch.setenv("COLORLAB_RUNS", str(tmp_path / "no-runs"))
    monkeypatch.setattr(playground, "demo_run", lambda *a, **k: pytest.fail("trained although a file ships"))
    name = playground.demo("cpu", 0, "iizuka2016", folder)
    assert name == w.SHIPPED["iizuka2016"] and "no training" in capsys.readouterr().out
    assert name in playground.available_methods(folder)


def test_the_default_selection_shows_the_presets_own_run_at_the_seed_however_many_runs_are_newer(monkeypatch):
    preset = json.loads(json.dumps(asdict(models.get("iizuka2016").PRESETS["smoke"]), default=str))

    def run(name, key):
        return playground.Method(name, "run", "iizuka2016", key, "", lambda: None, preset)

    methods = {"gray": playground.Method("gray", "baseline", None, "built in", "", lambda: None),
               "mean-ab": playground.Method("mean-ab", "baseline", None, "built in", "", lambda: None),
               "own": run("own", "k-seed-0"), "newer": run("newer", "k-other-steps")}
    keys = {0: "k-seed-0", 1: "k-seed-1"}
    monkeypatch.setattr(experiments, "preset_key", lambda model, profile, seed: keys[seed])
    assert playground.default_selection(methods, "smoke", seed=0) == ["gray", "mean-ab", "own"]
    assert playground.default_selection(methods, "smoke", seed=1) == ["gray", "mean-ab", "newer"]  # not here: newest
    assert playground.default_selection(methods, "smoke") == ["gray", "mean-ab", "newer"]
    monkeypatch.setattr(experiments, "preset_key", lambda model, profile, seed: None)  # no dataset to key it by
    assert playground.default_selection(methods, "smoke", seed=0) == ["gray", "mean-ab", "newer"]
    monkeypatch.setattr(experiments, "preset_key", lambda model, profile, seed: pytest.fail("no choice to make"))
    del methods["newer"]
    assert playground.default_selection(methods, "smoke", seed=0) == ["gray", "mean-ab", "own"]
