"""The vividness extension: Iizuka et al.'s net with Zhang et al. 2016's ab classification, rebalancing and readout."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from colorlab import color
from colorlab.models import iizuka2016
from colorlab.models import iizuka_zhang2016 as zhang

pytestmark = pytest.mark.usefixtures("one_thread")


def model(**kw):
    torch.manual_seed(0)
    return zhang.build(dataclasses.replace(zhang.PRESETS["smoke"], **kw))


def test_bins_are_the_gamut_cells_of_a_10_unit_grid():
    bins, table = zhang.gamut_bins(10.0, 110.0)
    assert 200 < len(bins) <= 313  # Zhang et al.: 313 of the 23 x 23 cells; our sampling of the gamut finds fewer
    assert (bins == 0).all(1).any()  # the neutral cell
    assert table.shape == (23 * 23,) and int(table.max()) < len(bins)
    rgb = torch.rand(1, 3, 16, 16, dtype=torch.float64)  # every real colour's cell is a bin
    ab = color.rgb_to_lab(rgb)[0, 1:].reshape(2, -1).T
    d = torch.cdist(ab.float(), bins).min(1).values
    assert (d <= 10 / 2 ** 0.5 + 1e-4).all()


def test_soft_targets_are_the_five_nearest_bins_with_gaussian_weights():
    m = model()
    ab = color.rgb_to_lab(0.25 + 0.5 * torch.rand(2, 3, 5, 7))[:, 1:]  # inside the gamut, away from its edge
    target, nearest = m.soft_targets(ab)
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)
    d2 = torch.cdist(flat, m.bins).square()
    dist, idx = d2.topk(5, largest=False)
    expected = torch.zeros_like(d2).scatter_(1, idx, torch.softmax(-dist / 50, 1))
    got = target.permute(0, 2, 3, 1).reshape(-1, len(m.bins))
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.equal(nearest.flatten(), idx[:, 0])
    edge, _ = m.soft_targets(color.rgb_to_lab(torch.rand(2, 3, 5, 7))[:, 1:])  # saturated colours too
    assert torch.allclose(edge.sum(1), torch.ones(2, 5, 7)) and (edge >= 0).all()


def test_rebalancing_weights_average_to_one_under_the_prior():
    m = model()
    m.counts[: len(m.bins) // 2] = torch.arange(len(m.bins) // 2).float() + 1
    w = m.class_weights()
    prior = m.counts / m.counts.sum()
    kernel = torch.exp(-torch.cdist(m.bins, m.bins).square() / 50)
    smooth = kernel @ prior
    smooth = smooth / smooth.sum()
    assert float((smooth * w).sum()) == pytest.approx(1.0, abs=1e-5)
    assert w[0] > w[len(m.bins) // 2 - 1]  # rarer bins weigh more
    none = model(rebalance=1.0)
    assert torch.allclose(none.class_weights(), torch.ones(len(none.bins)))


def test_annealed_mean_reads_a_confident_bin_and_sharpens_with_temperature():
    m = model()
    logits = torch.full((1, len(m.bins), 1, 1), -20.0)
    logits[0, 7] = 20.0
    assert torch.allclose(m.annealed_mean(logits)[0, :, 0, 0], m.bins[7], atol=1e-3)
    two = torch.full((1, len(m.bins), 1, 1), -50.0)
    two[0, 3], two[0, 9] = 1.0, 0.5
    near = dataclasses.replace(m.cfg, temperature=0.01)
    sharp = zhang.build(near)
    sharp.bins = m.bins
    assert torch.allclose(sharp.annealed_mean(two)[0, :, 0, 0], m.bins[3], atol=1e-3)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_sparse_loss_is_the_rebalanced_cross_entropy_against_the_dense_soft_target(layout):
    m = model().to(memory_format=layout)
    m.counts[:40] = torch.arange(40).float() + 1
    rgb = torch.rand(3, 3, 16, 24)
    loss, parts = m.eval().training_loss({"rgb": rgb})
    lab = color.rgb_to_lab(rgb)
    logits, _ = m(color.L_to_gray(lab[:, :1]))
    ab = torch.nn.functional.interpolate(lab[:, 1:], size=logits.shape[-2:], mode="area")
    target, nearest = m.soft_targets(ab)
    ce = -(target * torch.log_softmax(logits, dim=1)).sum(1)  # (B, h, w)
    assert parts["color"] == pytest.approx(float((m.class_weights()[nearest] * ce).mean()), rel=1e-5)


def test_it_trains_counts_training_pixels_only_and_keeps_the_lightness():
    m = model()
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    batch = {"rgb": torch.rand(4, 3, 32, 32), "label": torch.tensor([0, 1, -1, 2])}
    losses = []
    for _ in range(15):
        loss, parts = m.training_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(parts["color"])
    assert losses[-1] < losses[0]
    assert float(m.counts.sum()) == 15 * 4 * 16 * 16
    m.eval()
    before = m.counts.clone()
    m.training_loss(batch)
    assert torch.equal(m.counts, before)  # validation does not count
    gray = torch.rand(2, 1, 37, 45)
    out = m.colorize(gray)
    assert out.shape == (2, 3, 37, 45)
    kept = (color.rgb_to_gray(out) - gray).abs() < 2e-2  # exact but where a vivid colour leaves the sRGB gamut
    assert kept.float().mean() > 0.9
    assert isinstance(m, iizuka2016.Iizuka2016) and m.classify(gray).shape == (2, 100)


def test_only_lab_output():
    with pytest.raises(ValueError, match="out_space='lab'"):
        zhang.Config(out_space="yuv")
    with pytest.raises(ValueError, match="classifies ab bins"):  # its loss is the classification, not Eq. 6's term
        zhang.Config(color_loss="l1")


def test_a_readout_at_another_temperature_shares_the_weights_and_leaves_the_model_alone():
    from colorlab import temperature

    m = model().eval()
    mean = temperature.with_temperature(m, 1.0)
    assert mean.cfg.temperature == 1.0 and m.cfg.temperature == zhang.PRESETS["smoke"].temperature
    assert all(a is b for a, b in zip(mean.parameters(), m.parameters()))
    logits = torch.randn(1, len(m.bins), 2, 2)
    expected = torch.einsum("bqhw,qc->bchw", torch.softmax(logits, 1), m.bins)  # T = 1: the distribution's mean
    assert torch.allclose(mean.annealed_mean(logits), expected, atol=1e-5)
    assert not torch.allclose(m.annealed_mean(logits), expected, atol=1e-3)
    gray = torch.rand(1, 1, 16, 16)
    assert not torch.allclose(mean.colorize(gray), m.colorize(gray))


def test_the_temperatures_of_one_run_share_its_logits_inside_shared_maps_and_colour_as_alone():
    from colorlab import temperature
    from colorlab.features import memo

    m = model().eval()
    calls = []
    m.colorization.register_forward_hook(lambda *_: calls.append(1))  # the last block (a copy shares it) runs
    gray = torch.rand(2, 1, 24, 32)
    temperatures = (0.5, 0.7, 1.0)
    alone = [temperature.with_temperature(m, t).colorize(gray) for t in temperatures]
    assert len(calls) == 3
    calls.clear()
    with memo.shared_maps() as kept:
        together = [temperature.with_temperature(m, t).colorize(gray) for t in temperatures]
        assert len(calls) == 1 and kept.hits == 2
        temperature.with_temperature(m, 0.5).colorize(torch.rand(2, 1, 24, 32))  # another photo: run again
        temperature.with_temperature(model(neighbours=4).eval(), 0.5).colorize(gray)  # other weights: run again
        assert kept.misses == 3
    for t, a, b in zip(temperatures, alone, together):
        assert torch.equal(a, b), t
    assert not torch.equal(together[0], together[2])  # each temperature its own colours
    m.train()
    with memo.shared_maps() as kept:
        for _ in range(2):
            temperature.with_temperature(m, 0.5)(gray)  # training mode: never kept
    assert kept.hits == kept.misses == 0


def test_the_temperature_readouts_scores_are_keyed_by_its_code_and_the_network(monkeypatch):
    from colorlab import keys, temperature

    before = temperature.tag(0.5)
    asked = []
    monkeypatch.setattr(keys, "code_digest", lambda producers, root=None: asked.append(list(producers)) or "edited")
    assert temperature.tag(0.5) != before and asked == [["colorlab.temperature"]]
    assert "colorlab.models.iizuka_zhang2016" in keys.closure(["colorlab.temperature"])  # the network it reads out
    assert "colorlab.temperature" not in keys.closure(["colorlab.readout"])  # a gain's scores do not depend on it
