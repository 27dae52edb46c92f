"""The shared training loop: resume equivalence, atomic checkpoints, data order, augmentation, history."""

from __future__ import annotations

import dataclasses
import importlib.util
import random
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from colorlab import batches, color, experiments, train
from colorlab.errors import ColorlabError


pytestmark = pytest.mark.usefixtures("one_thread")


# --- a tiny model that follows the colorlab.models protocol -----------------------------
@dataclass
class Config:
    width: int = 4
    n_classes: int = 3
    batch_norm: bool = True
    train_size: int = 12


class Tiny(nn.Module):
    """Conv(-BN)-ReLU-conv to ab, plus a linear scene head on the pooled features."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.features = nn.Sequential(nn.Conv2d(1, cfg.width, 3, padding=1),
                                      nn.BatchNorm2d(cfg.width) if cfg.batch_norm else nn.Identity(), nn.ReLU())
        self.to_ab = nn.Conv2d(cfg.width, 2, 3, padding=1)
        self.head = nn.Linear(cfg.width, cfg.n_classes)
        self.fail_at = None  # raise on this training call: a "killed" process
        self.calls = 0

    def _run(self, gray):
        h = self.features(gray)  # (B, w, H, W)
        return self.to_ab(h), self.head(h.mean((2, 3)))  # (B, 2, H, W), (B, n_classes)

    def training_loss(self, batch):
        if self.training:
            self.calls += 1
            if self.calls == self.fail_at:
                raise KeyboardInterrupt("killed")
        rgb = batch["rgb"]
        ab, logits = self._run(color.rgb_to_gray(rgb))
        color_loss = F.mse_loss(ab, color.rgb_to_lab(rgb)[:, 1:] / 100)
        labels = batch["label"]
        class_loss = F.cross_entropy(logits, labels, ignore_index=-1) if (labels >= 0).any() else logits.sum() * 0
        total = color_loss + 0.1 * class_loss
        return total, {"color": color_loss.item(), "class": class_loss.item()}

    def classify(self, gray):
        return self._run(gray)[1]

    @torch.no_grad()
    def colorize(self, gray):
        return color.join_lab(color.gray_to_L(gray), 100 * self._run(gray)[0])


def build(cfg: Config) -> Tiny:
    return Tiny(cfg)


def arrays(n=21, size=14, seed=0, n_classes=3):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return {"rgb": rgb, "label": rng.integers(-1, n_classes, n).astype(np.int64)}


def cfg(**kw):
    base = dict(steps=10, batch_size=4, optimizer="adam", lr=1e-2, crop=12, data_size=14, flip=True,
                eval_every=5, ckpt_every=3, log_every=1, device="cpu")
    return train.TrainConfig(**{**base, **kw})


def fresh(seed=0, **kw):
    torch.manual_seed(seed)
    return build(Config(**kw))


def assert_same_weights(a: nn.Module, b: nn.Module, atol=1e-6):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.allclose(sa[k].float(), sb[k].float(), atol=atol, rtol=0), k


# --- resume -----------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "adadelta"])
def test_resume_after_kill_equals_uninterrupted(tmp_path, optimizer):
    tr, va = arrays(), arrays(6, seed=1)
    c = cfg(optimizer=optimizer, lr=1e-2 if optimizer == "adam" else 1.0)
    whole = train.fit(fresh(), tr, va, c, tmp_path / "whole", progress=False)

    killed = fresh()
    killed.fail_at = 8  # dies in step 8: the last checkpoint is at step 6
    with pytest.raises(KeyboardInterrupt):
        train.fit(killed, tr, va, c, tmp_path / "resumed", progress=False)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["step"] == 6
    resumed = train.fit(fresh(seed=123), tr, va, c, tmp_path / "resumed", progress=False)  # other init: overwritten
    assert resumed.steps_trained == 4
    assert_same_weights(whole.model, resumed.model)
    pd.testing.assert_frame_equal(whole.history.drop(columns="time_s"), resumed.history.drop(columns="time_s"))


def test_resume_extends_steps_and_checks_config(tmp_path):
    tr = arrays()
    whole = train.fit(fresh(), tr, None, cfg(steps=9), tmp_path / "a", progress=False)
    train.fit(fresh(), tr, None, cfg(steps=4), tmp_path / "b", progress=False)
    longer = train.fit(fresh(), tr, None, cfg(steps=9, eval_every=2), tmp_path / "b", progress=False)
    assert longer.steps_trained == 5
    assert_same_weights(whole.model, longer.model)
    with pytest.raises(ValueError, match="different TrainConfig.*lr"):
        train.fit(fresh(), tr, None, cfg(steps=12, lr=0.5), tmp_path / "b", progress=False)
    again = train.fit(fresh(), tr, None, cfg(steps=12, lr=0.5), tmp_path / "b", resume=False, progress=False)
    assert again.steps_trained == 12


def test_warmup_cosine_rates_are_a_function_of_the_step():
    c = train.TrainConfig(steps=100, optimizer="adamw", lr=1e-3, schedule="warmup_cosine", warmup=0.05)
    rates = [train.learning_rate(c, s) for s in range(100)]
    assert rates[:5] == pytest.approx([2e-4, 4e-4, 6e-4, 8e-4, 1e-3])  # linear warm-up over 5 steps
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))  # then never rising
    assert rates[-1] < 1e-6 and rates[52] == pytest.approx(5e-4, rel=0.05)  # cosine to 0, half-way at the middle
    assert {train.learning_rate(train.TrainConfig(steps=100, lr=0.3), s) for s in (0, 50, 99)} == {0.3}
    with pytest.raises(ValueError, match="schedule must be one of"):
        train.TrainConfig(schedule="step")
    with pytest.raises(ValueError, match="warmup"):
        train.TrainConfig(schedule="warmup_cosine", warmup=1.0)


def test_a_scheduled_run_resumes_exactly_and_refuses_other_steps(tmp_path):
    tr = arrays()
    c = cfg(steps=10, optimizer="adamw", weight_decay=0.01, schedule="warmup_cosine", warmup=0.2)
    whole = train.fit(fresh(), tr, None, c, tmp_path / "whole", progress=False)
    killed = fresh()
    killed.fail_at = 8
    with pytest.raises(KeyboardInterrupt):
        train.fit(killed, tr, None, c, tmp_path / "resumed", progress=False)
    resumed = train.fit(fresh(seed=9), tr, None, c, tmp_path / "resumed", progress=False)
    assert resumed.steps_trained == 4
    assert_same_weights(whole.model, resumed.model)
    # the cosine is laid over `steps`: a longer run is another schedule, not a continuation
    with pytest.raises(ValueError, match="different TrainConfig.*steps"):
        train.fit(fresh(), tr, None, dataclasses.replace(c, steps=20), tmp_path / "whole", progress=False)


def test_channels_last_trains_the_same_net_to_float_rounding(tmp_path):
    tr = arrays()
    # SGD: Adam would turn the rounding noise of a bias before BatchNorm (gradient ~0) into whole steps
    plain = train.fit(fresh(), tr, None, cfg(steps=4, optimizer="sgd", lr=0.1), tmp_path / "a", progress=False)
    nhwc = train.fit(fresh(), tr, None, cfg(steps=4, optimizer="sgd", lr=0.1, channels_last=True), tmp_path / "b",
                     progress=False)
    assert_same_weights(plain.model, nhwc.model, atol=1e-4)
    final = torch.load(tmp_path / "b" / "final.pt", weights_only=True)["model"]
    assert all(t.is_contiguous() for t in final.values())  # weights leave the loop in the usual layout


def test_finished_checkpoint_trains_nothing(tmp_path):
    tr = arrays()
    first = train.fit(fresh(), tr, None, cfg(steps=3), tmp_path, progress=False)
    second = train.fit(fresh(seed=5), tr, None, cfg(steps=3), tmp_path, progress=False)
    assert second.steps_trained == 0
    assert_same_weights(first.model, second.model, atol=0)


def test_checkpoint_is_self_describing_and_weights_only(tmp_path):
    train.fit(fresh(), arrays(), None, cfg(steps=3), tmp_path, progress=False, meta={"model_name": "tiny"})
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert {"model", "optimizer", "config", "train_config", "step", "history", "rng"} <= set(ckpt)
    assert ckpt["config"] == dataclasses.asdict(Config()) and ckpt["train_config"]["lr"] == 1e-2
    assert set(ckpt["rng"][0]) == {"torch", "cuda", "numpy", "python"}
    final = torch.load(tmp_path / "final.pt", weights_only=True)
    assert final["model_name"] == "tiny" and final["step"] == 3
    model = build(Config(**final["config"]))
    model.load_state_dict(final["model"])


def test_rng_state_round_trip():
    train.seed_everything(3)
    state = train.rng_state()
    a = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    train.set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


# --- atomic checkpoints --------------------------------------------------------------------
def test_crash_while_saving_keeps_previous_checkpoint(tmp_path, monkeypatch):
    tr = arrays()
    train.fit(fresh(), tr, None, cfg(steps=3), tmp_path, progress=False)
    before = (tmp_path / "checkpoint.pt").read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        train.fit(fresh(), tr, None, cfg(steps=6), tmp_path, progress=False)
    monkeypatch.undo()
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "final.pt", "history.csv"]


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(train.CheckpointError, match="cannot read the checkpoint.*resume=False"):
        train.fit(fresh(), arrays(), None, cfg(steps=2), tmp_path, progress=False)


# --- data order and augmentation ------------------------------------------------------------
def test_batch_order_is_a_seeded_function_of_the_step():
    order = batches.BatchOrder(10, 4, seed=0)
    first_epochs = np.concatenate([order.indices(s) for s in range(5)])  # 20 positions = 2 epochs
    assert sorted(first_epochs[:10]) == list(range(10)) and sorted(first_epochs[10:]) == list(range(10))
    assert not np.array_equal(first_epochs[:10], first_epochs[10:])  # reshuffled each epoch
    assert np.array_equal(batches.BatchOrder(10, 4, seed=0).indices(3), order.indices(3))
    assert not np.array_equal(batches.BatchOrder(10, 4, seed=1).indices(0), order.indices(0))
    big = batches.BatchOrder(3, 7, seed=0).indices(0)  # batch larger than the data: epochs end to end
    assert sorted(big[:6]) == [0, 0, 1, 1, 2, 2]


def test_crop_flip_matches_per_sample_slicing():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (16, 9, 11, 3), dtype=np.uint8)
    aug = batches.augmentation(0, 0, 16, (9, 11), 6, True)
    assert 0 < aug["flip"].sum() < 16 and aug["oy"].max() <= 3 and aug["ox"].max() <= 5 and aug["ox"].max() > 3
    out = batches.crop_flip(x, aug["oy"], aug["ox"], aug["flip"], (6, 6))
    for i in range(16):
        ref = x[i, aug["oy"][i] : aug["oy"][i] + 6, aug["ox"][i] : aug["ox"][i] + 6]
        assert np.array_equal(out[i], ref[:, ::-1] if aug["flip"][i] else ref)
    flipped = batches.crop_flip(x, np.zeros(16, int), np.zeros(16, int), np.ones(16, bool), (9, 11))
    assert np.array_equal(flipped, x[:, :, ::-1])


def test_spatial_arrays_get_the_same_crop_and_flip():
    tr = arrays(8, size=10)
    tr["objects"] = tr["rgb"][..., 1].copy()  # (N, H, W): per-pixel, like MiniPlaces object maps
    tr["embedding"] = np.arange(8 * 5, dtype=np.float32).reshape(8, 5)  # per-sample, not spatial
    idx = np.array([3, 1, 6, 0])
    aug = {"oy": np.array([0, 2, 1, 2]), "ox": np.array([2, 0, 1, 2]), "flip": np.array([True, False, True, False])}
    batch = batches.make_batch(tr, idx, torch.device("cpu"), aug, (8, 8))
    assert batch["rgb"].shape == (4, 3, 8, 8) and batch["rgb"].dtype == torch.float32
    assert torch.equal((batch["rgb"][:, 1] * 255).round().to(torch.uint8), batch["objects"])
    assert torch.equal(batch["embedding"], torch.from_numpy(tr["embedding"][idx]))
    assert batch["label"].dtype == torch.int64


def test_bad_arrays_are_clear_errors(tmp_path):
    tr = arrays()
    with pytest.raises(ValueError, match="not index-aligned"):
        train.fit(fresh(), {**tr, "label": tr["label"][:-1]}, None, cfg(), tmp_path, progress=False)
    with pytest.raises(ValueError, match="uint8"):
        train.fit(fresh(), {**tr, "rgb": tr["rgb"].astype(np.float32)}, None, cfg(), tmp_path, progress=False)
    with pytest.raises(ValueError, match="crop 20 is larger"):
        train.fit(fresh(), tr, None, cfg(crop=20, data_size=None), tmp_path, progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        cfg(optimizer="rmsprop")


# --- history and validation -------------------------------------------------------------------
def test_history_csv_holds_train_and_val_curves(tmp_path):
    result = train.fit(fresh(), arrays(), arrays(7, seed=2), cfg(steps=10, log_every=2, eval_every=5),
                       tmp_path, progress=False)
    h = pd.read_csv(tmp_path / "history.csv")
    assert list(h["step"]) == [2, 4, 5, 6, 8, 10]
    assert {"epoch", "time_s", "train_loss", "train_color", "train_class", "val_loss", "val_color", "val_class",
            "val_top1", "val_top5"} <= set(h.columns)
    assert h.loc[h.step.isin([5, 10]), "val_loss"].notna().all() and h.loc[h.step == 4, "val_loss"].isna().all()
    assert h.loc[h.step == 5, "train_loss"].isna().all()  # a validation-only row
    assert h["train_loss"].dropna().gt(0).all() and h["val_top1"].dropna().between(0, 1).all()
    assert (h["val_top5"].dropna() >= h["val_top1"].dropna()).all()
    pd.testing.assert_frame_equal(h, result.history, check_dtype=False)
    assert not (tmp_path / "loss_curves.png").exists()  # figures are the run store's, not the loop's


def test_logged_loss_is_the_mean_over_log_every_steps(tmp_path):
    every = train.fit(fresh(), arrays(), None, cfg(steps=6, log_every=1), tmp_path / "a", progress=False).history
    pairs = train.fit(fresh(), arrays(), None, cfg(steps=6, log_every=3), tmp_path / "b", progress=False).history
    assert np.allclose(pairs["train_loss"], every["train_loss"].to_numpy().reshape(2, 3).mean(1), rtol=1e-6)


def test_evaluate_matches_a_hand_computed_mean():
    model = fresh().eval()
    va = arrays(7, size=12, seed=4)
    va["label"] = np.abs(va["label"])  # all labelled: then every loss part is a per-sample mean
    c = cfg(crop=None, val_batch_size=3)
    got = train.evaluate(model, va, c, torch.device("cpu"))
    loss, parts = model.training_loss(batches.make_batch(va, np.arange(7), torch.device("cpu")))
    assert got["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert got["color"] == pytest.approx(parts["color"], rel=1e-5)
    logits = model.classify(color.rgb_to_gray(color.to_float(va["rgb"])))
    top1 = (logits.argmax(1).numpy() == va["label"]).mean()
    assert got["top1"] == pytest.approx(top1)


def test_training_reduces_the_loss_and_bf16_runs(tmp_path):
    torch.manual_seed(0)
    tr = arrays(16, size=12)
    h = train.fit(fresh(), tr, None, cfg(steps=40, crop=None, flip=False, lr=3e-2), tmp_path / "a",
                  progress=False).history
    assert h["train_loss"].tail(5).mean() < h["train_loss"].head(5).mean()
    h16 = train.fit(fresh(), tr, None, cfg(steps=3, bf16=True), tmp_path / "b", progress=False).history
    assert np.isfinite(h16["train_loss"]).all()


# --- presets and the command line ------------------------------------------------------------
def preset(model, profile, model_cfg=None, **overrides):
    model_cfg = experiments.module(model).default_config(profile) if model_cfg is None else model_cfg
    return experiments.train_config(model, profile, model_cfg, **overrides)


def test_presets_follow_the_model_working_size():
    from colorlab.models import iizuka2016

    gpu = preset("iizuka2016", "gpu")
    assert (gpu.steps, gpu.batch_size, gpu.optimizer, gpu.crop, gpu.data_size) == (200_000, 128, "adadelta", 224, 256)
    cpu = preset("iizuka2016", "cpu")
    assert cpu.crop == iizuka2016.PRESETS["cpu"].train_size and cpu.data_size > cpu.crop
    assert preset("iizuka2016", "smoke", steps=3).steps == 3
    with pytest.raises(ColorlabError, match="unknown profile 'laptop'"):
        experiments.train_config("iizuka2016", "laptop")


@pytest.mark.parametrize("native", [True, False])
def test_cpu_presets_use_bf16_only_where_the_cpu_has_it(monkeypatch, native):
    assert isinstance(train.native_bf16(), bool)
    monkeypatch.setattr(train, "native_bf16", lambda: native)
    for model in ("iizuka2016", "koalarization2017"):
        assert preset(model, "cpu").bf16 is native
        assert preset(model, "gpu").bf16 is False and preset(model, "smoke").bf16 is False
    assert preset("iizuka2016", "cpu", bf16=not native).bf16 is (not native)  # an explicit choice wins


def test_iizuka_smoke_preset_trains(tmp_path):
    from colorlab.models import iizuka2016

    mcfg = iizuka2016.PRESETS["smoke"]
    c = preset("iizuka2016", "smoke", mcfg, steps=4, eval_every=4, device="cpu")
    tr, va = arrays(10, size=c.data_size, n_classes=mcfg.n_classes), arrays(4, size=c.data_size, seed=3)
    torch.manual_seed(0)
    result = train.fit(iizuka2016.build(mcfg), tr, va, c, tmp_path, progress=False)
    last = result.history.iloc[-1]
    assert np.isfinite(last[["train_color", "train_class", "val_loss", "val_top1"]].astype(float)).all()


def test_set_overrides_reach_the_right_config():
    from colorlab.models import iizuka2016

    over = {"width": "0.5", "train.lr": "0.1", "bf16": "true", "use_global": False, "betas": "[0.8, 0.9]"}
    m, t = experiments.apply_overrides(iizuka2016.PRESETS["smoke"], train.TrainConfig(), over)
    assert (m.width, m.use_global, t.lr, t.bf16, t.betas) == (0.5, False, 0.1, True, (0.8, 0.9))
    with pytest.raises(ColorlabError, match="no such field"):
        experiments.apply_overrides(iizuka2016.PRESETS["smoke"], train.TrainConfig(), {"nope": 1})
    with pytest.raises(ColorlabError, match="no field 'width' in the train config"):
        experiments.apply_overrides(iizuka2016.PRESETS["smoke"], train.TrainConfig(), {"train.width": 1})
