"""Reading and writing photos safely: any readable file -> RGB uint8 (H, W, 3).

`read_rgb` is the one door through which colorlab reads an image file. It
either returns an `(H, W, 3)` uint8 array or raises `ImageReadError` (a
`ValueError`) whose message names the file and the problem, so a batch job
can skip the file, say why, and go on.

How each kind of file becomes 8-bit sRGB:

| source                               | rule                                                   |
|--------------------------------------|--------------------------------------------------------|
| grayscale (L), 1-bit                 | the value is copied to R, G and B (1-bit: 0 or 255)    |
| 16-bit (PNG, TIFF; gray or RGB)      | the high byte, `x >> 8` (what PIL does for 16-bit RGB; |
|                                      | we do the same for 16-bit gray so both agree). Every   |
|                                      | 8-bit value stored as 16 bits (`k * 257`) maps back to |
|                                      | `k`; any other value is off by less than one 8-bit step |
| 32-bit integer (mode I)              | taken as 16-bit: clipped to 0..65535, then `x >> 8`    |
| float (mode F, e.g. float TIFF)      | taken to lie in [0, 1]: clipped, times 255, rounded    |
| palette (P), with or without alpha   | expanded through the palette                           |
| transparency (LA, RGBA, PA, P + tRNS)| composited over white: transparent pixels become white |
|                                      | (how a viewer shows them on a page), not black         |
| CMYK JPEG (incl. Adobe inverted)     | PIL undoes Adobe's inversion; CMYK -> RGB is PIL's     |
|                                      | naive conversion (no ICC colour management)            |
| EXIF orientation                     | applied (`ImageOps.exif_transpose`): rows and columns  |
|                                      | are those a viewer shows                               |
| several frames (GIF, TIFF pages)     | the first frame                                        |

Safety: PIL is kept strict. colorlab never sets
`PIL.ImageFile.LOAD_TRUNCATED_IMAGES`, so a truncated JPEG or PNG is an
error, not a silently grey-filled photo. The pixel count in the header is
checked against `max_pixels` (default `MAX_PIXELS`, 64 megapixels) *before*
any pixel is decoded, and PIL's own decompression-bomb guard (which fires
above `2 * PIL.Image.MAX_IMAGE_PIXELS`, about 179 megapixels, whatever
`max_pixels` says) is turned into the same error.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from colorlab import atomic

MAX_PIXELS = 64_000_000  # a 8000 x 8000 photo; a decoded RGB copy is 192 MB
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm"})
JPEG_QUALITY = 95  # for write_image; high enough that re-encoding barely moves the metrics


class ImageReadError(ValueError):
    """A file that cannot be read as a photo; `str(err)` names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def read_rgb(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Any readable photo -> RGB uint8 (H, W, 3); see the module doc for each kind of file.

    Raises `ImageReadError` for a missing, empty, non-image, truncated or
    corrupt file, and for one with more than `max_pixels` pixels (None: the
    module's `MAX_PIXELS`, read at each call so it can be changed in one place).
    """
    path = Path(path)
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    if not path.is_file():
        raise ImageReadError(path, "no such file" if not path.exists() else "not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise ImageReadError(
                    path, f"{width} x {height} = {width * height:,} pixels is over the limit of {max_pixels:,} (images.MAX_PIXELS)"
                )
            im.load()  # decode now, inside the try, so truncation is reported here
            return _to_rgb(ImageOps.exif_transpose(im))
    except ImageReadError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageReadError(path, f"too many pixels, refused as a decompression bomb ({e})") from e
    except UnidentifiedImageError as e:
        raise ImageReadError(path, "not an image file PIL can read") from e
    except OSError as e:
        raise ImageReadError(path, f"cannot read the image data: {e}") from e  # e.g. "image file is truncated"
    except Exception as e:  # PIL's parsers raise many types (SyntaxError, struct.error, ...) on malformed files
        raise ImageReadError(path, f"cannot decode ({type(e).__name__}: {e})") from e


def _to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode == "RGB":
        return np.asarray(im, dtype=np.uint8).copy()
    if im.mode in ("L", "1"):
        return _gray3(np.asarray(im.convert("L"), dtype=np.uint8))
    if im.mode.startswith("I;16") or im.mode == "I":
        x = np.asarray(im)
        return _gray3((np.clip(x, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8))
    if im.mode == "F":
        x = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0)
        return _gray3(np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8))
    if im.mode in ("LA", "La", "PA", "RGBA", "RGBa") or (im.mode == "P" and "transparency" in im.info):
        return _over_white(np.asarray(im.convert("RGBA"), dtype=np.uint8))
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()  # P, CMYK, YCbCr, ...


def _gray3(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=-1)


def _over_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:].astype(np.float32) / 255
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255 * (1 - alpha)
    return np.round(rgb).astype(np.uint8)


def is_grayscale(rgb: np.ndarray) -> bool:
    """True when every pixel has R == G == B exactly (such a photo has no colour ground truth)."""
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        return True
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"is_grayscale expects an (H, W, 3) image, got shape {rgb.shape}")
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def write_image(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) or (H, W) uint8 image; the format follows the suffix.

    The file is encoded in memory and then written atomically (temporary file
    in the same folder, then rename), so `path` is either the old file or the
    complete new one, never half an image.
    """
    path = Path(path)
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise TypeError(f"{path}: write_image expects uint8 pixels, got {rgb.dtype} (convert with colorlab.color.to_uint8)")
    if not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[-1] == 3)):
        raise ValueError(f"{path}: write_image expects an (H, W, 3) or (H, W) image, got shape {rgb.shape}")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image format {path.suffix!r}; use e.g. .png or .jpg")
    options = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **options)
    return atomic.write_bytes(path, buf.getvalue())


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under `folder`, recursively, sorted by relative path.

    Chosen by extension (`IMAGE_EXTENSIONS`, any case). Hidden files and
    folders (names starting with ".", e.g. macOS `._x.jpg` or our own
    temporary files) are left out.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: no such folder")
    found = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.suffix.lower() in IMAGE_EXTENSIONS and not any(part.startswith(".") for part in rel.parts) and p.is_file():
            found.append(p)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a uint8 image to (height, width): antialiased bicubic (PIL), a no-op at the same size."""
    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC), dtype=np.uint8)
