"""Iizuka et al. 2016: shapes at any size, lightness kept, style transfer, BN folding, Eq. 6 and its gradients."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from colorlab import color, configs
from colorlab.models import iizuka2016 as iz

SMOKE = iz.PRESETS["smoke"]


def _net(cfg=SMOKE, seed=0):
    torch.manual_seed(seed)
    return iz.build(cfg)


def _randomise_bn(net: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.2)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.3)


def _calibrate_bn(net: nn.Module, gray: torch.Tensor) -> nn.Module:
    """Running statistics of `gray` (as after training), so eval-mode activations carry the input's signal."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 1.0
    with torch.no_grad():
        net.train()(gray)
    return net.eval()


def _smooth_gray(b, h, w, seed=0):
    """Photo-like gray: smooth, in [0.15, 0.85] so that little of the output is clipped."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(b, 1, max(2, h // 6), max(2, w // 6), generator=g), size=(h, w), mode="bilinear")
    return 0.15 + 0.7 * x


def _unclipped(rgb: torch.Tensor) -> torch.Tensor:
    return ((rgb > 1e-4) & (rgb < 1 - 1e-4)).all(dim=1, keepdim=True)  # (B, 1, H, W)


@pytest.mark.parametrize("hw", [(32, 32), (37, 53), (64, 48), (8, 8), (5, 90)])
def test_shapes_at_any_size(hw):
    net = _net().eval()
    gray = torch.rand(2, 1, *hw)
    rgb = net.colorize(gray)
    assert rgb.shape == (2, 3, *hw) and rgb.dtype == torch.float32
    assert float(rgb.min()) >= 0 and float(rgb.max()) <= 1
    if hw[0] % 8 == 0 and hw[1] % 8 == 0:
        out, logits = net(gray)
        assert out.shape == (2, 2, hw[0] // 2, hw[1] // 2)
        assert logits.shape == (2, SMOKE.n_classes)


@pytest.mark.parametrize("hw", [(48, 48), (37, 53)])
def test_colorize_keeps_the_input_lightness(hw):
    net = _net().eval()
    _randomise_bn(net)  # a net whose output is far from neutral grey
    gray = _smooth_gray(2, *hw)
    rgb = net.colorize(gray)
    assert float(color.rgb_to_lab(rgb)[:, 1:].abs().mean()) > 1  # it did colour something
    keep = _unclipped(rgb)
    assert keep.float().mean() > 0.5
    L_out = color.rgb_to_lab(rgb.double())[:, :1]
    L_in = color.gray_to_L(gray.double())
    assert float((L_out - L_in).abs()[keep].max()) < 1e-3


def test_style_transfer_changes_colours_not_lightness():
    net = _calibrate_bn(_net(), torch.cat([_smooth_gray(1, 32, 32, seed=s) ** (1 + s) for s in range(8)]))
    gray, style = _smooth_gray(1, 40, 56, seed=0), _smooth_gray(1, 72, 24, seed=5) ** 3
    own, styled = net.colorize(gray), net.colorize(gray, global_from=style)
    assert float((own - styled).abs().max()) > 1e-3
    keep = _unclipped(own) & _unclipped(styled)
    L_own, L_styled = (color.rgb_to_lab(x.double())[:, :1] for x in (own, styled))
    assert float((L_own - L_styled).abs()[keep].max()) < 1e-3
    # the global branch alone decides: a global image equal to the input reproduces the default
    assert torch.allclose(net.colorize(gray, global_from=gray), own, atol=1e-6)


def test_fold_batchnorm_matches_eval_mode():
    cfg = replace(SMOKE, width=0.125)
    net = _net(cfg)
    _randomise_bn(net)
    net.eval()
    folded = iz.fold_batchnorm(net)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())  # the original is untouched
    gray = torch.rand(3, 1, 40, 48)
    with torch.no_grad():
        (out, logits), (fout, flogits) = net(gray), folded(gray)
    assert (out - fout).abs().max() < 1e-4 and (logits - flogits).abs().max() < 1e-4
    assert (net.colorize(gray) - folded.colorize(gray)).abs().max() < 1e-4


def test_classification_loss_reaches_only_classifier_global_and_low_level():
    net = _net().train()
    gray = torch.rand(4, 1, 32, 32)
    _, logits = net(gray)
    F.cross_entropy(logits, torch.tensor([0, 3, 7, 99])).backward()

    def grad_norm(module):
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    for name in ("mid", "fusion", "colorization"):
        assert grad_norm(getattr(net, name)) == 0, name
    for name in ("low", "global_conv", "global_fc", "classifier"):
        assert grad_norm(getattr(net, name)) > 0, name


def test_training_loss_is_eq6():
    net = _net().train()
    torch.manual_seed(3)
    rgb = torch.rand(4, 3, 32, 32)
    labels = torch.tensor([1, 5, -1, 2])
    loss, parts = net.training_loss({"rgb": rgb, "label": labels})
    assert set(parts) == {"color", "class", "total"}
    assert parts["color"] > 0 and parts["class"] > 0
    assert parts["total"] == pytest.approx(parts["color"] + SMOKE.alpha * parts["class"], rel=1e-5)
    assert loss.item() == pytest.approx(parts["total"], rel=1e-6)
    loss.backward()
    # no labels: colour only; alpha 0: colour only
    _, parts = net.training_loss({"rgb": rgb, "label": torch.full((4,), -1)})
    assert parts["class"] == 0 and parts["total"] == pytest.approx(parts["color"])
    _, parts = iz.build(replace(SMOKE, alpha=0.0)).training_loss({"rgb": rgb, "label": labels})
    assert parts["class"] == 0
    with pytest.raises(ValueError, match="n_classes"):
        net.training_loss({"rgb": rgb, "label": torch.tensor([0, 1, 2, 100])})


def test_training_target_is_normalised_ab_at_half_size():
    net = _net()
    rgb = torch.rand(2, 3, 32, 32)
    target = F.interpolate(net._target(rgb, color.rgb_to_lab(rgb)), size=(16, 16), mode="area")
    assert target.shape == (2, 2, 16, 16) and 0 <= float(target.min()) and float(target.max()) <= 1
    # a perfect prediction has zero colour loss: plug the target in as the output
    net.forward = lambda gray, global_gray=None: (target, None)
    _, parts = net.training_loss({"rgb": rgb, "label": torch.full((2,), -1)})
    assert parts["color"] == pytest.approx(0, abs=1e-10)


def test_l1_colour_loss_is_an_option_and_mse_the_paper_default():
    assert iz.Config().color_loss == "mse" and all(c.color_loss == "mse" for c in iz.PRESETS.values())
    rgb = torch.rand(2, 3, 32, 32)
    labels = torch.full((2,), -1)
    mse, l1 = (iz.build(replace(SMOKE, color_loss=name)) for name in ("mse", "l1"))
    out = torch.full((2, 2, 16, 16), 0.5)  # the same output from both: the losses differ only in the colour term
    for net in (mse, l1):
        net.forward = lambda gray, global_gray=None: (out, None)
    target = F.interpolate(mse._target(rgb, color.rgb_to_lab(rgb)), size=(16, 16), mode="area")
    _, parts = mse.training_loss({"rgb": rgb, "label": labels})
    assert parts["color"] == pytest.approx(float(((out - target) ** 2).mean()), rel=1e-5)
    _, parts = l1.training_loss({"rgb": rgb, "label": labels})
    assert parts["color"] == pytest.approx(float((out - target).abs().mean()), rel=1e-5)
    with pytest.raises(ValueError, match="color_loss"):
        iz.Config(color_loss="huber")
    # a run saved before the option existed (its config has no color_loss) loads with the paper's loss
    saved = {k: v for k, v in asdict(iz.PRESETS["cpu"]).items() if k != "color_loss"}
    assert configs.config_from_dict(iz.Config, saved).color_loss == "mse"


def test_baseline_without_global_features():
    cfg = replace(SMOKE, use_global=False, alpha=0.0)
    net = _net(cfg)
    assert not hasattr(net, "global_conv") and isinstance(net.fusion[0], nn.Conv2d) and net.fusion[0].kernel_size == (3, 3)
    loss, parts = net.train().training_loss({"rgb": torch.rand(2, 3, 32, 32), "label": torch.tensor([0, 1])})
    loss.backward()
    assert parts["class"] == 0
    net.eval()
    assert net.colorize(torch.rand(1, 1, 37, 29)).shape == (1, 3, 37, 29)
    with pytest.raises(ValueError, match="global"):
        net.colorize(torch.rand(1, 1, 32, 32), global_from=torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="classification"):
        net.classify(torch.rand(1, 1, 32, 32))
    assert iz.count_parameters(net)["global"] == 0 and iz.count_parameters(net)["classification"] == 0


@pytest.mark.parametrize("space", ["yuv", "rgb"])
def test_other_colour_spaces_keep_Y(space):
    net = _net(replace(SMOKE, out_space=space))
    out, _ = net(torch.rand(2, 1, 32, 32))
    assert out.shape[1] == (3 if space == "rgb" else 2)
    loss, _ = net.train().training_loss({"rgb": torch.rand(2, 3, 32, 32), "label": torch.tensor([0, 1])})
    loss.backward()
    net.eval()
    _randomise_bn(net)
    gray = _smooth_gray(1, 33, 41)
    rgb = net.colorize(gray)
    keep = _unclipped(rgb)
    assert keep.float().mean() > 0.5
    Y = color.rgb_to_yuv(rgb.double())[:, :1]
    assert float((Y - gray.double()).abs()[keep].max()) < 1e-4


def test_global_branch_takes_any_global_size():
    for g in (40, 64, 17):
        net = _net(replace(SMOKE, global_size=g)).eval()
        out, logits = net(torch.rand(2, 1, 32, 48))
        assert out.shape == (2, 2, 16, 24) and logits.shape == (2, SMOKE.n_classes)
        assert net.classify(torch.rand(3, 1, 50, 20)).shape == (3, SMOKE.n_classes)


def test_bf16_autocast_inference_keeps_lightness():
    net = iz.fold_batchnorm(_net())
    gray = _smooth_gray(1, 32, 40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rgb = net.colorize(gray)
    assert rgb.dtype == torch.float32
    keep = _unclipped(rgb)
    L_out = color.rgb_to_lab(rgb.double())[:, :1]
    assert float((L_out - color.gray_to_L(gray.double())).abs()[keep].max()) < 1e-3


def test_presets_and_paper_parameter_counts():
    assert set(iz.PRESETS) == {"paper", "gpu", "cpu", "smoke"}
    assert iz.PRESETS["paper"].train_size == 224 and iz.PRESETS["paper"].global_size == 224
    assert iz.PRESETS["paper"] == iz.Config() and iz.PRESETS["paper"].alpha == pytest.approx(1 / 300)
    net = iz.build(iz.PRESETS["paper"])
    counts = iz.count_parameters(net)
    assert counts == iz.PAPER_PARAMETERS
    assert net.global_fc[0][0].in_features == 7 * 7 * 512  # Fig. 2: 7 x 7 x 512 into FC-1024
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    with pytest.raises(ValueError, match="out_space"):
        iz.Config(out_space="hsv")
