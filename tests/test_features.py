"""Cheng et al. 2015 per-pixel features: patch, DAISY, smoothed semantic maps, their concatenation."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.feature import daisy

from colorlab import features

LOCAL = features.FeatureConfig(levels=("patch", "daisy"))


def _gray(h=40, w=52, seed=0) -> np.ndarray:
    """A smooth random image with some structure (a gradient, a disc) and noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    g = 0.3 + 0.4 * xx / w + 0.2 * ((yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (h / 4) ** 2) + 0.05 * rng.random((h, w))
    return np.clip(g, 0, 1).astype(np.float32)


class StandInParser:
    """Deterministic 'class probabilities' from the gray value (a softmax of cosines)."""

    key = "stand-in"

    def __init__(self, n_classes=47):
        self.n_classes = n_classes

    def predict_proba(self, gray):
        z = np.stack([np.cos(3.0 * k * gray) for k in range(self.n_classes)], axis=-1)  # (H, W, N)
        e = np.exp(z)
        return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def test_dims_match_the_paper_and_follow_the_levels():
    assert features.dims(features.FeatureConfig()) == {"patch": 49, "daisy": 32, "semantic": 47, "total": 128}
    assert features.dims(LOCAL) == {"patch": 49, "daisy": 32, "total": 81}
    assert features.dims(features.FeatureConfig(levels=("patch",), patch_size=5))["total"] == 25
    # levels always come out in the order patch | daisy | semantic
    assert features.FeatureConfig(levels=["semantic", "patch"]).levels == ("patch", "semantic")
    with pytest.raises(ValueError, match="subset"):
        features.FeatureConfig(levels=("patch", "gist"))
    with pytest.raises(ValueError, match="odd"):
        features.FeatureConfig(patch_size=6)


def test_patch_values_are_the_hand_indexed_neighbourhood():
    g = _gray(11, 13)
    x = features.low_level(g, 7)
    assert x.shape == (11, 13, 49) and x.dtype == np.float32
    i, j = 5, 6  # interior: the plain 7x7 window, row by row
    np.testing.assert_array_equal(x[i, j], g[i - 3 : i + 4, j - 3 : j + 4].ravel())

    def mirror(k, n):  # reflect padding: -1 -> 1, n -> n - 2
        return -k if k < 0 else 2 * (n - 1) - k if k >= n else k

    for i, j in [(0, 0), (1, 12), (10, 3)]:  # borders, checked one value at a time
        want = [g[mirror(a, 11), mirror(b, 13)] for a in range(i - 3, i + 4) for b in range(j - 3, j + 4)]
        np.testing.assert_array_equal(x[i, j], want)


def test_daisy_is_32d_everywhere_finite_and_aligned_with_skimage():
    g = _gray(64, 70)
    d = features.mid_level(g, LOCAL)
    assert d.shape == (64, 70, 32) and d.dtype == np.float32
    assert np.isfinite(d).all()
    assert np.isfinite(features.mid_level(np.full((9, 9), 0.5, np.float32), LOCAL)).all()  # flat, tiny
    # far from the border padding changes nothing: pixel (i, j) is skimage's descriptor centred there
    r = LOCAL.daisy_radius
    ref = daisy(g, step=1, radius=r, rings=1, histograms=3, orientations=8,
                normalization=LOCAL.daisy_normalization)  # (64-2r, 70-2r, 32)
    m = features.context_radius(LOCAL)
    np.testing.assert_allclose(d[m:-m, m:-m], ref[m - r : -(m - r), m - r : -(m - r)], atol=1e-5)


def test_extract_concatenates_the_levels_in_order():
    g = _gray(30, 34)
    cfg = features.FeatureConfig()
    x = features.extract(g, cfg, StandInParser())
    assert x.shape == (30, 34, 128) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., :49], features.low_level(g, 7))
    np.testing.assert_array_equal(x[..., 49:81], features.mid_level(g, cfg))
    np.testing.assert_allclose(x[..., 81:], features.high_level(g, StandInParser(), cfg), atol=1e-6)
    np.testing.assert_array_equal(features.extract(g, features.FeatureConfig(levels=("daisy",))), x[..., 49:81])


def test_tile_with_context_radius_margin_equals_whole_image():
    g = _gray(120, 64)
    m = features.context_radius(LOCAL)
    whole = features.extract(g, LOCAL)
    r0, r1 = 50, 60  # interior tile
    tile = features.extract(g[r0 - m : r1 + m], LOCAL)[m : m + r1 - r0]
    np.testing.assert_array_equal(tile, whole[r0:r1])
    top = features.extract(g[: 10 + m], LOCAL)[:10]  # tile at the image border
    np.testing.assert_array_equal(top, whole[:10])


def test_semantic_maps_are_probabilities_after_smoothing():
    g = _gray(37, 45)
    p = features.high_level(g, StandInParser(), features.FeatureConfig())
    assert p.shape == (37, 45, 47)
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)


def test_smoothing_keeps_an_edge_of_the_guide_and_removes_noise_elsewhere():
    h, w, edge = 32, 64, 32
    probs = np.zeros((h, w, 2), np.float32)
    probs[:, :edge, 0] = probs[:, edge:, 1] = 1.0  # class 0 left of the edge, class 1 right
    step = np.where(np.arange(w) < edge, 0.1, 0.9).astype(np.float32)[None].repeat(h, 0)
    flat = np.full((h, w), 0.5, np.float32)
    kw = dict(sigma_spatial=20.0, sigma_color=0.1)
    guided = features.smooth(step, probs, **kw)
    blurred = features.smooth(flat, probs, **kw)
    # an edge in the guide keeps the classes apart; without it they bleed across
    assert guided[:, edge - 2, 0].min() > 0.95 and guided[:, edge + 1, 0].max() < 0.05
    assert blurred[:, edge + 1, 0].min() > 0.2
    # on a flat guide noise is averaged away
    rng = np.random.default_rng(0)
    noisy = rng.dirichlet(np.ones(4), size=(h, w)).astype(np.float32)
    smoothed = features.smooth(flat, noisy, **kw)
    assert smoothed.std(axis=(0, 1)).max() < 0.3 * noisy.std(axis=(0, 1)).min()
    np.testing.assert_allclose(smoothed.sum(-1), 1.0, atol=1e-5)


def test_semantic_level_needs_a_matching_parser():
    g = _gray(16, 16)
    with pytest.raises(ValueError, match="load_parser"):
        features.extract(g, features.FeatureConfig())
    with pytest.raises(ValueError, match="semantic_classes=8"):
        features.extract(g, features.FeatureConfig(), StandInParser(8))
    maps = features.high_level(g, StandInParser(8), features.FeatureConfig(semantic_classes=8))
    x = features.extract(g, features.FeatureConfig(semantic_classes=8), semantic=maps)
    np.testing.assert_array_equal(x[..., -8:], maps)
    with pytest.raises(ValueError, match="semantic maps"):
        features.extract(g, features.FeatureConfig(), semantic=maps)


@pytest.mark.parametrize(
    "bad, err, match",
    [
        (np.zeros((8, 8), np.uint8), TypeError, "divide uint8 by 255"),
        (np.zeros((8, 8, 3), np.float32), ValueError, r"\(H, W\)"),
        (np.full((8, 8), 2.0, np.float32), ValueError, r"\[0, 1\]"),
        (np.full((8, 8), np.nan, np.float32), ValueError, "finite"),
    ],
)
def test_bad_gray_input_is_a_clear_error(bad, err, match):
    with pytest.raises(err, match=match):
        features.extract(bad, LOCAL)


def test_odd_and_tiny_images():
    for h, w in [(1, 9), (5, 3), (17, 31)]:
        x = features.extract(_gray(h, w), LOCAL)
        assert x.shape == (h, w, 81) and np.isfinite(x).all()
