"""Runs keyed by config and code: reuse, resume, never stale; export to one safetensors file; CLI."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import colorlab
from colorlab import cli, color, experiments, keys, models, processes, profiles, runs, settings, train, weights
from colorlab.commands import runs as run_table
from colorlab.errors import ColorlabError
from colorlab.experiments import images


pytestmark = pytest.mark.usefixtures("one_thread")


# --- a tiny registered model (this module is its source file) ----------------------------
@dataclass
class Inner:
    sizes: tuple[int, int] = (3, 4)


@dataclass
class Config:
    width: int = 4
    n_classes: int = 3
    train_size: int = 12
    inner: Inner = field(default_factory=Inner)


class Tiny(nn.Module):
    fail_at: int | None = None  # class-wide: the next model built raises in this training call

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.features = nn.Sequential(nn.Conv2d(1, cfg.width, 3, padding=1), nn.BatchNorm2d(cfg.width), nn.ReLU())
        self.to_ab = nn.Conv2d(cfg.width, 2, 3, padding=1)
        self.calls = 0

    def training_loss(self, batch):
        if self.training:
            self.calls += 1
            if self.calls == Tiny.fail_at:
                raise KeyboardInterrupt("killed")
        rgb = batch["rgb"]
        ab = self.to_ab(self.features(color.rgb_to_gray(rgb)))
        loss = F.mse_loss(ab, color.rgb_to_lab(rgb)[:, 1:] / 100)
        if "embedding" in batch:  # an extra per-sample array reaches the model
            loss = loss + 0 * batch["embedding"].sum()
        return loss, {"color": loss.item()}

    @torch.no_grad()
    def colorize(self, gray):
        return color.join_lab(color.gray_to_L(gray), 100 * self.to_ab(self.features(gray)))


def build(cfg: Config) -> Tiny:
    return Tiny(cfg)


PRESETS = {"smoke": Config()}


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(models.MODULES, "tiny", __name__)
    monkeypatch.setattr(Tiny, "fail_at", None)
    return "tiny"


def arrays(n=12, size=12, seed=0):
    rng = np.random.default_rng(seed)
    return {"rgb": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), "label": rng.integers(0, 3, n)}


def tcfg(**kw):
    return train.TrainConfig(**{**dict(steps=6, batch_size=4, optimizer="adam", lr=1e-2, flip=True, eval_every=3,
                                       ckpt_every=2, device="cpu"), **kw})


def recipe(mcfg=None, t=None, data_id="synthetic-v1"):
    return runs.Recipe("tiny", __name__, mcfg or Config(), t or tcfg(), {"arrays": data_id}, ("colorlab.train",),
                       load=lambda: (arrays(), arrays(5, seed=1)), command="colorlab train --model tiny")


def fit_arrays(name, mcfg=None, t=None, data_id="synthetic-v1", **kw):
    return runs.get(recipe(mcfg, t, data_id), progress=False, **kw)


def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("trained although a finished run exists")

    monkeypatch.setattr(train, "fit", fail)


# --- keys ------------------------------------------------------------------------------
def test_key_changes_with_everything_that_shapes_the_weights(tiny, monkeypatch):
    spec = profiles.DataSpec("smoke", "train", 12)

    def key(mcfg=Config(), t=None, train_spec=spec, extras=None):
        return images.recipe("tiny", mcfg, t or tcfg(), train_spec, None, extras, module=__name__).key

    base = key()
    changed = [
        key(Config(width=5)), key(Config(inner=Inner((3, 5)))), key(t=tcfg(lr=0.1)), key(t=tcfg(seed=1)),
        key(t=tcfg(bf16=True)), key(train_spec=dataclasses.replace(spec, size=16)),
        key(train_spec=dataclasses.replace(spec, limit=10)),
        key(extras={"emb": (np.zeros((1, 2)), None, "cache-a")}),
    ]
    assert len({base, *changed}) == len(changed) + 1
    # bookkeeping fields do not change the weights, so they do not change the key
    assert key(t=tcfg(eval_every=7, ckpt_every=9, log_every=3, device="cuda")) == base
    monkeypatch.setattr(keys, "code_digest", lambda producers, root=None: "edited code")
    assert key() != base


def test_a_run_records_the_code_that_made_it(tiny):
    run = fit_arrays(tiny)
    assert {"colorlab.train", "colorlab.batches", "colorlab.color", __name__} <= set(run.config["producers"])
    made_by = set(keys.closure(experiments.recipe("iizuka2016", "smoke").producers + ("colorlab.models.iizuka2016",)))
    assert {"colorlab.models.iizuka2016", "colorlab.train", "colorlab.data.cache"} <= made_by
    assert not made_by & {"colorlab.runs", "colorlab.experiments", "colorlab.cli"}  # the store shapes no weights


def test_config_from_dict_restores_nested_and_tuple_fields():
    cfg = Config(width=7, inner=Inner((1, 2)))
    back = runs.config_from_dict(Config, json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert back == cfg and isinstance(back.inner.sizes, tuple)
    with pytest.raises(ValueError, match="no fields.*depth"):
        runs.config_from_dict(Config, {"depth": 3})


# --- train or load ------------------------------------------------------------------------
def test_train_then_load_without_training(tiny, monkeypatch):
    first = fit_arrays(tiny)
    assert first.done and first.dir == settings.runs_dir() / tiny / first.key[:12]
    assert {"config.json", "checkpoint.pt", "history.csv", "final.pt", "metrics.json", "done"} <= {
        p.name for p in first.dir.iterdir()}
    config = json.loads((first.dir / "config.json").read_text())
    assert config["model_config"]["inner"] == {"sizes": [3, 4]} and config["train_config"]["steps"] == 6
    assert first.metrics["steps"] == 6 and np.isfinite(first.metrics["val_loss"])
    gray = torch.rand(2, 1, 12, 12)
    expected = first.model.colorize(gray)

    no_training(monkeypatch)
    again = fit_arrays(tiny)
    assert again.key == first.key and again.done
    assert torch.equal(again.model.colorize(gray), expected)
    assert len(again.history) == len(first.history)


def test_two_callers_of_one_unfinished_run_train_it_once(tiny, monkeypatch, capsys):
    calls, started, real_fit = [], threading.Event(), train.fit

    def slow_fit(*args, **kwargs):
        calls.append(1)
        started.set()
        time.sleep(0.5)  # the second caller arrives while this one trains
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train, "fit", slow_fit)
    first = []
    worker = threading.Thread(target=lambda: first.append(fit_arrays(tiny)))
    worker.start()
    assert started.wait(30)
    second = fit_arrays(tiny)  # waits on the run's lock, then loads what the first trained
    worker.join()
    assert len(calls) == 1 and second.done and second.key == first[0].key
    assert "being trained by another process; waiting" in capsys.readouterr().err


def test_changed_config_or_code_is_never_served_stale(tiny, monkeypatch):
    calls = []
    real_fit = train.fit
    monkeypatch.setattr(train, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    first = fit_arrays(tiny)
    wider = fit_arrays(tiny, Config(width=6))
    other_data = fit_arrays(tiny, data_id="synthetic-v2")
    monkeypatch.setattr(keys, "code_digest", lambda producers, root=None: "edited code")
    new_code = fit_arrays(tiny)
    assert len(calls) == 4 and len({first.key, wider.key, other_data.key, new_code.key}) == 4
    assert wider.model.features[0].out_channels == 6


def test_an_interrupted_run_resumes_to_the_same_weights(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("COLORLAB_RUNS", str(tmp_path / "clean"))
    clean = fit_arrays(tiny)
    monkeypatch.setenv("COLORLAB_RUNS", str(tmp_path / "killed"))
    Tiny.fail_at = 5
    with pytest.raises(KeyboardInterrupt):
        fit_arrays(tiny)
    Tiny.fail_at = None
    partial = runs.load_run(tiny, clean.key)
    assert not partial.done and torch.load(partial.dir / "checkpoint.pt", weights_only=True)["step"] == 4
    resumed = fit_arrays(tiny)
    assert resumed.key == clean.key and resumed.done
    for k, v in clean.model.state_dict().items():
        assert torch.allclose(v.float(), resumed.model.state_dict()[k].float(), atol=1e-6), k


def counting_fit(monkeypatch) -> list[int]:
    """Patch `train.fit` to record the steps each call trains."""
    steps, real_fit = [], train.fit

    def fit(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        steps.append(result.steps_trained)
        return result

    monkeypatch.setattr(train, "fit", fit)
    return steps


def test_a_longer_constant_rate_run_continues_the_shorter_one(tiny, monkeypatch, tmp_path, capsys):
    t = lambda **kw: tcfg(eval_every=2, log_every=2, **kw)  # noqa: E731 - the 4-step run ends on a logged step
    monkeypatch.setenv("COLORLAB_RUNS", str(tmp_path / "whole"))
    whole = fit_arrays(tiny, t=t(steps=10))
    monkeypatch.setenv("COLORLAB_RUNS", str(tmp_path / "store"))
    short = fit_arrays(tiny, t=t(steps=4))
    fit_arrays(tiny, t=t(steps=2))  # a shorter one still
    fit_arrays(tiny, t=t(steps=6, lr=0.02))  # longer, but another rate
    short.update_metrics(cpu_seconds=100.0)  # as if it had trained on more threads than this process has
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert runs.continued_from(recipe(t=t(steps=10))) is None  # under torchrun a run starts from step 0
    monkeypatch.delenv("WORLD_SIZE")
    assert runs.continued_from(recipe(t=t(steps=10))).key == short.key
    steps = counting_fit(monkeypatch)
    capsys.readouterr()
    longer = fit_arrays(tiny, t=t(steps=10))
    assert steps == [6] and f"continues run {short.key[:12]} from its step 4" in capsys.readouterr().err
    assert longer.key == whole.key and longer.config["continues"]["key"] == short.key
    assert longer.config["continues"]["steps"] == 4 and longer.config["continues"]["cpu_seconds"] == 100.0
    assert runs.load_run(tiny, longer.key).config["continues"] == longer.config["continues"]  # kept in config.json
    listed = run_table.list_runs(tiny).set_index("key")["continues"]
    assert listed[longer.key[:12]] == short.key[:12] and listed[short.key[:12]] == ""
    for k, v in whole.model.state_dict().items():
        assert torch.equal(v, longer.model.state_dict()[k]), k
    columns = ["step", "train_loss", "val_loss"]
    assert longer.history[columns].equals(whole.history[columns])  # the history goes on from the shorter run's
    m = longer.metrics  # wall seconds summed over both; CPU-seconds each at its own threads (here 1)
    assert m["train_seconds"] > short.metrics["train_seconds"] and m["threads"] == 1
    assert m["cpu_seconds"] == pytest.approx(100.0 + m["train_seconds"] - short.metrics["train_seconds"])
    assert runs.cpu_seconds({"train_seconds": 3.0, "threads": 2}) == 6.0  # runs made before cpu_seconds was kept


def test_an_interrupted_continued_run_keeps_what_it_continued(tiny):
    short = fit_arrays(tiny, t=tcfg(steps=4))
    short.update_metrics(cpu_seconds=100.0)
    Tiny.fail_at = 3  # the continued run dies in its third step (step 7), after its checkpoint at step 6
    with pytest.raises(KeyboardInterrupt):
        fit_arrays(tiny, t=tcfg(steps=10))
    Tiny.fail_at = None
    resumed = fit_arrays(tiny, t=tcfg(steps=10))
    m, before = resumed.metrics, resumed.config["continues"]
    assert before["key"] == short.key and before["train_seconds"] == pytest.approx(short.metrics["train_seconds"])
    assert m["cpu_seconds"] == pytest.approx(100.0 + m["train_seconds"] - before["train_seconds"])


@pytest.mark.parametrize("change", ["schedule", "seed", "code", "no-checkpoint", "empty-checkpoint", "no-resume"])
def test_a_run_is_continued_only_from_its_own_shorter_run(tiny, monkeypatch, capsys, change):
    cosine = dict(optimizer="adamw", schedule="warmup_cosine", warmup=0.25) if change == "schedule" else {}
    short = fit_arrays(tiny, t=tcfg(steps=4, **cosine))
    if change == "no-checkpoint":
        (short.dir / "checkpoint.pt").unlink()
    if change == "empty-checkpoint":
        (short.dir / "checkpoint.pt").write_bytes(b"")
    if change == "code":
        monkeypatch.setattr(keys, "code_digest", lambda producers, root=None: "edited code")
    t = tcfg(steps=8, seed=1 if change == "seed" else 0, **cosine)
    assert (runs.shorter_run(recipe(t=t)) is None) == (change != "no-resume")
    assert runs.continued_from(recipe(t=t), resume=change != "no-resume") is None
    steps = counting_fit(monkeypatch)
    longer = fit_arrays(tiny, t=t, resume=change != "no-resume")
    assert steps == [8] and "continues" not in longer.config  # trained from step 0
    assert "checkpoint" not in change or "cannot continue run" in capsys.readouterr().err


def test_train_or_load_decodes_the_specs_and_passes_extras(tiny, monkeypatch):
    from colorlab import data

    decoded_calls = []

    def fake_decoded(name, split, size, limit=None, **kw):
        decoded_calls.append((name, split, size, limit))
        n = 12 if split == "train" else 5
        a = arrays(n, size, seed=len(decoded_calls))
        return data.Decoded(rgb=a["rgb"], labels=a["label"], names=[str(i) for i in range(n)], objects=None,
                            skipped=[], reasons={}, path=None)

    monkeypatch.setattr(data, "decoded", fake_decoded)
    tr, va = profiles.DataSpec("smoke", "train", 12), profiles.DataSpec("smoke", "val", 12)
    emb = {"embedding": (np.zeros((12, 5), np.float32), np.zeros((5, 5), np.float32), "emb-v1")}
    run = runs.get(images.recipe(tiny, Config(), tcfg(steps=2), tr, va, emb, module=__name__), progress=False)
    assert decoded_calls == [("smoke", "train", 12, None), ("smoke", "val", 12, None)]
    assert run.config["data"]["extras"] == {"embedding": "emb-v1"} and run.done
    bad = {"embedding": (np.zeros((11, 5), np.float32), np.zeros((5, 5), np.float32), "emb-v2")}
    with pytest.raises(ValueError, match="11 rows"):
        runs.get(images.recipe(tiny, Config(), tcfg(steps=2), tr, va, bad, module=__name__), progress=False)


def test_smoke_profile_end_to_end_through_the_cli(capsys):
    """`colorlab train` on the smoke dataset (no download), then `colorlab runs list`."""
    from colorlab import data

    assert cli.main(["train", "--model", "iizuka2016", "--profile", "smoke", "--steps", "3", "--no-progress",
                     "--set", "eval_every=3"]) == 0
    out = capsys.readouterr().out
    assert "run " in out
    found = runs.find_runs("iizuka2016", steps=3)
    assert len(found) == 1 and found[0].train_config["crop"] == models.get("iizuka2016").PRESETS["smoke"].train_size
    assert found[0].config["data"]["train"] == dataclasses.asdict(profiles.train_data("smoke", found[0].train_config["data_size"]))
    assert data.decoded  # the data layer the CLI went through
    assert cli.main(["runs", "list"]) == 0
    assert found[0].key[:12] in capsys.readouterr().out


# --- listing, finding, exporting ------------------------------------------------------------
def test_list_find_and_load_runs(tiny):
    a = fit_arrays(tiny)
    b = fit_arrays(tiny, t=tcfg(seed=1))
    df = run_table.list_runs()
    assert set(df["key"]) == {a.key[:12], b.key[:12]} and (df["status"] == "done").all()
    assert {"method", "config", "data", "steps", "val_loss", "date"} <= set(df.columns)
    assert "seed=1" in df.loc[df.key == b.key[:12], "config"].item()
    assert [r.key for r in runs.find_runs(tiny, seed=1)] == [b.key]
    assert [r.key for r in runs.find_runs(tiny, width=4, seed=0)] == [a.key]
    assert runs.find_runs(tiny, width=5) == []
    assert runs.load_run(tiny, a.key[:8]).key == a.key and runs.load_run(None, b.key[:6]).key == b.key
    with pytest.raises(ColorlabError, match="no runs"):
        runs.load_run(tiny, "ffffffff")


def test_export_round_trip_gives_equal_outputs(tiny, tmp_path):
    run = fit_arrays(tiny)
    run.update_metrics(psnr=23.5)
    path = weights.export(run, tmp_path / "tiny.safetensors")
    model, meta = weights.load_exported(path)
    gray = torch.rand(2, 1, 12, 12)
    assert torch.equal(model.colorize(gray), run.model.colorize(gray))
    assert meta["model_name"] == tiny and meta["key"] == run.key and meta["config"]["width"] == 4
    assert meta["metrics"]["psnr"] == 23.5 and meta["colorlab_version"] and meta["data"]["arrays"] == "synthetic-v1"
    assert meta["train_config"]["optimizer"] == "adam"
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:  # tensors only, nothing pickled
        assert set(f.keys()) == set(run.model.state_dict())


def test_export_refuses_unfinished_runs_and_foreign_files(tiny, tmp_path):
    Tiny.fail_at = 3
    with pytest.raises(KeyboardInterrupt):
        fit_arrays(tiny)
    partial = runs.find_runs(tiny, done=False)[0]
    with pytest.raises(ColorlabError, match="has not finished"):
        weights.export(partial, tmp_path / "x.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ColorlabError, match="not a colorlab weights file"):
        weights.load_exported(tmp_path / "foreign.safetensors")


def test_runs_cli_list_and_export(tiny, tmp_path, capsys):
    run = fit_arrays(tiny)
    assert cli.main(["runs", "list", "--model", tiny]) == 0
    assert run.key[:12] in capsys.readouterr().out
    out = tmp_path / "w.safetensors"
    assert cli.main(["runs", "export", run.key[:8], str(out)]) == 0
    assert weights.load_exported(out)[1]["key"] == run.key
    assert cli.main(["runs", "export", "abcdef99", str(tmp_path / "none.safetensors")]) == 2
    assert "no runs" in capsys.readouterr().err


def test_runs_diff_is_zero_for_a_retrained_run_and_names_a_real_difference(tiny, capsys):
    first = fit_arrays(tiny)
    again = fit_arrays(tiny, data_id="synthetic-v1-again")  # another key, the same arrays, configs and seed
    other = fit_arrays(tiny, t=tcfg(lr=2e-2))
    assert cli.main(["runs", "diff", first.key[:8], again.key[:8], "--model", tiny]) == 0
    same = json.loads(capsys.readouterr().out)
    assert first.key != again.key and same["bit_identical"] and same["max_abs_difference"] == 0.0
    assert same["tensors_differing"] == 0 and same["tensors_not_finite"] == 0
    apart = run_table.weight_difference(first, other)
    expected = max(float((first.model.state_dict()[k].double() - v.double()).abs().max())
                   for k, v in other.model.state_dict().items())
    assert apart["max_abs_difference"] == pytest.approx(expected) and apart["max_abs_difference"] > 0
    assert 0 < apart["tensors_differing"] <= apart["tensors"] and not apart["bit_identical"]
    with torch.no_grad():  # a diverged run: NaN weights are a difference, never "identical"
        next(iter(other.model.parameters())).copy_(next(iter(first.model.parameters())).detach() * float("nan"))
    broken = run_table.weight_difference(first, other)
    assert not broken["bit_identical"] and broken["tensors_not_finite"] == 1
    with pytest.raises(ColorlabError, match="give two runs"):
        run_table.weight_difference(first, first)


def test_train_presets_follow_the_model_working_size():
    t = experiments.train_config("iizuka2016", "smoke", models.get("iizuka2016").PRESETS["smoke"])
    assert (t.crop, t.data_size, t.flip) == (32, 37, True)


def test_dry_run_says_whether_a_run_would_train_and_trains_nothing(capsys, monkeypatch):
    args = ["train", "--model", "iizuka2016", "--profile", "smoke", "--steps", "2", "--no-progress"]
    real_fit = train.fit
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("a dry run trained"))
    assert cli.main(args + ["--dry-run"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("run ") and " in " in first and "not trained" in first
    monkeypatch.setattr(train, "fit", real_fit)
    assert cli.main(args) == 0
    trained = capsys.readouterr().out
    assert first.splitlines()[0] in trained  # the same `run KEY in FOLDER` line
    assert cli.main(args + ["--dry-run"]) == 0
    assert "trained: it would be loaded" in capsys.readouterr().out
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("a dry run trained"))
    longer = [a if a != "2" else "5" for a in args]  # the smoke preset's rate is constant: it goes on from step 2
    assert cli.main(longer + ["--dry-run"]) == 0
    assert f"it would continue run {first.split()[1]} from its step 2" in capsys.readouterr().out


def test_bad_overrides_are_one_line_errors(capsys):
    assert cli.main(["train", "--model", "iizuka2016", "--profile", "smoke", "--set", "depth=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("colorlab train: ") and "no such field 'depth'" in err and len(err.splitlines()) == 1


def test_a_damaged_finished_run_is_reported_then_retrained(tiny, capsys):
    run = fit_arrays(tiny)
    final = run.dir / "final.pt"
    final.write_bytes(final.read_bytes()[:100])  # truncated
    assert runs.status(recipe())[1] == "damaged"
    with pytest.raises(ColorlabError, match="damaged") as err:
        runs.load_run(tiny, run.key).model
    assert "colorlab train --model tiny" in str(err.value) and str(final) in str(err.value)
    again = fit_arrays(tiny)  # trains again (from the complete checkpoint) and verifies
    assert "training it again" in capsys.readouterr().err
    again.verify()
    assert runs.status(recipe())[1] == "trained"


def test_colorize_of_a_damaged_run_is_one_line(tiny, tmp_path, capsys):
    run = fit_arrays(tiny)
    (run.dir / "final.pt").write_bytes(b"not a zip")
    from colorlab import images as imgs

    photo = tmp_path / "p.png"
    imgs.write_image(photo, np.zeros((12, 12, 3), np.uint8))
    assert cli.main(["colorize", "--run", run.key[:8], str(photo), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "final.pt" in err and "damaged" in err


def test_a_corrupt_checkpoint_names_the_cli_option(tiny):
    Tiny.fail_at = 5
    with pytest.raises(KeyboardInterrupt):
        fit_arrays(tiny)
    Tiny.fail_at = None
    partial = runs.find_runs(tiny, done=False)[0]
    (partial.dir / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(ColorlabError, match="--no-resume") as err:
        fit_arrays(tiny)
    assert "checkpoint.pt" in str(err.value)
    assert fit_arrays(tiny, resume=False).done


def test_listing_ignores_other_artefacts_in_the_runs_folder():
    other = settings.runs_dir() / "parser" / "abc123"
    other.mkdir(parents=True)
    (other / "config.json").write_text('{"key": "abc123", "parser": {}}')
    assert run_table.list_runs().empty


def test_a_missing_dataset_is_one_line_naming_the_fetch_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path / "no-data"))
    assert cli.main(["train", "--model", "iizuka2016", "--profile", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "colorlab data fetch miniplaces" in err[0] and "no-data" in err[0]
    assert cli.main(["reproduce", "--only", "99"]) == 2
    assert "no notebook matches" in capsys.readouterr().err


def test_a_runs_command_line_reproduces_its_key(capsys):
    """The command a run records (and error messages quote) trains exactly that run, model_cfg= included."""
    import shlex

    cfg = dataclasses.replace(models.get("iizuka2016").PRESETS["smoke"], out_space="yuv", width=0.125)
    recipe = experiments.recipe("iizuka2016", "smoke", model_cfg=cfg, seed=3)
    argv = shlex.split(recipe.command)[1:] + ["--dry-run"]
    assert "--set" in argv and cli.main(argv) == 0
    assert f"run {recipe.key[:12]} in " in capsys.readouterr().out


def test_variants_over_seeds_come_back_grouped_by_variant_in_seed_order(monkeypatch):
    asked = []

    def fake_get_all(requests, profile, workers, progress):
        asked.append((requests, profile, workers))
        return [f"{model}:{kw['seed']}:{kw.get('steps')}" for model, kw in requests]

    monkeypatch.setattr(experiments, "get_all", fake_get_all)
    got = experiments.get_over_seeds({"a": ("iizuka2016", {"steps": 5}), "b": ("koalarization2017", {"seed": 9})},
                                     [2, 0], "smoke", workers=2)
    assert got == {"a": ["iizuka2016:2:5", "iizuka2016:0:5"], "b": ["koalarization2017:2:None", "koalarization2017:0:None"]}
    assert len(asked) == 1 and asked[0][1:] == ("smoke", 2)  # one pool for every variant and seed


def test_runs_of_one_lineage_train_in_one_worker_shortest_first(monkeypatch):
    jobs = []

    def in_process(fn, job_list, workers):
        jobs.extend(job_list)
        return [fn(*job) for job in job_list]

    monkeypatch.setattr(processes, "side_by_side", in_process)
    cosine = dict(optimizer="adamw", lr=1e-3, schedule="warmup_cosine", warmup=0.2)
    requests = [("iizuka2016", {"steps": 4}), ("iizuka2016", {"steps": 2}), ("iizuka2016", {"steps": 4, "seed": 1}),
                ("iizuka2016", {"steps": 4}), ("iizuka2016", {"steps": 2, **cosine}), ("iizuka2016", {"steps": 4, **cosine})]
    got = experiments.get_all(requests, "smoke", workers=2, progress=False)  # the smoke preset: ADADELTA, constant
    assert [job[2] for job in jobs] == [[{"steps": 2}, {"steps": 4}], [{"steps": 4, "seed": 1}],
                                        [{"steps": 2, **cosine}], [{"steps": 4, **cosine}]]
    assert got[0].config["continues"]["key"] == got[1].key and got[3].key == got[0].key
    assert not any("continues" in run.config for run in got[1:3] + got[4:])
    one = experiments.get_all([("iizuka2016", {"steps": 6, "seed": 2}), ("iizuka2016", {"steps": 3, "seed": 2})],
                              "smoke", workers=1, progress=False)
    assert one[0].config["continues"]["key"] == one[1].key  # one worker: the chain's order too


def test_exclusive_makes_a_second_holder_wait(tmp_path, capsys):
    import threading

    from colorlab import atomic

    order, held = [], threading.Event()

    def first():
        with atomic.exclusive(tmp_path / "x.lock"):
            held.set()
            threading.Event().wait(0.3)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    held.wait(5)
    with atomic.exclusive(tmp_path / "x.lock", "waiting for x"):
        order.append("second in")
    t.join()
    assert order == ["first done", "second in"] and "waiting for x" in capsys.readouterr().err
