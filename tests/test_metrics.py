"""colorlab.metrics on cases small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.color import rgb2lab
from skimage.metrics import structural_similarity

from colorlab import metrics


def _photo(h=32, w=48, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _const(rgb, h=8, w=8) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


# --- PSNR ----------------------------------------------------------------------------
def test_psnr_of_a_constant_error():
    truth = _const((100, 100, 100))
    assert metrics.psnr(truth + 5, truth) == pytest.approx(20 * math.log10(255 / 5))  # MSE = 25
    one_channel = truth.copy()
    one_channel[..., 1] += 5  # MSE = 25 / 3 over all channels
    assert metrics.psnr(one_channel, truth) == pytest.approx(10 * math.log10(255**2 / (25 / 3)))


def test_psnr_identical_is_inf_and_uint8_does_not_wrap():
    a = _photo()
    assert metrics.psnr(a, a) == math.inf
    black, white = _const((0, 0, 0)), _const((255, 255, 255))
    assert metrics.psnr(black, white) == pytest.approx(0.0)  # 0 - 255 must not wrap around in uint8


def test_inputs_are_checked():
    a = _photo()
    with pytest.raises(TypeError, match="uint8"):
        metrics.psnr(a / 255.0, a)
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(a[:-1], a)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        metrics.ssim(a[..., 0], a[..., 0])


# --- SSIM ----------------------------------------------------------------------------
def test_ssim_matches_scikit_image_and_bounds():
    a, b = _photo(seed=1), _photo(seed=2)
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    expected = structural_similarity(a, b, channel_axis=-1, data_range=255)
    assert metrics.ssim(a, b) == pytest.approx(expected)
    assert abs(metrics.ssim(a, b)) < 0.1  # independent noise is not similar
    near = np.clip(a.astype(int) + np.random.default_rng(3).integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    for pred, truth in ((near, a), (a[:, ::-1].copy(), a), (near[:17, :40], a[:17, :40])):  # similar, odd sizes
        want = structural_similarity(pred, truth, channel_axis=-1, data_range=255)
        assert metrics.ssim(pred, truth) == pytest.approx(want, abs=1e-9)


def test_ssim_on_tiny_images():
    a, b = _photo(5, 6, seed=1), _photo(5, 6, seed=2)
    assert metrics.ssim(a, b) == pytest.approx(structural_similarity(a, b, win_size=5, channel_axis=-1, data_range=255))
    assert metrics.ssim(_photo(4, 9), _photo(4, 9)) == pytest.approx(1.0)  # window 3
    with pytest.raises(ValueError, match="at least 3 x 3"):
        metrics.ssim(_photo(2, 9), _photo(2, 9))


# --- AuC -------------------------------------------------------------------------------
@pytest.mark.parametrize("d, within", [(0, 151), (10, 141), (10.5, 140), (150, 1), (150.01, 0), (400, 0)])
def test_auc_of_a_constant_error_is_the_share_of_thresholds_at_least_d(d, within):
    assert metrics.auc_from_errors(np.full((4, 4), d)) == pytest.approx(within / 151)


def test_auc_curve_is_cumulative():
    t, share = metrics.auc_curve(np.array([0.0, 2.0, 2.5, 200.0]), max_threshold=5)
    np.testing.assert_array_equal(t, np.arange(6))
    np.testing.assert_allclose(share, [0.25, 0.25, 0.5, 0.75, 0.75, 0.75])
    assert metrics.auc_from_errors(np.array([0.0, 2.0, 2.5, 200.0]), max_threshold=5) == pytest.approx(share.mean())
    with pytest.raises(ValueError):
        metrics.auc_curve(np.array([]))
    with pytest.raises(ValueError):
        metrics.auc_curve(np.array([1.0]), max_threshold=2.5)


def test_auc_ab_red_against_gray():
    red, gray = _const((255, 0, 0)), _const((128, 128, 128))
    chroma = np.hypot(*rgb2lab(red[:1, :1])[0, 0, 1:])  # scikit-image's ab of pure red, ~104.6
    assert metrics.ab_error(red, gray) == pytest.approx(np.full((8, 8), chroma), abs=1e-2)  # grey has |ab| < 1e-3 here
    expected = np.mean(np.arange(151) >= chroma)  # thresholds 105..150 hold the error
    assert metrics.auc_ab(red, gray) == pytest.approx(expected)
    assert metrics.auc_ab(red, red) == 1.0
    assert metrics.auc_ab(red, gray, max_threshold=100) == 0.0


def test_ab_error_agrees_with_scikit_image_per_pixel():
    a, b = _photo(seed=3), _photo(seed=4)
    expected = np.linalg.norm(rgb2lab(a)[..., 1:] - rgb2lab(b)[..., 1:], axis=-1)
    np.testing.assert_allclose(metrics.ab_error(a, b), expected, atol=1e-6)


# --- colourfulness -----------------------------------------------------------------------
def test_colorfulness_of_gray_is_zero():
    gray = np.repeat(_photo()[..., :1], 3, axis=-1)
    assert metrics.colorfulness(gray) == 0.0


def test_colorfulness_of_two_colours_by_hand():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:2] = (255, 0, 0)  # rg = 255, yb = 127.5
    img[2:] = (0, 0, 255)  # rg = 0,   yb = -255
    sigma = math.hypot(127.5, 191.25)  # population std of rg and of yb
    mu = math.hypot(127.5, -63.75)  # their means
    assert metrics.colorfulness(img) == pytest.approx(sigma + 0.3 * mu)
    assert metrics.colorfulness(_const((255, 0, 0))) == pytest.approx(0.3 * math.hypot(255, 127.5))


def test_colorfulness_ratio():
    truth = _photo()
    gray = np.repeat(truth[..., :1], 3, axis=-1)
    assert metrics.colorfulness_ratio(truth, truth) == pytest.approx(1.0)
    assert metrics.colorfulness_ratio(gray, truth) == 0.0
    assert math.isnan(metrics.colorfulness_ratio(truth, gray))  # a grey truth: undefined
    pale = (truth.astype(int) // 2 + 64).astype(np.uint8)  # same hues, half the spread
    assert metrics.colorfulness_ratio(pale, truth) == pytest.approx(0.5, abs=0.01)


def test_image_metrics_keys_and_values():
    a, b = _photo(seed=5), _photo(seed=6)
    m = metrics.image_metrics(a, b)
    assert list(m) == ["psnr", "ssim", "auc", "colorfulness_ratio"]
    assert m["psnr"] == pytest.approx(metrics.psnr(a, b)) and 0 < m["auc"] < 1
    assert all(isinstance(v, float) for v in m.values())


# --- accuracy ----------------------------------------------------------------------------
LOGITS = np.array(
    [
        [0.1, 0.9, 0.0, 0.0],  # label 1: top-1
        [0.5, 0.1, 0.3, 0.2],  # label 2: second
        [0.4, 0.3, 0.2, 0.1],  # label 3: last
        [0.0, 0.0, 0.0, 0.0],  # label 0: tied with everyone
    ]
)
LABELS = np.array([1, 2, 3, 0])


def test_topk_on_a_small_table():
    acc = metrics.topk_accuracy(LOGITS, LABELS, ks=(1, 2, 3, 4))
    # ties count against the model: the constant row ranks 4th
    assert acc == {1: 0.25, 2: 0.5, 3: 0.5, 4: 1.0}


def test_topk_takes_torch_and_skips_unlabelled():
    acc = metrics.topk_accuracy(torch.tensor(LOGITS), torch.tensor([1, 2, -1, -1]), ks=(1, 5))
    assert acc == {1: 0.5, 5: 1.0}
    assert math.isnan(metrics.topk_accuracy(LOGITS, np.full(4, -1))[1])
    with pytest.raises(ValueError, match="out of range"):
        metrics.topk_accuracy(LOGITS, np.array([0, 1, 2, 4]))
    with pytest.raises(ValueError):
        metrics.topk_accuracy(LOGITS[0], LABELS)


# --- confidence intervals ------------------------------------------------------------------
def test_summarize_uses_the_t_distribution():
    mean, low, high = metrics.summarize([1, 2, 3, 4, 5])
    half = 2.776445105 * math.sqrt(2.5) / math.sqrt(5)  # t_{0.975, 4} from the tables, sample sd sqrt(2.5)
    assert (mean, low, high) == pytest.approx((3.0, 3.0 - half, 3.0 + half))


def test_summarize_edge_cases():
    assert metrics.summarize([2.0, np.nan, np.inf, 4.0])[0] == pytest.approx(3.0)  # non-finite left out
    m, lo, hi = metrics.summarize([7.0])
    assert m == 7.0 and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(v) for v in metrics.summarize([]))
    assert metrics.summarize(np.full(10, 0.5)) == (0.5, 0.5, 0.5)


def test_summarize_covers_the_true_mean_about_95_percent():
    rng = np.random.default_rng(0)
    hits = sum(lo <= 1.0 <= hi for _, lo, hi in (metrics.summarize(rng.normal(1.0, 2.0, 6)) for _ in range(2000)))
    assert 0.93 < hits / 2000 < 0.97  # a normal-approximation interval would cover ~0.88 at n = 6


@pytest.mark.parametrize("shape", [(16, 24, 3), (3, 5, 3), (128, 96, 3)])
def test_a_kept_truth_scores_every_prediction_as_the_bare_array_does(shape):
    rng = np.random.default_rng(7)
    truth_rgb = rng.integers(0, 256, shape, dtype=np.uint8)
    gray_rgb = np.repeat(truth_rgb[..., :1], 3, axis=-1)  # colourfulness 0: the ratio is NaN either way
    for rgb in (truth_rgb, gray_rgb):
        kept = metrics.Truth(rgb)
        for seed in range(3):  # one Truth for several predictions of the same photo
            pred = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
            assert metrics.image_metrics(pred, kept) == pytest.approx(metrics.image_metrics(pred, rgb), nan_ok=True, rel=0, abs=0)
            np.testing.assert_array_equal(metrics.ab_error(pred, kept), metrics.ab_error(pred, rgb))
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.image_metrics(np.zeros((4, 4, 3), np.uint8), metrics.Truth(np.zeros((4, 5, 3), np.uint8)))
    with pytest.raises(TypeError, match="truth must be uint8"):
        metrics.Truth(np.zeros((4, 4, 3), np.float32))
