"""Deep Koalarization: Table 1 shapes, any input size, the kept lightness, the embedding switch,
and the per-image embedding cache."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from colorlab import color, embeddings, experiments
from colorlab.models import koalarization2017 as koala
from colorlab.models import mobilenet_v2 as mn

RANDOM = "mobilenet_v2_random"
SMOKE = replace(koala.PRESETS["smoke"], classifier=RANDOM)


def _model(cfg=SMOKE, seed=0):
    torch.manual_seed(seed)
    return koala.build(cfg).eval()


@pytest.fixture(scope="module")
def random_classifier():
    return mn.load(mn.ClassifierConfig(RANDOM))


def _no_classifier(monkeypatch):
    monkeypatch.setattr(mn, "load", lambda cfg=None: pytest.fail("the classifier was loaded"))


def test_paper_preset_is_table_1():
    net = _model(koala.PRESETS["paper"])
    convs = [m for m in net.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 128, 256, 256, 512, 512, 256]
    assert [c.stride[0] for c in convs] == [2, 1, 2, 1, 2, 1, 1, 1]
    fusion = net.fusion[0]
    assert (fusion.in_channels, fusion.out_channels, fusion.kernel_size) == (1257, 256, (1, 1))  # 1001 + 256
    dec = [m for m in net.decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in dec] == [128, 64, 64, 32, 2]
    assert isinstance(net.decoder[-2], torch.nn.Tanh) and isinstance(net.decoder[-1], torch.nn.Upsample)
    cfg = koala.Config()
    assert (cfg.train_size, cfg.embedding, cfg.use_embedding) == (224, "logits", True)


def test_forward_shapes_at_224():
    net = _model(replace(koala.PRESETS["cpu"], classifier=RANDOM))
    seen = {}
    net.encoder.register_forward_hook(lambda m, i, o: seen.update(encoder=o.shape))
    with torch.no_grad():
        out = net(torch.rand(2, 1, 224, 224) * 2 - 1, torch.randn(2, 1001))
    assert seen["encoder"] == (2, 64, 28, 28)  # H/8, 256 * width channels
    assert out.shape == (2, 2, 224, 224) and out.abs().max() < 1  # tanh


@pytest.mark.parametrize("h, w", [(37, 53), (8, 8), (5, 7)])
def test_odd_sizes(h, w, random_classifier):
    net = _model()
    net.set_classifier(random_classifier)
    gray = torch.rand(2, 1, h, w)
    with torch.no_grad():
        out = net(torch.rand(2, 1, h, w), torch.randn(2, 1001))
        assert out.shape == (2, 2, 8 * -(-h // 8), 8 * -(-w // 8))  # the encoder rounds up at each stride 2
        assert net.colorize(gray).shape == (2, 3, h, w)
        assert net.colorize(gray, native=True).shape == (2, 3, h, w)
        loss, parts = net.training_loss({"rgb": torch.rand(2, 3, h, w), "embedding": torch.randn(2, 1001)})
    assert torch.isfinite(loss) and parts["color"] == pytest.approx(float(loss))


def test_colorize_keeps_the_input_lightness():
    net = _model(replace(SMOKE, use_embedding=False))
    last = net.decoder[-3]  # the 2-channel conv before tanh
    with torch.no_grad():  # a constant, in-gamut prediction: ab = 128 tanh(0.1)
        last.weight.zero_()
        last.bias.fill_(0.1)
        gray = 0.2 + 0.6 * torch.rand(3, 1, 41, 29)
        rgb = net.colorize(gray)
    lab = color.rgb_to_lab(rgb.double())
    assert (lab[:, :1] - color.gray_to_L(gray.double())).abs().max() < 1e-3
    assert lab[:, 1:].sub(128 * np.tanh(0.1)).abs().max() < 0.05


def test_colorize_embeds_the_photo_the_encoder_sees(random_classifier):
    """Training embeds the training-size photos; colourising embeds the photo resized for the encoder
    (train_size; with native, its own size rounded to 8), not the photo as it was passed in."""
    seen = []

    class Recording(torch.nn.Module):
        def forward(self, rgb, size):
            seen.append((tuple(rgb.shape[-2:]), size))
            return random_classifier(rgb, size=size)

    net = _model()
    net.set_classifier(Recording())
    gray = torch.rand(1, 1, 90, 130)
    with torch.no_grad():
        net.colorize(gray)
        net.colorize(gray, native=True)
    side = SMOKE.train_size
    assert seen == [((side, side), SMOKE.embed_size), ((88, 128), SMOKE.embed_size)]


def test_loss_is_the_papers_mse_on_ab_over_128():
    net = _model(replace(SMOKE, use_embedding=False))
    rgb = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        lab = color.rgb_to_lab(rgb)
        out = net(color.koala_L_to_input(lab[:, :1]))
        expected = ((out - lab[:, 1:] / 128) ** 2).sum() / (2 * 2 * 32 * 32)  # 1/(2HW) sum, batch mean
        loss, _ = net.training_loss({"rgb": rgb})
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_l1_loss_is_an_option_and_mse_the_paper_default():
    assert koala.Config().color_loss == "mse" and all(c.color_loss == "mse" for c in koala.PRESETS.values())
    net = _model(replace(SMOKE, use_embedding=False, color_loss="l1"))
    rgb = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        lab = color.rgb_to_lab(rgb)
        expected = (net(color.koala_L_to_input(lab[:, :1])) - lab[:, 1:] / 128).abs().mean()
        loss, _ = net.training_loss({"rgb": rgb})
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="color_loss"):
        koala.Config(color_loss="huber")


def test_embedding_switch(monkeypatch):
    with_emb, without = _model(), _model(replace(SMOKE, use_embedding=False))
    assert with_emb.fusion[0].in_channels == without.fusion[0].in_channels + 1001
    L = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        a, b = with_emb(L, torch.zeros(1, 1001)), with_emb(L, 5 * torch.randn(1, 1001))
        assert not torch.allclose(a, b)  # the fused embedding changes the colours
        with pytest.raises(ValueError, match="embedding"):
            with_emb(L)
        _no_classifier(monkeypatch)  # the ablation never needs the classifier
        assert without.colorize(torch.rand(1, 1, 20, 20)).shape == (1, 3, 20, 20)
        without.training_loss({"rgb": torch.rand(2, 3, 32, 32)})


def test_softmax_embedding_ignores_a_shift_of_the_logits():
    L, e = torch.rand(1, 1, 16, 16), torch.randn(1, 1001)
    soft, logits = _model(replace(SMOKE, embedding="softmax")), _model(replace(SMOKE, embedding="logits"))
    with torch.no_grad():
        torch.testing.assert_close(soft(L, e), soft(L, e + 3))
        assert not torch.allclose(logits(L, e), logits(L, e + 3))


def test_training_uses_the_precomputed_embedding(monkeypatch, random_classifier):
    net = _model()
    classifier = random_classifier
    rgb = torch.rand(2, 3, 32, 32)
    gray = color.rgb_to_gray(rgb)
    emb = embeddings.embed_gray(classifier, gray, SMOKE.embed_size)
    with torch.no_grad():
        net.set_classifier(classifier)
        computed, _ = net.training_loss({"rgb": rgb})  # no "embedding": computed from the gray image
        _no_classifier(monkeypatch)
        net._classifier.clear()
        given, _ = net.training_loss({"rgb": rgb, "embedding": emb})
    torch.testing.assert_close(computed, given, rtol=1e-4, atol=1e-6)


def test_preset_falls_back_to_the_random_classifier_only_at_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path / "no-data"))
    from colorlab import train as training
    assert experiments.module("koalarization2017").default_config("smoke").classifier == RANDOM
    assert experiments.module("koalarization2017").default_config("cpu").classifier == "mobilenet_v2"  # and loading it says how to get it
    assert replace(experiments.module("koalarization2017").default_config("smoke"), classifier="mobilenet_v2") == koala.PRESETS["smoke"]


def test_config_is_checked():
    with pytest.raises(ValueError, match="embedding"):
        koala.Config(embedding="probabilities")
    with pytest.raises(ValueError, match="classifier"):
        koala.Config(classifier="vgg16")
    with pytest.raises(ValueError):
        koala.Config(width=0)


# --- the embedding cache ------------------------------------------------------------
def test_embeddings_are_of_the_gray_image_and_cached_once(monkeypatch):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 24, 24, 3), dtype=np.uint8)
    cfg = mn.ClassifierConfig(RANDOM)
    emb, key = embeddings.cached(cfg, rgb, "toy-set", size=64, progress=False)
    assert emb.shape == (5, 1001) and emb.dtype == np.float32
    direct = embeddings.embed_gray(mn.load(cfg), color.rgb_to_gray(color.to_float(rgb)), 64).numpy()
    np.testing.assert_allclose(emb, direct, rtol=1e-5, atol=1e-5)
    gray_u8 = color.to_uint8(color.gray_to_rgb(color.rgb_to_gray(color.to_float(rgb))))
    from_gray = embeddings.compute(mn.load(cfg), gray_u8, 64)
    assert np.corrcoef(from_gray.ravel(), emb.ravel())[0, 1] > 0.99  # colour never reaches the classifier

    monkeypatch.setattr(embeddings, "compute", lambda *a, **k: pytest.fail("embeddings recomputed"))
    again, key2 = embeddings.cached(cfg, rgb, "toy-set", size=64, progress=False)
    assert key2 == key
    np.testing.assert_array_equal(again, emb)
    for other in ((cfg, "another-set", 64), (cfg, "toy-set", 96), (mn.ClassifierConfig(RANDOM, seed=1), "toy-set", 64)):
        assert embeddings.cache_path(*other) != embeddings.cache_path(cfg, "toy-set", 64)


@pytest.mark.slow
def test_smoke_training_run_is_reused(tmp_path, monkeypatch):
    """The whole path with no dataset: smoke photos, random classifier embeddings, the shared loop."""
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path / "no-data"))
    from colorlab import train as training

    tcfg = experiments.train_config("koalarization2017", "smoke", SMOKE, steps=6, eval_every=3, ckpt_every=3)
    run = experiments.get("koalarization2017", "smoke", model_cfg=SMOKE, train_cfg=tcfg, progress=False)
    assert run.done and len(run.history) and np.isfinite(run.history["train_loss"]).all()
    assert "embedding" in run.config["data"]["extras"]
    gray = torch.rand(1, 1, 45, 30)
    assert run.model.colorize(gray).shape == (1, 3, 45, 30)
    monkeypatch.setattr(embeddings, "compute", lambda *a, **k: pytest.fail("embeddings recomputed"))
    monkeypatch.setattr(training, "fit", lambda *a, **k: pytest.fail("trained twice"))
    assert experiments.get("koalarization2017", "smoke", model_cfg=SMOKE, train_cfg=tcfg, progress=False).key == run.key


def test_benchmark_reports_seconds_per_size():
    out = experiments.module("koalarization2017").benchmark(sizes=(32, 48), preset="smoke", repeats=1, random_classifier=True)
    assert set(out["seconds"]) == {"32", "48"} and all(v > 0 for v in out["seconds"].values())
    assert out["classifier"] == RANDOM
