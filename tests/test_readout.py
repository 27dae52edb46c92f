"""Readouts of trained weights: a chroma gain and the training scale, scored and cached like any method."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from colorlab import budget, claims, color, experiments, readout, study


class _Painter:
    """A stand-in colouriser: the photo's lightness with a fixed, in-gamut ab at every pixel; it records
    the size of each gray image it was given."""

    def __init__(self, ab=(12.0, -8.0)):
        self.ab, self.seen = ab, []

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(gray.shape[-2:]))
        ab = torch.tensor(self.ab).view(1, 2, 1, 1).expand(gray.shape[0], 2, *gray.shape[-2:])
        return color.from_working(gray, ab, "lab")


def _gray(h=48, w=80, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.35 + 0.3 * torch.rand(2, 1, h, w, generator=g)  # mid-tones: a, b of +-25 stay in gamut


def test_the_identity_readout_is_the_models_own_and_gain_1_round_trips():
    painter, gray = _Painter(), _gray()
    own = painter.colorize(gray)
    assert torch.equal(readout.Readout().wrap(painter).colorize(gray), own)
    # the other path at gain 1 (a shorter side the photo does not exceed: no resize) reads the model's colours
    # back as Lab and rebuilds them from the photo's lightness
    again = readout.Readout(shorter=10_000).wrap(painter).colorize(gray)
    torch.testing.assert_close(again, own, atol=2e-3, rtol=0)


def test_a_gain_past_the_gamut_is_clipped_to_it():
    painter, gray = _Painter(ab=(60.0, 60.0)), _gray()  # a saturated orange: x2 leaves the sRGB gamut
    own = color.rgb_to_lab(painter.colorize(gray))[:, 1:].norm(dim=1).mean()
    vivid = color.rgb_to_lab(readout.Readout(gain=2.0).wrap(painter).colorize(gray))[:, 1:].norm(dim=1).mean()
    assert own < vivid < 1.9 * own  # more vivid, but held inside the gamut: well short of twice the chroma


def test_a_gain_scales_the_chrominance_and_keeps_the_photos_lightness():
    painter, gray = _Painter(), _gray()
    out = color.rgb_to_lab(readout.Readout(gain=1.5).wrap(painter).colorize(gray))  # (2, 3, H, W)
    assert out[:, 1].mean().item() == pytest.approx(1.5 * 12.0, abs=0.05)
    assert out[:, 2].mean().item() == pytest.approx(1.5 * -8.0, abs=0.05)
    torch.testing.assert_close(out[:, :1], color.gray_to_L(gray), atol=0.05, rtol=0)
    flat = color.rgb_to_lab(readout.Readout(gain=0.0).wrap(painter).colorize(gray))
    assert flat[:, 1:].abs().max().item() < 0.05  # gain 0 is the gray baseline


def test_the_training_scale_runs_the_net_small_and_returns_the_photo_at_full_size():
    painter, gray = _Painter(), _gray(48, 80)
    out = readout.Readout(shorter=16).wrap(painter).colorize(gray)
    assert painter.seen == [(16, 27)] and out.shape == (2, 3, 48, 80)
    torch.testing.assert_close(color.rgb_to_lab(out)[:, :1], color.gray_to_L(gray), atol=0.05, rtol=0)
    readout.Readout(shorter=64).wrap(painter).colorize(gray)
    assert painter.seen[-1] == (48, 80)  # never enlarged


@pytest.mark.parametrize("bad", [dict(gain=-0.5), dict(gain=float("nan")), dict(gain=float("inf")), dict(shorter=4),
                                 dict(shorter=64.5)])
def test_a_readout_refuses_nonsense(bad):
    with pytest.raises(ValueError):
        readout.Readout(**bad)


def test_each_readout_has_its_own_file_name():
    tags = {readout.Readout(gain=g, shorter=s).tag for g in (1.0, 1.5) for s in (None, 64)}
    assert len(tags) == 4 and all("/" not in t and " " not in t for t in tags)
    assert readout.Readout(shorter=64.0) == readout.Readout(shorter=64)  # one readout, one cache file


def test_a_readouts_label_names_it_and_its_gain_reads_back_exactly():
    assert readout.Readout(gain=1.5).label == "gain 1.5"
    assert readout.Readout(gain=2.0, shorter=64).label == "gain 2 shorter 64"
    assert readout.Readout(gain=1.0000001).label != readout.Readout().label  # not taken for the own colours
    for g in (1.0, 1.25, 1.2345671, 1.0000001, 0.1 + 0.2):
        assert float(readout.number(g)) == g and float(readout.Readout(gain=g).label.split()[1]) == g


def test_a_readout_forwards_the_models_own_keywords():
    seen = {}

    class Styled(_Painter):
        def colorize(self, gray, global_from=None):
            seen["global_from"] = global_from
            return super().colorize(gray)

    wrapped = readout.Readout(gain=1.5).wrap(Styled())
    style = _gray(seed=1)
    wrapped.colorize(_gray(), global_from=style)
    assert seen["global_from"] is style and wrapped.takes("global_from") and not wrapped.takes("native")


def test_scores_are_cached_in_the_runs_folder_and_the_identity_is_the_runs_own(monkeypatch):
    run = experiments.get("iizuka2016", "smoke", seed=0, progress=False)
    s = study.load_eval_set("smoke", "val", 4)
    own = readout.score(run, readout.Readout(), s)
    pd.testing.assert_frame_equal(own, study.evaluate_run(run, s))
    vivid = readout.score(run, readout.Readout(gain=1.5), s)
    assert len(list(run.dir.glob(f"{readout.Readout(gain=1.5).tag}-*.csv"))) == 1
    assert (vivid["colorfulness_ratio"] > own["colorfulness_ratio"]).all()
    close = readout.score(run, readout.Readout(gain=1.5000001), s)  # the same tag, another readout: scored anew
    assert len(list(run.dir.glob(f"{readout.Readout(gain=1.5).tag}-*.csv"))) == 2
    assert not close["colorfulness_ratio"].equals(own["colorfulness_ratio"])
    monkeypatch.setattr(study, "evaluate", lambda *a, **k: pytest.fail("scored again"))
    pd.testing.assert_frame_equal(readout.score(run, readout.Readout(gain=1.5), s), vivid)


def test_the_training_scale_is_the_decoded_size_else_the_nets_own():
    run = experiments.get("iizuka2016", "smoke", seed=0, progress=False)
    assert readout.training_scale(run) == run.train_config["data_size"]

    class Bare:  # a run whose photos were decoded at the net's working size
        train_config = {"data_size": None}
        model = run.model

    assert readout.training_scale(Bare()) == run.model.cfg.train_size


def test_the_sweep_labels_each_readout_and_its_targets_group_by_it():
    run = experiments.get("iizuka2016", "smoke", seed=0, progress=False)
    s = study.load_eval_set("smoke", "val", 4)
    readouts = {"gain 1": readout.Readout(), "gain 2": readout.Readout(gain=2.0), "small": readout.Readout(shorter=16)}
    sweep = budget.readout_sweep([run], readouts, [s])
    assert list(sweep["readout"]) == list(readouts) and list(sweep["gain"]) == [1.0, 2.0, 1.0]
    assert sweep["colorfulness_ratio"].iloc[1] > sweep["colorfulness_ratio"].iloc[0]
    assert list(budget.vivid_targets(sweep)["readout"]) == list(readouts)
    goals = budget.targets(sweep, {"psnr_vs_gray": 0.5})
    assert list(goals["readout"]) == list(readouts) and list(goals["model"]) == ["iizuka2016"] * 3


def test_a_claim_can_pair_a_readout_with_the_same_runs():
    runs = [experiments.get("iizuka2016", "smoke", seed=0, progress=False)]
    s = study.load_eval_set("smoke", "val", 4)
    name = readout.Readout(gain=readout.CLAIMED_GAIN).label
    table = claims.claims_on_each_set({"full": runs, name: runs}, "iizuka2016", [s],
                                      readouts={name: readout.Readout(gain=readout.CLAIMED_GAIN)})
    assert set(table["a"]) == {name} and set(table["b"]) == {"full"}
    assert (table.set_index("metric").loc["colorfulness_error", "diff"]) != 0  # the readout was applied


class _CountingNet(torch.nn.Module):
    """A network stand-in (it has weights, so its readouts may share its output): ab from a 1x1 convolution of
    the lightness; it counts its `colorize` calls."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv, self.calls = torch.nn.Conv2d(1, 2, 1), 0

    @torch.no_grad()
    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return color.from_working(gray, 20 * torch.tanh(self.conv(gray)), "lab")


def test_the_gains_of_one_net_share_its_output_inside_shared_maps_and_colour_as_alone():
    from colorlab.features import memo

    net, other, gray = _CountingNet(), _CountingNet(seed=1), _gray()
    gains = [readout.Readout(gain=g) for g in (0.75, 1.5, 2.0)] + [readout.Readout(gain=1.5, shorter=16)]
    alone = [r.wrap(net).colorize(gray) for r in gains]
    assert net.calls == 4  # outside the block every readout runs the net
    net.calls = 0
    with memo.shared_maps() as kept:
        together = [r.wrap(net).colorize(gray) for r in gains]
        assert net.calls == 2  # once at the photo's size for the three gains, once at the training scale
        readout.Readout(gain=1.5).wrap(other).colorize(gray)  # another network: its own output
        assert other.calls == 1 and kept.misses == 3 and kept.hits == 2
        readout.Readout(gain=1.5).wrap(net).colorize(_gray(seed=2))  # another photo: the net runs again
        assert net.calls == 3
        with torch.no_grad():
            net.conv.bias.add_(1.0)  # changed weights are another network
        readout.Readout(gain=1.5).wrap(net).colorize(gray)
        assert net.calls == 4
    for a, b in zip(alone, together):
        assert torch.equal(a, b)


def test_a_readout_of_a_plain_colouriser_or_with_arguments_is_never_kept():
    from colorlab.features import memo

    painter, gray = _Painter(), _gray()
    with memo.shared_maps() as kept:
        for _ in range(2):
            readout.Readout(gain=1.5).wrap(painter).colorize(gray)  # no weights to key it by
    assert len(painter.seen) == 2 and kept.hits == kept.misses == 0

    class Styled(_CountingNet):
        def colorize(self, gray, global_from=None):
            return super().colorize(gray)

    styled = Styled()
    with memo.shared_maps() as kept:
        for _ in range(2):
            readout.Readout(gain=1.5).wrap(styled).colorize(gray, global_from=gray)
    assert styled.calls == 2 and kept.hits == 0
