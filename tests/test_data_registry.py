"""The dataset registry and the parsers of each original layout: on tiny synthetic copies
(always run) and on the local data mirror (marked `data`, skipped when absent)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import scipy.io
from PIL import Image

from colorlab import data, images
from colorlab.data import miniplaces, registry

RNG = np.random.default_rng(0)


def _jpeg(path, size=(16, 16), gray=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = RNG.integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(rgb[..., 0] if gray else rgb).save(path)


XML = """<filename>x.jpg</filename>
<folder>/a/abbey</folder>
<class>0</class>
<objects>
\t<class>{a}</class>
\t<polygon><pt><x>1</x><y>1</y></pt><pt><x>8</x><y>1</y></pt><pt><x>8</x><y>8</y></pt><pt><x>1</x><y>8</y></pt></polygon>
</objects>
<objects>
\t<class>{b}</class>
\t<polygon><pt><x>5</x><y>5</y></pt><pt><x>12</x><y>5</y></pt><pt><x>12</x><y>12</y></pt><pt><x>5</x><y>12</y></pt></polygon>
</objects>
<objects>
\t<class>3</class>
\t<polygon><pt><x>100</x><y>100</y></pt><pt><x>110</x><y>110</y></pt></polygon>
</objects>
"""


def make_miniplaces(root, a=7, b=9):
    """A 3-class MiniPlaces in the original layout, one class nested, objects for one image."""
    (root / "categories.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "categories.txt").write_text("/a/abbey 0\n/b/bakery/shop 1\n/c/church/outdoor 2\n")
    (root / "object_categories.txt").write_text("".join(f"obj{i} {i}\n" for i in range(12)))
    train = ["train/a/abbey/00000002.jpg 0", "train/a/abbey/00000001.jpg 0", "train/b/bakery/shop/00000001.jpg 1",
             "train/c/church/outdoor/00000001.jpg 2"]
    (root / "train.txt").write_text("\n".join(train) + "\n")
    (root / "val.txt").write_text("val/00000001.jpg 2\nval/00000002.jpg 1\n")
    for line in train + ["val/00000001.jpg 2", "val/00000002.jpg 1"]:
        _jpeg(root / "images" / line.split()[0], (128, 128))
    xml = root / "objects/train/a/abbey/00000001.xml"
    xml.parent.mkdir(parents=True)
    xml.write_text(XML.format(a=a, b=b))
    return root


def make_sun8(root):
    classes = ["airport", "kitchen"]
    names = {"train": ["airport/sun_a.jpg", "kitchen/sun_b.jpg", "kitchen/sun_c.jpg"], "test": ["airport/sun_d.jpg"]}
    for split in names.values():
        for n in split:
            _jpeg(root / n)

    def cells(strings):
        arr = np.empty((len(strings), 1), dtype=object)
        arr[:, 0] = strings
        return arr

    mat = {"mapping": cells(classes).T}
    for split, ns in names.items():
        mat[f"{split}_imagenames"] = cells(ns)
        mat[f"{split}_labels"] = np.array([[classes.index(n.split("/")[0]) + 1] for n in ns], dtype=np.uint8)
    mat["all_imagenames"] = cells(names["train"] + names["test"])
    mat["all_labels"] = np.concatenate([mat["train_labels"], mat["test_labels"]])
    scipy.io.savemat(root / "traintest.mat", mat)
    return root


# --- registry ------------------------------------------------------------------
def test_registry_names_splits_and_digests():
    assert set(registry.REGISTRY) == {"miniplaces", "kodak24", "sun8", "imagenet-sample", "mobilenet_v2", "smoke"}
    assert registry.get("kodak24").splits == ("all",) and registry.get("imagenet-sample").splits == ("all",)
    assert {"train", "test"} <= set(registry.get("sun8").splits)
    for ds in registry.REGISTRY.values():
        for src in ds.sources:
            assert src.url.startswith(("http://", "https://")), src.url
            assert src.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", src.sha256), (ds.name, src.url)
        assert ds.tree_sha256 is None or re.fullmatch(r"[0-9a-f]{64}", ds.tree_sha256)
    kodak = registry.get("kodak24").sources
    assert len(kodak) == 24 and all(s.sha256 for s in kodak)
    assert kodak[0].url == "http://r0k.us/graphics/kodak/kodak/kodim01.png" and kodak[0].target == "kodim01.png"
    assert len({s.sha256 for s in kodak}) == 24
    mobilenet = {s.target: s for s in registry.get("mobilenet_v2").sources}
    assert mobilenet["mobilenet_v2_1.0_224_quant.tflite"].url.startswith("https://github.com/google-coral/test_data/")
    assert all(s.sha256 for s in mobilenet.values())
    tarball = registry.get("miniplaces").sources[0]
    assert tarball.url == "http://miniplaces.csail.mit.edu/data/data.tar.gz" and tarball.sha256 is None


def test_missing_dataset_error_names_dataset_folder_and_remedy(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path))
    with pytest.raises(data.DatasetMissingError) as err:
        data.samples("miniplaces", "train")
    msg = str(err.value)
    assert "'miniplaces'" in msg and str(tmp_path / "miniplaces") in msg
    assert "colorlab data fetch miniplaces" in msg and "COLORLAB_DATA" in msg and "DATA_DIR=" in msg
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(data.DatasetMissingError):
        data.path("mobilenet_v2")


def test_bad_names_and_splits_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path))
    make_miniplaces(tmp_path / "miniplaces")
    with pytest.raises(ValueError, match="unknown dataset 'places365'"):
        data.samples("places365", "train")
    with pytest.raises(ValueError, match="no split 'test'"):
        data.samples("miniplaces", "test")
    with pytest.raises(ValueError, match="model file"):
        data.samples("mobilenet_v2", "all")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        data.samples(str(tmp_path / "nowhere/photos"), "all")


# --- MiniPlaces ------------------------------------------------------------------
def test_miniplaces_parser_on_synthetic_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path))
    make_miniplaces(tmp_path / "miniplaces")
    assert data.class_names("miniplaces") == ["abbey", "bakery/shop", "church/outdoor"]
    train = data.samples("miniplaces", "train")
    assert [s.name for s in train] == ["train/a/abbey/00000001.jpg", "train/a/abbey/00000002.jpg",
                                       "train/b/bakery/shop/00000001.jpg", "train/c/church/outdoor/00000001.jpg"]
    assert [s.label for s in train] == [0, 0, 1, 2]
    assert all(s.path.is_file() for s in train)
    assert train[0].objects == tmp_path / "miniplaces/objects/train/a/abbey/00000001.xml"
    assert [s.objects for s in train[1:]] == [None, None, None]
    val = data.samples("miniplaces", "val")
    assert [(s.name, s.label) for s in val] == [("val/00000001.jpg", 2), ("val/00000002.jpg", 1)]
    assert data.object_names("miniplaces")[:2] == ["obj0", "obj1"]


def test_miniplaces_bad_label_line_names_file_and_line(tmp_path):
    root = make_miniplaces(tmp_path / "miniplaces")
    (root / "val.txt").write_text("val/00000001.jpg 2\nval/00000002.jpg 7\n")
    with pytest.raises(ValueError, match=r"val\.txt:2"):
        miniplaces.samples(root, "val")


def test_object_xml_without_root_is_parsed_in_order(tmp_path):
    xml = make_miniplaces(tmp_path / "mp") / "objects/train/a/abbey/00000001.xml"
    objs = miniplaces.read_objects(xml)
    assert [c for c, _ in objs] == [7, 9, 3]
    assert objs[0][1].tolist() == [[1, 1], [8, 1], [8, 8], [1, 8]]


def test_object_map_is_one_based_and_later_objects_paint_over_earlier(tmp_path):
    xml = make_miniplaces(tmp_path / "mp") / "objects/train/a/abbey/00000001.xml"
    grid = miniplaces.object_map(xml)
    assert grid.shape == (128, 128) and grid.dtype == np.uint8
    assert (grid[0:4, 0:4] == 7).all()  # points 1..8 are pixels 0..7
    assert (grid[4:12, 4:12] == 9).all()  # the second object covers the overlap
    assert grid[0, 8] == miniplaces.NO_OBJECT and grid[12, 12] == miniplaces.NO_OBJECT
    assert set(np.unique(grid)) == {7, 9, 255}  # the 2-point polygon is ignored
    assert (grid != 255).sum() == 8 * 8 + 8 * 8 - 4 * 4
    small = miniplaces.object_map(xml, 64)
    assert small.shape == (64, 64) and set(np.unique(small)) == {7, 9, 255}  # nearest: no blended ids


def test_object_xml_that_is_not_xml_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<objects><class>1</class>")
    with pytest.raises(ValueError, match="bad.xml"):
        miniplaces.read_objects(bad)


# --- SUN8, imagenet-sample, kodak, folders -------------------------------------
def test_sun8_parser_reads_traintest_mat(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path))
    make_sun8(tmp_path / "sun8")
    assert data.class_names("sun8") == ["airport", "kitchen"]
    train = data.samples("sun8", "train")
    assert [(s.name, s.label) for s in train] == [("airport/sun_a.jpg", 0), ("kitchen/sun_b.jpg", 1), ("kitchen/sun_c.jpg", 1)]
    assert [(s.name, s.label) for s in data.samples("sun8", "test")] == [("airport/sun_d.jpg", 0)]
    assert len(data.samples("sun8", "all")) == 4


def test_imagenet_sample_labels_come_from_sorted_wnids(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path))
    root = tmp_path / "imagenet-sample"
    for name in ["n15075141_toilet_tissue.JPEG", "n01443537_goldfish.JPEG", "n01440764_tench.JPEG",
                 "n01819313_sulphur-crested_cockatoo.JPEG"]:
        _jpeg(root / name)
    (root / "README.md").write_text("not an image")
    with pytest.warns(UserWarning, match="4 class images instead of 1000"):
        names = data.class_names("imagenet-sample")
    assert names == ["tench", "goldfish", "sulphur-crested cockatoo", "toilet tissue"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = data.samples("imagenet-sample", "all")
    assert [(s.name, s.label) for s in samples] == [("n01440764_tench", 0), ("n01443537_goldfish", 1),
                                                    ("n01819313_sulphur-crested_cockatoo", 2), ("n15075141_toilet_tissue", 3)]


def test_kodak_parser(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path))
    for i in (2, 1, 24):
        _jpeg(tmp_path / "kodak24" / f"kodim{i:02d}.png")
    assert [s.name for s in data.samples("kodak24", "all")] == ["kodim01", "kodim02", "kodim24"]
    assert data.class_names("kodak24") == []


def test_folder_with_class_subfolders_gets_labels(tmp_path):
    for rel in ["cats/b.png", "cats/a.jpg", "dogs/x.jpeg", "dogs/.hidden.jpg"]:
        _jpeg(tmp_path / "pets" / rel)
    (tmp_path / "pets/dogs/notes.txt").write_text("not an image")
    samples = data.samples(str(tmp_path / "pets"), "all")
    assert [(s.name, s.label) for s in samples] == [("cats/a.jpg", 0), ("cats/b.png", 0), ("dogs/x.jpeg", 1)]
    assert data.class_names(str(tmp_path / "pets")) == ["cats", "dogs"]


def test_flat_folder_and_split_subfolders(tmp_path):
    for rel in ["train/a.png", "train/b.png", "val/c.png", "loose.png"]:
        _jpeg(tmp_path / "photos" / rel)
    flat = data.samples(tmp_path / "photos" / "val", "all")
    assert [(s.name, s.label) for s in flat] == [("c.png", -1)]
    assert [s.name for s in data.samples(str(tmp_path / "photos"), "train")] == ["a.png", "b.png"]
    assert all(s.label == -1 for s in data.samples(str(tmp_path / "photos"), "all"))  # loose.png: no class layout
    with pytest.raises(FileNotFoundError, match="split 'test'"):
        data.samples(str(tmp_path / "photos"), "test")


# --- the local mirror ---------------------------------------------------------------
@pytest.mark.data
def test_mirror_miniplaces_counts_and_nested_classes(mirror):
    mirror("miniplaces")
    train, val = data.samples("miniplaces", "train"), data.samples("miniplaces", "val")
    assert (len(train), len(val)) == (25_228, 2_299)
    names = data.class_names("miniplaces")
    assert len(names) == 100 and names[10] == "bakery/shop" and "church/outdoor" in names
    assert sorted({s.label for s in train}) == list(range(100))
    assert sum(s.objects is not None for s in train) == 3_502 and sum(s.objects is not None for s in val) == 371
    bakery = [s for s in train if s.label == 10]
    assert bakery and all(s.name.startswith("train/b/bakery/shop/") for s in bakery)
    assert len(data.object_names()) == 175


@pytest.mark.data
def test_mirror_object_map_is_plausible(mirror):
    mirror("miniplaces")
    sample = next(s for s in data.samples("miniplaces", "train") if s.name == "train/b/butchers_shop/00000007.jpg")
    grid = miniplaces.object_map(sample.objects)
    ids = set(np.unique(grid)) - {miniplaces.NO_OBJECT}
    assert {34, 169} <= ids and max(ids) < 175  # ceiling and wall, the first two objects in the file
    assert (grid != miniplaces.NO_OBJECT).mean() > 0.5
    assert grid[3, 100] == 34  # inside the ceiling polygon (x 72..122, y 1..12), painted by nothing later
    labelled = [(miniplaces.object_map(s.objects) != 255).mean() for s in data.samples("miniplaces", "val") if s.objects][:50]
    assert np.mean(labelled) > 0.5


@pytest.mark.data
def test_mirror_sun8_split(mirror):
    mirror("sun8")
    train, test = data.samples("sun8", "train"), data.samples("sun8", "test")
    assert (len(train), len(test)) == (1_483, 160)
    assert not {s.name for s in train} & {s.name for s in test}
    names = data.class_names("sun8")
    assert names == ["airport", "auditorium", "bamboo_forest", "campus", "desert", "football_field", "kitchen", "sky"]
    assert all(names[s.label] == s.name.split("/")[0] for s in train + test)


@pytest.mark.data
def test_mirror_imagenet_sample_has_1000_classes_and_23_grayscale(mirror):
    mirror("imagenet-sample")
    samples = data.samples("imagenet-sample", "all")
    assert len(samples) == 1_000 and [s.label for s in samples] == list(range(1_000))
    assert samples[0].name == "n01440764_tench" and data.class_names("imagenet-sample")[1] == "goldfish"
    stored_gray = [s.name for s in samples if Image.open(s.path).mode == "L"]  # header only, no decoding
    assert len(stored_gray) == 23
    # Two more are stored as RGB but have R == G == B everywhere: no colour ground truth either.
    for name in ("n03532672_hook", "n04487394_trombone"):
        assert images.is_grayscale(images.read_rgb(next(s.path for s in samples if s.name == name)))


@pytest.mark.data
def test_mirror_kodak(mirror):
    mirror("kodak24")
    samples = data.samples("kodak24", "all")
    assert len(samples) == 24 and {images.read_rgb(samples[0].path).shape} <= {(512, 768, 3), (768, 512, 3)}
