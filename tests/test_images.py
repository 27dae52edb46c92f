"""colorlab.images: every kind of photo becomes RGB uint8, every bad file one clear error."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from colorlab import images, settings


def _photo(h=24, w=32, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_with_header_size(path, width, height):
    """A valid small PNG whose IHDR claims width x height: the header check must refuse it before decoding."""
    raw = bytearray(open(path, "rb").read())
    ihdr = raw[16:29]  # width, height, depth, colour type, compression, filter, interlace
    ihdr[0:8] = struct.pack(">II", width, height)
    raw[16:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    path.write_bytes(bytes(raw))


# --- what each kind of file becomes ---------------------------------------------
def test_rgb_png_round_trip(tmp_path):
    rgb = _photo()
    images.write_image(tmp_path / "a.png", rgb)
    out = images.read_rgb(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3)
    np.testing.assert_array_equal(out, rgb)


def test_grayscale_and_one_bit(tmp_path):
    gray = _photo()[..., 0]
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = images.read_rgb(tmp_path / "g.png")
    assert out.shape == (24, 32, 3) and images.is_grayscale(out)
    np.testing.assert_array_equal(out[..., 1], gray)

    bits = np.eye(8, dtype=bool)
    Image.fromarray(bits).save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    out = images.read_rgb(tmp_path / "b.png")
    np.testing.assert_array_equal(out[..., 0], np.where(bits, 255, 0))


def test_sixteen_bit_gray_png_keeps_the_high_byte(tmp_path):
    values = np.array([[0, 256, 257 * 100, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    out = images.read_rgb(tmp_path / "g16.png")
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 100, 255])
    assert images.is_grayscale(out)


def test_sixteen_bit_rgb_png_and_tiff_agree_with_gray_rule(tmp_path):
    rgb16 = np.zeros((4, 4, 3), np.uint16)
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 257 * 100, 256
    for name in ("c16.png", "c16.tif"):
        assert cv2.imwrite(str(tmp_path / name), rgb16[..., ::-1])  # OpenCV writes BGR
        out = images.read_rgb(tmp_path / name)
        np.testing.assert_array_equal(out[0, 0], [255, 100, 1])


def test_sixteen_bit_and_float_tiff(tmp_path):
    Image.fromarray(np.full((3, 5), 257 * 42, np.uint16)).save(tmp_path / "g16.tif")
    assert (images.read_rgb(tmp_path / "g16.tif") == 42).all()
    f = np.array([[0.0, 0.5, 1.0, 2.0, -1.0]], np.float32)
    Image.fromarray(f).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    np.testing.assert_array_equal(images.read_rgb(tmp_path / "f.tif")[0, :, 0], [0, 128, 255, 255, 0])


def test_palette_with_transparency_composites_on_white(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.putdata([0, 1])
    p.save(tmp_path / "p.png", transparency=0)  # palette entry 0 (red) is fully transparent
    out = images.read_rgb(tmp_path / "p.png")
    np.testing.assert_array_equal(out[0], [[255, 255, 255], [0, 0, 255]])


def test_rgba_and_la_composite_on_white(tmp_path):
    rgba = np.array([[[0, 0, 0, 0], [0, 0, 0, 255], [200, 100, 0, 128]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = images.read_rgb(tmp_path / "a.png")
    a = 128 / 255
    expected = np.round(np.array([200, 100, 0]) * a + 255 * (1 - a))
    np.testing.assert_array_equal(out[0, :2], [[255, 255, 255], [0, 0, 0]])
    np.testing.assert_array_equal(out[0, 2], expected)
    Image.new("LA", (2, 2), (100, 0)).save(tmp_path / "la.png")
    assert (images.read_rgb(tmp_path / "la.png") == 255).all()


def test_cmyk_jpeg_including_adobe_inverted(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)  # pure red in CMYK
    im = Image.open(tmp_path / "c.jpg")
    assert im.mode == "CMYK" and "adobe" in im.info  # PIL writes the Adobe marker: stored inverted
    out = images.read_rgb(tmp_path / "c.jpg")
    assert out.shape == (16, 16, 3)
    r, g, b = out.reshape(-1, 3).mean(axis=0)
    assert r > 245 and g < 10 and b < 10


def test_exif_orientation_is_applied(tmp_path):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :10] = 255  # a white band on the left of a landscape photo
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = images.read_rgb(tmp_path / "r.jpg")
    assert out.shape == (40, 20, 3)  # portrait, as a viewer shows it
    assert out[:10].mean() > 200 and out[-10:].mean() < 50  # the band is now at the top


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    out = images.read_rgb(tmp_path / "a.gif")
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])


# --- one error type, naming the file --------------------------------------------
def test_truncated_jpeg_is_an_error(tmp_path):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # nothing in colorlab may loosen PIL
    path = tmp_path / "t.jpg"
    Image.fromarray(_photo(200, 200)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(images.ImageReadError, match="truncated") as err:
        images.read_rgb(path)
    assert str(path) in str(err.value) and err.value.path == path
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    "name, content, problem",
    [("text.jpg", b"this is not a photo\n", "not an image"), ("empty.png", b"", "empty"), ("missing.jpg", None, "no such file")],
)
def test_bad_files(tmp_path, name, content, problem):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(images.ImageReadError, match=problem) as err:
        images.read_rgb(path)
    assert isinstance(err.value, ValueError) and str(path) in str(err.value)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(images.ImageReadError, match="not a regular file"):
        images.read_rgb(tmp_path)


def test_pixel_limit_checked_from_the_header(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    Image.fromarray(_photo(10, 10)).save(path)
    with pytest.raises(images.ImageReadError, match="over the limit"):
        images.read_rgb(path, max_pixels=99)
    assert images.read_rgb(path, max_pixels=100).shape == (10, 10, 3)
    monkeypatch.setattr(images, "MAX_PIXELS", 50)  # the default limit is read at each call
    with pytest.raises(images.ImageReadError, match="10 x 10 = 100 pixels"):
        images.read_rgb(path)


def test_huge_header_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.fromarray(_photo(4, 4)).save(path)
    _png_with_header_size(path, 9000, 9000)  # 81 MP: over our 64 MP, under PIL's own guard
    with pytest.raises(images.ImageReadError, match="81,000,000 pixels"):
        images.read_rgb(path)
    _png_with_header_size(path, 30000, 30000)  # 900 MP: PIL's decompression-bomb guard fires at open
    with pytest.raises(images.ImageReadError, match=str(path.name)):
        images.read_rgb(path, max_pixels=10**12)


# --- grayscale test, writing, listing ---------------------------------------------
def test_is_grayscale_is_exact():
    gray = np.repeat(_photo()[..., :1], 3, axis=-1)
    assert images.is_grayscale(gray)
    gray[3, 4, 2] += 1
    assert not images.is_grayscale(gray)
    assert images.is_grayscale(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError):
        images.is_grayscale(np.zeros((2, 2, 4), np.uint8))


def test_write_image_is_atomic_and_checked(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    images.write_image(path, _photo(seed=1))
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("colorlab.atomic.os.replace", fail)
    with pytest.raises(OSError):
        images.write_image(path, _photo(seed=2))
    assert path.read_bytes() == before  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary left behind
    monkeypatch.undo()

    with pytest.raises(TypeError, match="uint8"):
        images.write_image(tmp_path / "f.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="unknown image format"):
        images.write_image(tmp_path / "x.nope", _photo())
    smooth = np.stack([*np.meshgrid(np.arange(32) * 8, np.arange(24) * 10), np.full((24, 32), 90)], -1).astype(np.uint8)
    images.write_image(tmp_path / "sub" / "q.jpg", smooth)  # creates the folder; JPEG at quality 95
    assert np.abs(images.read_rgb(tmp_path / "sub" / "q.jpg").astype(int) - smooth).mean() < 3


def test_list_images(tmp_path):
    for rel in ("b.png", "a/c.JPG", "a/b/d.jpeg", "z.tif", "notes.txt", ".hidden.png", ".cache/e.png", "a/._f.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in images.list_images(tmp_path)]
    assert found == ["a/b/d.jpeg", "a/c.JPG", "b.png", "z.tif"]
    with pytest.raises(NotADirectoryError, match="no such folder"):
        images.list_images(tmp_path / "nope")


def test_resize():
    rgb = _photo(10, 20)
    assert images.resize(rgb, 10, 20) is rgb
    out = images.resize(rgb, 5, 7)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8


@pytest.mark.data
def test_reads_the_mirror():
    kodak = settings.data_dir() / "kodak24"
    if not kodak.is_dir():
        pytest.skip(f"kodak24 not found under {settings.data_dir()} (set COLORLAB_DATA)")
    files = images.list_images(kodak)
    assert len(files) == 24
    shapes = {images.read_rgb(p).shape for p in files[:3]}
    assert shapes <= {(512, 768, 3), (768, 512, 3)}
