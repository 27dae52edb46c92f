"""The decoded-array cache (`data.decoded`) and the offline `smoke` dataset."""

from __future__ import annotations

import socket
import warnings

import numpy as np
import pytest
from PIL import Image

from colorlab import data, images, settings
from colorlab.data import cache, smoke
from colorlab.data.sample import Sample

from test_data_registry import make_miniplaces


def _png(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


@pytest.fixture
def photos(tmp_path):
    """Two classes of small colour photos, one grayscale photo and one corrupt file."""
    rng = np.random.default_rng(1)
    root = tmp_path / "photos"
    for cls in ("a", "b"):
        for i in range(5):
            _png(root / cls / f"{i}.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    _png(root / "b" / "gray.png", np.stack([gray] * 3, -1))
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def _quiet_decoded(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return data.decoded(*args, **kwargs)


def test_balanced_subset_is_round_robin_over_sorted_labels():
    samples = [Sample(f"{l}{i}", l, f"{l}-{i}") for l, n in ((2, 5), (0, 1), (1, 3)) for i in range(n)]
    chosen = cache.balanced_subset(samples, 6)
    assert sorted(s.name for s in chosen) == sorted(["0-0", "1-0", "2-0", "1-1", "2-1", "1-2"])
    assert [s.name for s in chosen] == [s.name for s in samples if s in chosen]  # dataset order kept
    assert cache.balanced_subset(samples, 6) == chosen
    assert cache.balanced_subset(samples, None) == samples and cache.balanced_subset(samples, 100) == samples
    assert len(cache.balanced_subset(samples, 2)) == 2


def test_decoded_keeps_colour_images_and_lists_the_rest(photos):
    with pytest.warns(UserWarning, match="left out 2 of 12"):
        d = data.decoded(str(photos), "all", 8, progress=False)
    assert d.rgb.shape == (10, 8, 8, 3) and d.rgb.dtype == np.uint8 and isinstance(d.rgb, np.memmap)
    assert d.labels.dtype == np.int64 and d.labels.tolist() == [0] * 5 + [1] * 5
    assert d.names == [f"a/{i}.png" for i in range(5)] + [f"b/{i}.png" for i in range(5)]
    assert sorted(d.skipped) == ["b/broken.jpg", "b/gray.png"]
    assert d.reasons["b/gray.png"] == cache.GRAYSCALE and "broken.jpg" in d.reasons["b/broken.jpg"]
    assert d.objects is None and len(d) == 10 and set(d.arrays()) == {"rgb", "label"}
    # area interpolation of the whole image to a square (squashed, not cropped)
    import cv2

    first = images.read_rgb(photos / "a" / "0.png")
    assert np.array_equal(d.rgb[0], cv2.resize(first, (8, 8), interpolation=cv2.INTER_AREA))


def test_second_call_reads_the_cache_without_decoding(photos, monkeypatch):
    first = _quiet_decoded(str(photos), "all", 8, progress=False)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images, "read_rgb", no_decoding)
    again = data.decoded(str(photos), "all", 8, progress=False)
    assert again.path == first.path and np.array_equal(again.rgb, first.rgb) and again.skipped == first.skipped


def test_cache_key_follows_size_limit_and_files(photos):
    base = cache.cache_path(str(photos), "all", 8)
    assert base.parent == settings.cache_dir() / "decoded"
    assert cache.cache_path(str(photos), "all", 8) == base
    assert cache.cache_path(str(photos), "all", 16) != base
    assert cache.cache_path(str(photos), "all", 8, limit=4) != base
    assert cache.cache_path(str(photos), "a", 8) != base
    _png(photos / "a" / "5.png", np.zeros((4, 4, 3), dtype=np.uint8))
    assert cache.cache_path(str(photos), "all", 8) != base


def test_limit_gives_a_class_balanced_subset(photos):
    d = _quiet_decoded(str(photos), "all", 8, limit=4, progress=False)
    assert d.labels.tolist() == [0, 0, 1, 1]


def test_interrupted_decode_leaves_nothing_behind(photos, monkeypatch):
    real = cache.decode_one
    calls = []

    def fails_midway(sample, size, with_objects):
        calls.append(sample.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(sample, size, with_objects)

    monkeypatch.setattr(cache, "decode_one", fails_midway)
    with pytest.raises(KeyboardInterrupt):
        data.decoded(str(photos), "all", 8, workers=1, progress=False)
    folder = settings.cache_dir() / "decoded"
    assert list(folder.iterdir()) == []  # neither a finished-looking cache nor a temporary folder
    monkeypatch.setattr(cache, "decode_one", real)
    assert len(_quiet_decoded(str(photos), "all", 8, progress=False)) == 10


def test_threads_and_single_worker_agree(photos, monkeypatch):
    monkeypatch.setattr(cache, "CHUNK", 3)  # several tasks
    one = _quiet_decoded(str(photos), "all", 8, workers=1, progress=False)
    rgb1 = np.array(one.rgb)
    for p in (settings.cache_dir() / "decoded").iterdir():
        import shutil

        shutil.rmtree(p)
    two = _quiet_decoded(str(photos), "all", 8, workers=2, progress=False)
    assert np.array_equal(rgb1, two.rgb) and two.names == one.names


def test_no_colour_image_at_all_is_a_clear_error(tmp_path):
    _png(tmp_path / "g" / "x.png", np.full((4, 4, 3), 7, dtype=np.uint8))
    with pytest.raises(ValueError, match="none of the 1 images"):
        data.decoded(str(tmp_path / "g"), "all", 4, progress=False)


def test_miniplaces_decoded_with_object_maps(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path))
    make_miniplaces(tmp_path / "miniplaces")
    d = data.decoded("miniplaces", "train", 32, progress=False)
    assert d.rgb.shape == (4, 32, 32, 3) and d.objects.shape == (4, 32, 32) and d.objects.dtype == np.uint8
    assert d.names[0] == "train/a/abbey/00000001.jpg"
    assert set(np.unique(d.objects[0])) == {7, 9, 255}
    assert (np.asarray(d.objects[1:]) == 255).all()  # no XML: no object anywhere
    assert set(d.arrays()) == {"rgb", "label", "objects"}


# --- smoke ---------------------------------------------------------------------------
def test_smoke_dataset_builds_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    train, val = data.samples("smoke", "train"), data.samples("smoke", "val")
    names = data.class_names("smoke")
    assert names == ["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
                     "retina", "china", "flower"]
    assert len(train) == 4 * 9 and len(val) == 9
    assert [s.label for s in val] == list(range(9)) and sorted({s.label for s in train}) == list(range(9))
    assert all(s.path.is_file() and s.path.is_relative_to(settings.cache_dir() / "smoke") for s in train + val)
    shapes = {images.read_rgb(s.path).shape for s in train}
    assert shapes == {(smoke.SHORT_SIDE // 2, smoke.SHORT_SIDE // 2, 3)}
    assert images.read_rgb(val[0].path).shape == (smoke.SHORT_SIDE, smoke.SHORT_SIDE, 3)
    assert not any(images.is_grayscale(images.read_rgb(s.path)) for s in val)
    d = data.decoded("smoke", "train", 16, progress=False)
    assert d.rgb.shape == (36, 16, 16, 3) and d.skipped == []
    mtime = val[0].path.stat().st_mtime_ns
    data.samples("smoke", "val")
    assert val[0].path.stat().st_mtime_ns == mtime  # built once


def test_smoke_photos_are_the_libraries_own():
    import skimage.data

    assert np.array_equal(smoke._load(*smoke.PHOTOS[0]), skimage.data.astronaut())


def test_smoke_crops_are_the_corner_and_centre_squares():
    rgb = np.arange(6 * 10 * 3, dtype=np.uint8).reshape(6, 10, 3)
    parts = smoke.crops(rgb)
    assert np.array_equal(parts["tl"], rgb[:3, :3]) and np.array_equal(parts["br"], rgb[3:, 7:])
    assert np.array_equal(parts["tr"], rgb[:3, 7:]) and np.array_equal(parts["bl"], rgb[3:, :3])
    assert np.array_equal(parts["centre"], rgb[:, 2:8])


# --- the local mirror ---------------------------------------------------------------------
@pytest.mark.data
def test_mirror_imagenet_sample_decoded_skips_grayscale(mirror):
    mirror("imagenet-sample")
    d = _quiet_decoded("imagenet-sample", "all", 8, progress=False)
    # 23 stored as grayscale JPEGs, plus 2 RGB files with R == G == B (hook, trombone)
    assert len(d.skipped) == 25 and len(d) == 975
    assert set(d.reasons.values()) == {cache.GRAYSCALE}
    assert "n03532672_hook" in d.skipped and d.labels.max() == 999


@pytest.mark.data
def test_mirror_miniplaces_limit_is_balanced(mirror):
    mirror("miniplaces")
    d = _quiet_decoded("miniplaces", "val", 8, limit=300, progress=False)
    counts = np.bincount(d.labels, minlength=100)
    assert len(d) <= 300 and counts.max() <= 3 and (counts >= 1).sum() >= 95  # some grayscale ones are skipped
    assert d.objects is not None and d.objects.shape == (len(d), 8, 8)


def test_two_decoders_of_the_same_split_take_turns(photos, monkeypatch):
    """Two runs trained side by side decode the same new split: the second waits and loads the first's folder
    (it used to build its own and replace the folder while the first was reading it)."""
    import threading

    builds, started = [], threading.Event()
    real_build = cache._build

    def slow_build(folder, *args, **kwargs):
        builds.append(folder)
        started.set()
        threading.Event().wait(0.3)  # the other decoder arrives while this one builds
        return real_build(folder, *args, **kwargs)

    monkeypatch.setattr(cache, "_build", slow_build)
    out = {}

    def decode(name):
        out[name] = _quiet_decoded(str(photos), "all", 8, progress=False)

    first = threading.Thread(target=decode, args=("first",))
    first.start()
    started.wait(5)
    decode("second")
    first.join()
    assert len(builds) == 1 and out["first"].path == out["second"].path
    assert np.array_equal(out["first"].rgb, out["second"].rgb)
