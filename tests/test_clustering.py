"""Adaptive image clustering (Cheng et al., journal Alg. 3) on synthetic reference sets."""

import numpy as np
import pytest

from colorlab import clustering


def test_global_descriptor_shape_and_content():
    dark = np.full((40, 60), 0.1, np.float32)
    bright = np.full((17, 23), 0.9, np.float32)
    d_dark, d_bright = clustering.global_descriptor(dark), clustering.global_descriptor(bright)
    assert d_dark.shape == d_bright.shape == (clustering.THUMB**2 + clustering.GRAY_BINS,)
    assert np.allclose(d_dark[: clustering.THUMB**2], 0.1) and np.allclose(d_bright[: clustering.THUMB**2], 0.9)
    hist = d_dark[clustering.THUMB**2 :]
    assert hist.sum() == pytest.approx(1.0) and hist.argmax() == int(0.1 * clustering.GRAY_BINS)
    with pytest.raises(ValueError, match="gray"):
        clustering.global_descriptor(np.zeros((4, 4, 3)))


def test_semantic_histogram_counts_argmax():
    probs = np.zeros((2, 5, 3), np.float32)
    probs[:, :2, 0] = 1.0  # 4 pixels of class 0
    probs[:, 2:, 2] = 0.9  # 6 pixels of class 2
    hist = clustering.semantic_histogram(probs)
    assert np.allclose(hist, [0.4, 0.0, 0.6])


def _two_groups(n_a=30, n_b=20, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(-3, 0.3, size=(n_a, 4))
    b = rng.normal(+3, 0.3, size=(n_b, 4))
    return np.concatenate([a, b]).astype(np.float32), np.arange(n_a + n_b) < n_a


def test_easy_images_leave_and_layers_stop_at_mu():
    desc, is_a = _two_groups()
    hist = np.zeros((len(desc), 0), np.float32)
    trained = []

    def train(members, index):
        trained.append(members.copy())
        return f"net{index}"

    def error(net, members):  # group A is colourised at 40 dB, group B at 20 dB
        return np.where(is_a[members], -40.0, -20.0)

    clusters = clustering.adaptive_clustering(desc, hist, train, error, n0=2, mu=8, epsilon=-30.0, max_layers=5)
    top = [c for c in clusters if c.layer == 0]
    assert len(top) == 2
    assert sorted(len(c.members) for c in top) == [20, 30]
    assert all(len(set(is_a[c.members])) == 1 for c in top), "k-means must separate the two obvious groups"
    # A leaves after the top layer; B (20 images) is clustered again into 20 // 8 = 2 clusters each layer,
    # never gets below epsilon, so layers go on until max_layers
    for c in clusters[2:]:
        assert not is_a[c.members].any()
    assert {c.layer for c in clusters} == set(range(5))
    assert [c.net for c in clusters] == [f"net{i}" for i in range(len(clusters))]
    assert np.array_equal(clusters[0].errors, error(None, clusters[0].members))


def test_loop_ends_when_fewer_than_mu_images_remain():
    desc, is_a = _two_groups()

    def error(net, members):  # every image but 5 of group B is colourised well
        bad = np.flatnonzero(~is_a)[:5]
        return np.where(np.isin(members, bad), -20.0, -40.0)

    clusters = clustering.adaptive_clustering(desc, np.zeros((50, 0)), lambda m, i: i, error, n0=2, mu=8, epsilon=-30.0)
    assert {c.layer for c in clusters} == {0}, "5 images left < mu = 8: no second layer"


def test_small_clusters_get_no_net_and_their_images_stay():
    desc, is_a = _two_groups(n_a=30, n_b=4)
    clusters = clustering.adaptive_clustering(desc, np.zeros((34, 0)), lambda m, i: i,
                                              lambda net, m: np.full(len(m), -40.0), n0=2, mu=8, epsilon=-30.0)
    # layer 0: B (4 images) is below mu, so no net; A leaves; then 4 images < mu: done
    assert len(clusters) == 1 and len(clusters[0].members) == 30


def test_nearest_uses_semantic_histogram():
    centres = np.zeros((2, 3), np.float32)  # globally identical clusters ...
    histograms = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)  # ... semantically different
    desc = np.full(3, 0.1, np.float32)
    assert clustering.nearest(desc, np.array([0.1, 0.9]), centres, histograms, semantic_weight=1.0) == 1
    assert clustering.nearest(desc, np.array([0.9, 0.1]), centres, histograms, semantic_weight=1.0) == 0
    # without the histogram, the global descriptor decides
    centres[1] = 5.0
    assert clustering.nearest(desc, np.array([0.1, 0.9]), centres, histograms, semantic_weight=0.0) == 0


def test_standardizer_keeps_constant_columns_finite():
    x = np.array([[1.0, 2.0], [3.0, 2.0]], np.float32)
    z = clustering.Standardizer.fit(x)(x)
    assert np.allclose(z[:, 0], [-1, 1]) and np.allclose(z[:, 1], 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="mu"):
        clustering.adaptive_clustering(np.zeros((3, 2)), np.zeros((3, 0)), None, None, n0=1, mu=0, epsilon=0)
