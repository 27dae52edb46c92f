"""Cheng et al. 2015: the per-pixel net, tiled colourisation, joint bilateral refinement, the clustered model,
the pixel samples, the runs of its experiment and notebook 01's study."""

from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest
import torch

from colorlab import color, experiments, features, runs, weights
from colorlab import train as training
from colorlab.experiments import cheng2015 as exp
from colorlab.experiments import cheng2015_study as study01
from colorlab.experiments import pixels
from colorlab.models import cheng2015

LOCAL = cheng2015.Config(levels=("patch", "daisy"))  # no parser needed


class StandInParser:
    """A deterministic stand-in for the scene parser: 47 'class probabilities' from the gray value."""

    n_classes = 47
    key = "stand-in"

    def predict_proba(self, gray):
        z = np.stack([np.cos(3.0 * k * gray) for k in range(self.n_classes)], axis=-1)  # (H, W, 47)
        e = np.exp(z)
        return (e / e.sum(-1, keepdims=True)).astype(np.float32)


@pytest.fixture(autouse=True)
def _tmp_dirs_one_thread(tmp_path, monkeypatch):
    """Private cache and runs; one torch thread (tiny MLPs gain nothing from more, and a shared
    machine's threads then do not wait on each other)."""
    monkeypatch.setenv("COLORLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLORLAB_RUNS", str(tmp_path / "runs"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _net(cfg=LOCAL, seed=0, parser=None):
    torch.manual_seed(seed)
    net = cheng2015.build(cfg).eval()
    if parser is not None:
        net.set_parser(parser)
    return net


def _photo(h=48, w=64, seed=0):
    """A small gray image with edges and texture, (H, W) float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.5 + 0.3 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + 0.1 * rng.standard_normal((h, w))
    img[:, w // 2 :] *= 0.5
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.mark.parametrize("levels", [("patch",), ("patch", "daisy"), ("patch", "daisy", "semantic")])
def test_net_input_matches_feature_dims(levels):
    cfg = cheng2015.Config(levels=levels)
    d = features.dims(cheng2015.feature_config(cfg))["total"]
    net = cheng2015.build(cfg)
    linears = [m for m in net.mlp if isinstance(m, torch.nn.Linear)]
    assert linears[0].in_features == d
    assert [m.out_features for m in linears] == [64, 64, 64, 2]  # sec. 4: three hidden layers of 64
    assert net(torch.rand(5, d)).shape == (5, 2)


def test_paper_preset_is_128_inputs():
    assert cheng2015.input_dim(cheng2015.PRESETS["paper"]) == 128  # sec. 4: 49 + 32 + 47
    assert set(cheng2015.PRESETS) == {"paper", "gpu", "cpu", "smoke"}
    assert set(exp.TRAIN) == set(exp.DATA) == set(cheng2015.PRESETS)


def test_training_reduces_loss_on_a_synthetic_pixel_set(tmp_path):
    rng = np.random.default_rng(0)
    cfg = cheng2015.Config(levels=("patch",))
    x = rng.random((2000, 49), dtype=np.float32)
    uv = np.stack([np.tanh(x[:, :10].sum(1) - 5), x[:, 24] - x[:, 30]], 1).astype(np.float32)
    training.seed_everything(0)
    net = cheng2015.build(cfg)
    tcfg = training.TrainConfig(steps=300, batch_size=128, optimizer="adam", lr=3e-3, flip=False,
                                eval_every=300, ckpt_every=300)
    with torch.no_grad():
        before = float(cheng2015.least_squares(net(torch.from_numpy(x)), torch.from_numpy(uv)))
    result = training.fit(net, {"x": x, "uv": uv}, {"x": x[:500], "uv": uv[:500]}, tcfg, tmp_path / "run", progress=False)
    with torch.no_grad():
        after = float(cheng2015.least_squares(result.model(torch.from_numpy(x)), torch.from_numpy(uv)))
    assert bool(result.model.stats_ready), "inputs are standardised from the first batch"
    assert after < 0.3 * before


@pytest.mark.parametrize("size", [(31, 47), (48, 64), (5, 9)])
def test_colorize_keeps_gray_as_Y_and_size(size):
    net = _net()
    with torch.no_grad():
        net.mlp[-1].bias.copy_(torch.tensor([0.2, -0.3]))  # a clear colour cast, mostly in gamut
    gray = torch.from_numpy(np.stack([_photo(*size, seed=s) for s in (0, 1)]))[:, None]  # (2, 1, H, W)
    rgb = net.colorize(gray)
    assert rgb.shape == (2, 3, *size)
    inside = ((rgb > 1e-4) & (rgb < 1 - 1e-4)).all(1)  # (2, H, W): no channel clipped
    assert inside.float().mean() > 0.5
    y = color.rgb_to_yuv(rgb)[:, 0]
    assert torch.allclose(y[inside], gray[:, 0][inside], atol=1e-5)
    assert color.rgb_to_yuv(rgb)[:, 1:].abs().mean() > 0.01, "the output has colour"


def test_zero_chroma_gives_the_gray_image():
    net = _net(replace(LOCAL, refine=False))
    with torch.no_grad():
        net.mlp[-1].weight.zero_()
        net.mlp[-1].bias.zero_()
    gray = torch.from_numpy(_photo())[None, None]
    assert torch.allclose(net.colorize(gray), gray.expand(-1, 3, -1, -1), atol=1e-6)


def test_tiled_equals_untiled_with_all_levels():
    cfg = cheng2015.Config(refine=False)
    gray = _photo(45, 38)
    whole = _net(cfg, parser=StandInParser()).chroma(gray)
    tiled_net = _net(replace(cfg, tile_pixels=38 * 4), parser=StandInParser())  # tiles of 4 rows
    tiled = tiled_net.chroma(gray)
    assert whole.shape == (45, 38, 2)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_work_size_predicts_small_and_returns_full_size():
    net = _net(replace(LOCAL, work_size=16))
    uv = net.chroma(_photo(48, 64))
    assert uv.shape == (48, 64, 2) and np.isfinite(uv).all()


def test_bilateral_refinement_denoises_flat_regions_but_keeps_edges():
    h, w = 40, 40
    gray = np.full((h, w), 0.2, np.float32)
    gray[:, w // 2 :] = 0.8  # a gray-level edge down the middle
    clean = np.where(np.arange(w)[None, :, None] < w // 2, 0.15, -0.15) * np.ones((h, w, 2), np.float32)
    noisy = (clean + np.random.default_rng(0).normal(0, 0.05, clean.shape)).astype(np.float32)
    out = cheng2015.refine_uv(gray, noisy, cheng2015.Config(sigma_s=3.0, sigma_r=0.08))
    left, right = (slice(5, -5), slice(3, w // 2 - 3)), (slice(5, -5), slice(w // 2 + 3, -3))
    for region in (left, right):
        assert out[region].std(axis=(0, 1)).max() < 0.4 * noisy[region].std(axis=(0, 1)).min()
    # the columns either side of the edge keep their own chroma (no bleeding across it)
    step = out[:, w // 2 - 1, 0].mean() - out[:, w // 2, 0].mean()
    assert step > 0.9 * 0.3
    assert np.abs(out - clean).mean() < np.abs(noisy - clean).mean()


def _clustered(n_nets=2):
    cfg = replace(LOCAL, clusters=n_nets, refine=False)
    model = cheng2015.build(cfg).eval()
    with torch.no_grad():
        for k, net in enumerate(model.nets):  # net k predicts one constant chroma
            net.mlp[-1].weight.zero_()
            net.mlp[-1].bias.copy_(torch.tensor([0.5 if k == 0 else -0.5, 0.0]))
    return model


def test_clustered_model_picks_the_nearest_cluster():
    from colorlab import clustering

    model = _clustered()
    dark, bright = np.full((32, 32), 0.15, np.float32), np.full((32, 32), 0.85, np.float32)
    descs = np.stack([clustering.global_descriptor(dark), clustering.global_descriptor(bright)])
    scaler = clustering.Standardizer.fit(descs)
    with torch.no_grad():
        model.desc_mean.copy_(torch.from_numpy(scaler.mean))
        model.desc_std.copy_(torch.from_numpy(scaler.std))
        model.centres.copy_(torch.from_numpy(scaler(descs)))
    dark_test = dark + 0.05 * np.random.default_rng(0).random(dark.shape).astype(np.float32)
    assert model.select(dark_test, None) == 0 and model.select(bright - 0.05, None) == 1
    u_dark = model.chroma(dark_test)[..., 0].mean()
    u_bright = model.chroma(bright - 0.05)[..., 0].mean()
    assert u_dark == pytest.approx(0.5 * color.U_MAX, rel=1e-4) and u_bright == pytest.approx(-0.5 * color.U_MAX, rel=1e-4)


@pytest.mark.parametrize("clusters", [0, 3])
def test_checkpoint_round_trip(tmp_path, clusters):
    cfg = cheng2015.Config(levels=("patch", "semantic"), clusters=clusters)
    model = _net(cfg, seed=3, parser=StandInParser())
    with torch.no_grad():
        for b in model.buffers():
            if b.is_floating_point():
                b.add_(torch.rand_like(b))
    path = tmp_path / "final.pt"
    torch.save({"model": model.state_dict(), "config": asdict(cfg)}, path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in ckpt["config"].items()}  # as JSON gives it
    again = cheng2015.build(cheng2015.Config(**ckpt["config"]))
    again.load_state_dict(ckpt["model"])
    again.eval().set_parser(StandInParser())
    gray = torch.from_numpy(_photo(20, 30))[None, None]
    assert type(again) is type(model)
    assert torch.equal(again.colorize(gray), model.colorize(gray))


def test_bad_input_is_named():
    net = _net()
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net.colorize(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        net.colorize(torch.full((1, 1, 8, 8), 2.0))


def test_pixel_columns_select_levels():
    n = 3
    s = pixels.PixelSamples(x=np.arange(n * 128, dtype=np.float32).reshape(n, 128), uv=np.zeros((n, 2), np.float32),
                     image=np.zeros(n, np.int32), gray=np.zeros(n, np.float32), truth=np.zeros((n, 3), np.uint8),
                     descriptors=np.zeros((1, 80), np.float32), histograms=np.zeros((1, 47), np.float32),
                     levels=("patch", "daisy", "semantic"))
    cols = s.columns(cheng2015.Config(levels=("patch", "semantic")))
    assert np.array_equal(cols, np.r_[0:49, 81:128])
    with pytest.raises(ValueError, match="levels"):
        replace(s, levels=("patch",)).columns(cheng2015.Config())


SMOKE_LOCAL = replace(cheng2015.PRESETS["smoke"], levels=("patch", "daisy"), pixels_per_image=32)


def test_pixel_samples_are_cached_and_consistent(monkeypatch):
    spec = exp.DATA["smoke"][1]  # the 9 smoke val photos: no download, no parser for these levels
    s = pixels.pixel_samples(SMOKE_LOCAL, spec, progress=False)
    n_images = len(s.descriptors)
    assert s.x.shape == (32 * n_images, 81) and s.uv.shape == (32 * n_images, 2)
    assert np.bincount(s.image).tolist() == [32] * n_images
    assert np.abs(s.uv).max() <= 1.0 + 1e-6, "targets are U / U_MAX, V / V_MAX"
    gray = color.rgb_to_gray(color.to_float(s.truth[None, :, None]))[0, 0, :, 0].numpy()
    np.testing.assert_allclose(gray, s.gray, atol=1e-6)
    np.testing.assert_allclose(s.x[:, 24], s.gray, atol=1e-6)  # the patch's centre is the pixel itself
    monkeypatch.setattr(features, "extract", lambda *a, **k: pytest.fail("features recomputed"))
    again = pixels.pixel_samples(SMOKE_LOCAL, spec, progress=False)
    assert again.key == s.key and np.array_equal(again.x, s.x)
    other = replace(SMOKE_LOCAL, sample_seed=1)
    monkeypatch.undo()
    assert pixels.pixel_samples(other, spec, progress=False).key != s.key
    with pytest.raises(ValueError, match="scene parser"):
        pixels.pixel_samples(replace(SMOKE_LOCAL, levels=features.LEVELS), spec, progress=False)
    # a parser is part of the key through its weights
    a = pixels.parser_identity(cheng2015.build(cheng2015.PRESETS["smoke"]).scene_parser)
    torch.manual_seed(1)
    assert a != pixels.parser_identity(cheng2015.build(cheng2015.PRESETS["smoke"]).scene_parser)


SMOKE_RUN = dict(levels=("patch", "daisy"), pixels_per_image=32, steps=30, progress=False)


@pytest.mark.slow
def test_single_and_clustered_runs_on_smoke(monkeypatch):
    clustering = dict(clusters=1, cluster_epsilon=-60.0, cluster_max_layers=2, cluster_mu=6)  # nobody leaves: 2 layers
    run = experiments.get("cheng2015", "smoke", **SMOKE_RUN)
    assert run.done and len(run.history) and isinstance(run.model, cheng2015.ChengNet)
    run.verify()  # the store wrote the done marker with the weights' checksum
    clustered = experiments.get("cheng2015", "smoke", **SMOKE_RUN, **clustering)
    clustered.verify()
    table = clustered.metrics["clusters"]
    assert {c["layer"] for c in table} == {0, 1} and all(c["left"] == 0 for c in table)
    assert sum(c["images"] for c in table if c["layer"] == 0) == 36
    assert clustered.model_config["clusters"] == len(table)  # config.json holds the number Alg. 3 found
    loaded = runs.load_run("cheng2015", clustered.key[:12]).model  # rebuilt from config.json + final.pt
    assert isinstance(loaded, cheng2015.ClusteredCheng) and len(loaded.nets) == len(table)
    gray = torch.from_numpy(_photo(24, 40))[None, None]
    assert torch.equal(loaded.colorize(gray), clustered.model.colorize(gray))
    monkeypatch.setattr(training, "fit", lambda *a, **k: pytest.fail("retrained a finished run"))
    assert experiments.get("cheng2015", "smoke", **SMOKE_RUN).key == run.key
    assert experiments.get("cheng2015", "smoke", **SMOKE_RUN, **clustering).key == clustered.key
    other_count = experiments.recipe("cheng2015", "smoke", **{**SMOKE_RUN, **clustering, "clusters": 5})
    assert runs.status(other_count)[1] == "trained"  # any clusters > 0 is Alg. 3: one key


@pytest.mark.slow
def test_the_trained_parser_is_inside_the_cheng_weights(tmp_path, monkeypatch):
    run = experiments.get("cheng2015", "smoke", pixels_per_image=8, steps=10, progress=False)  # all three levels
    parser = exp.load_parser("smoke", progress=False)
    inside = run.model.scene_parser.state_dict()
    assert all(torch.equal(inside[k], v) for k, v in parser.state_dict().items())
    assert run.config["data"]["parser"] == exp.parser_recipe("smoke").key
    model, _ = weights.load_exported(weights.export(run, tmp_path / "cheng.safetensors"))  # self-contained
    monkeypatch.setattr(exp, "load_parser", lambda *a, **k: pytest.fail("the parser was loaded from its own run"))
    gray = torch.from_numpy(_photo(24, 40))[None, None]
    assert torch.equal(model.colorize(gray), run.model.colorize(gray))


def test_feature_ablation_scores_the_chosen_sets_once_per_seed(monkeypatch, tmp_path):
    from colorlab import baselines, study

    rgb = list(np.random.default_rng(0).integers(0, 256, (2, 12, 12, 3), dtype=np.uint8))
    sets = [study.EvalSet("sun8", "test", ["a", "b"], rgb), study.EvalSet("kodak24", "all", ["c", "d"], rgb)]
    monkeypatch.setattr(study01, "eval_sets", lambda profile, limit=None: sets)
    seen = []

    def fake_variants(profile, seed, progress):
        seen.append(seed)
        (tmp_path / str(seed)).mkdir(exist_ok=True)
        return {"patch": baselines.GrayBaseline()}, tmp_path / str(seed)

    monkeypatch.setattr(study01, "_variant_runs", fake_variants)
    scores = study01.feature_ablation("cpu", seeds=(0, 1), datasets=("sun8",), progress=False)
    assert set(scores["dataset"]) == {"sun8"} and sorted(scores["seed"].unique()) == [0, 1] and len(scores) == 4
    assert [len(list((tmp_path / s).glob("ablation_*sun8*.csv"))) for s in ("0", "1")] == [1, 1]

    def no_scoring(*args, **kwargs):
        raise AssertionError("scored again although the scores are cached")

    monkeypatch.setattr(study, "evaluate", no_scoring)
    again = study01.feature_ablation("cpu", seeds=(0, 1), datasets=("sun8",), progress=False)
    assert again.equals(scores) and seen == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="no evaluation set"):
        study01.feature_ablation("cpu", datasets=("imagenet-sample",), progress=False)


def test_benchmark_times_the_parser_on_every_repeat():
    calls = []

    class Counting(StandInParser):
        def predict_proba(self, gray):
            calls.append(gray.shape)
            return super().predict_proba(gray)

    out = exp.benchmark(quick=True, parser=Counting())  # sizes 32 and 64, 2 repeats, a warm-up each
    # per size: the warm-up, then semantic_map and colorize in each repeat, none served from memory
    assert len(calls) == 2 * (1 + 2 * 2)
    assert all(v["semantic_s"] > 0 for v in out["sizes"].values())


@pytest.mark.slow
def test_feature_ablation_side_by_side_trains_and_scores_as_one_process_does(tmp_path, monkeypatch):
    from colorlab import processes

    one = study01.feature_ablation("smoke", seeds=(0, 1), progress=False)
    for var, folder in (("COLORLAB_CACHE", "again"), ("COLORLAB_RUNS", "again/runs")):  # nothing trained or scored there
        monkeypatch.setenv(var, str(tmp_path / folder))
    handed, side_by_side = [], processes.side_by_side

    def counted(fn, jobs, *args, **kwargs):
        handed.append(len(jobs))
        return side_by_side(fn, jobs, *args, **kwargs)

    monkeypatch.setattr(processes, "side_by_side", counted)
    two = study01.feature_ablation("smoke", seeds=(0, 1), progress=False, workers=2)
    assert handed == [8, 2]  # the 4 runs of each seed trained in the workers, then both (seed, set) pairs scored there
    assert len(list((tmp_path / "again" / "runs" / "cheng2015").glob("*/done"))) == 8  # 4 runs a seed, trained again
    pd.testing.assert_frame_equal(two.drop(columns="seconds"), one.drop(columns="seconds"), rtol=1e-6)


def _counting_parser(calls):
    """The smoke preset's scene parser network (random weights) counting the photos it parses."""
    parser = cheng2015.build(cheng2015.PRESETS["smoke"]).scene_parser
    parse = parser.predict_proba

    def counted(gray):
        calls.append(gray.shape)
        return parse(gray)

    parser.predict_proba = counted
    return parser


def test_nets_sharing_maps_parse_each_photo_once_and_colour_as_alone():
    from colorlab.features import memo

    calls = []
    parser = _counting_parser(calls)
    full = replace(cheng2015.PRESETS["smoke"], work_size=None, tile_pixels=64 * 16)  # three row tiles
    nets = [_net(full, seed=0, parser=parser), _net(full, seed=1, parser=parser),
            _net(replace(full, levels=("patch", "daisy")), seed=2), _net(replace(full, levels=("patch", "semantic")), seed=3, parser=parser)]
    photos = [_photo(seed=0), _photo(seed=1)]
    alone = [[net.chroma(p) for p in photos] for net in nets]
    assert len(calls) == 6  # outside shared_maps nothing is kept: 3 nets with semantics x 2 photos
    calls.clear()
    with memo.shared_maps() as kept:
        together = [[net.chroma(p) for p in photos] for net in nets]
    assert len(calls) == 2  # one parse per photo for all nets
    for a, b in zip(alone, together):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # per photo: 1 semantic map, 3 tiles of patch + daisy (the full nets and the ablation's patch + daisy), 3 tiles
    # of the patch alone; read again: the map by 2 nets, the patch + daisy tiles by 2 nets
    assert kept.misses == 2 * (1 + 3 + 3) and kept.hits == 2 * (2 + 3 + 3)
    assert not np.array_equal(together[0][0], together[1][0])  # other weights, other colours


def test_kept_maps_are_read_only_bounded_and_only_kept_inside_the_block():
    from colorlab.features import memo

    made = []

    def make(n):
        made.append(n)
        return np.zeros(n, np.uint8)

    def unkeyed():
        raise AssertionError("a key was made outside shared_maps")

    assert memo.kept(unkeyed, lambda: make(10)).flags.writeable  # outside: made, not kept, nothing hashed
    with memo.shared_maps(max_bytes=25) as kept:
        a = memo.kept(lambda: ("a",), lambda: make(10))
        assert memo.kept(lambda: ("a",), lambda: make(10)) is a and not a.flags.writeable
        memo.kept(lambda: ("b",), lambda: make(10))
        memo.kept(lambda: ("c",), lambda: make(10))  # 30 bytes: the oldest ("a") goes
        memo.kept(lambda: ("a",), lambda: make(10))
        memo.kept(lambda: (None,), lambda: make(30))  # larger than the bound: made, never kept
        assert memo.kept(lambda: None, lambda: make(1)).size == 1  # no key: never kept
    assert made == [10, 10, 10, 10, 10, 30, 1] and kept.hits == 1 and kept.bytes <= 25


def test_a_parsers_weights_digest_follows_its_weights():
    from colorlab.features import memo

    parser = cheng2015.build(cheng2015.PRESETS["smoke"]).scene_parser
    first = memo.weights_digest(parser)
    assert memo.weights_digest(parser) == first and memo.weights_digest(StandInParser()) is None
    with torch.no_grad():
        next(parser.parameters()).add_(1.0)
    assert memo.weights_digest(parser) != first
