"""Every colour conversion and normalisation constant in colorlab.

All functions take and return batched torch tensors `(B, 3, H, W)` (or
`(B, 1, H, W)` / `(B, 2, H, W)` for single channels), work in float32 and
float64 and are differentiable; the exceptions are the 8-bit helpers at the
end and `u8_to_ab` (numpy, for scoring). The CIE constants are scikit-image's
(`skimage.color`: sRGB primaries, D65 white, the 0.008856 / 7.787 linear
segment), so results agree with it to float64 rounding.

Vocabulary used across the project: `rgb` in [0, 1] (sRGB-encoded), `gray`
in [0, 1] (the sRGB value of a neutral pixel), `L` in [0, 100], `ab` in Lab
units, `uv` in YUV units (BT.601), `ab_pred` a network's output.

What a grayscale photo is, here: the neutral image with the same CIE
lightness L* as the colour one (`rgb_to_gray`). Lab models therefore keep the
ground-truth L exactly, and YUV models see Y = gray (for a neutral pixel
Y == its sRGB value in this matrix).

Out-of-gamut Lab: `lab_to_rgb` clips the result to [0, 1] after the inverse
gamma (as scikit-image does). Predicted ab can name colours no sRGB display
shows; clipping keeps the nearest displayable channel values, which can shift
hue slightly for very saturated predictions. Use `lab_to_rgb(..., clip=False)`
to see the raw values.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# --- CIE constants (scikit-image's, so both libraries agree) -------------------
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
WHITE_D65 = (0.95047, 1.0, 1.08883)
_LAB_EPS = 0.008856  # (6/29)^3, as scikit-image rounds it
_LAB_KAPPA = 7.787  # slope of the linear segment of f(t)
_LAB_F_EPS = 0.2068966  # f(_LAB_EPS) = 6/29
_SRGB_LIN_EPS = 0.04045
_SRGB_GAMMA_EPS = 0.0031308

# --- BT.601 YUV (scikit-image's rgb2yuv matrix) ----------------------------------
YUV_FROM_RGB = (
    (0.299, 0.587, 0.114),
    (-0.14714119, -0.28886916, 0.43601035),
    (0.61497538, -0.51496512, -0.10001026),
)
U_MAX = 0.43601035  # |U| <= U_MAX for rgb in [0, 1]
V_MAX = 0.61497538  # |V| <= V_MAX

# --- Each paper's normalisation --------------------------------------------------
L_MAX = 100.0
# Iizuka et al. 2016 sec. 3.2.5: ab "globally normalized" to [0, 1] for the
# sigmoid. The official colorize.lua maps back with ab = 100 * (2 * out - 1), so
# training used (ab + 100) / 200 (inferred from the code); |ab| > 100 is clipped.
IIZUKA_AB_RANGE = 100.0
# Baldassarre et al. 2017 (code lab_image_record.py): L -> 2 L / 100 - 1 and
# ab / 127 for the tanh output; we divide by 128 so every sRGB ab fits in (-1, 1).
KOALA_AB_SCALE = 128.0
# Cheng et al. 2015 sec. 3.1.1: the net predicts YUV chrominance; the scaling of
# U, V is not given in the paper. We regress U / U_MAX and V / V_MAX, in [-1, 1].


def _matrix(rows, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def _apply_matrix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", m, x)


def _check(x: torch.Tensor, channels: int, name: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must be a (B, {channels}, H, W) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point (use to_float), got {x.dtype}")


# --- sRGB transfer function ------------------------------------------------------
def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """Inverse sRGB gamma (IEC 61966-2-1)."""
    high = ((rgb.clamp(min=_SRGB_LIN_EPS) + 0.055) / 1.055) ** 2.4
    return torch.where(rgb > _SRGB_LIN_EPS, high, rgb / 12.92)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    """sRGB gamma (IEC 61966-2-1)."""
    high = 1.055 * lin.clamp(min=_SRGB_GAMMA_EPS) ** (1 / 2.4) - 0.055
    return torch.where(lin > _SRGB_GAMMA_EPS, high, lin * 12.92)


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _LAB_EPS, t.clamp(min=_LAB_EPS) ** (1 / 3), _LAB_KAPPA * t + 16 / 116)


def _lab_f_inv(f: torch.Tensor) -> torch.Tensor:
    return torch.where(f > _LAB_F_EPS, f.clamp(min=_LAB_F_EPS) ** 3, (f - 16 / 116) / _LAB_KAPPA)


# --- sRGB <-> CIE Lab (D65) ------------------------------------------------------
def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] -> CIE L*a*b* (D65, 2 deg): L in [0, 100], a and b roughly [-128, 127]."""
    _check(rgb, 3, "rgb")
    xyz = _apply_matrix(_matrix(XYZ_FROM_RGB, rgb), srgb_to_linear(rgb))
    xyz = xyz / _matrix(WHITE_D65, rgb).view(1, 3, 1, 1)
    fx, fy, fz = _lab_f(xyz).unbind(1)
    return torch.stack((116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)), dim=1)


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """CIE L*a*b* (D65) -> sRGB, clipped to [0, 1] unless `clip=False` (see module doc)."""
    _check(lab, 3, "lab")
    L, a, b = lab.unbind(1)
    fy = (L + 16) / 116
    # scikit-image clips negative z (f below 0) before inverting; keep that
    f = torch.stack((a / 500 + fy, fy, (fy - b / 200).clamp(min=0)), dim=1)
    xyz = _lab_f_inv(f) * _matrix(WHITE_D65, lab).view(1, 3, 1, 1)
    lin = _apply_matrix(torch.linalg.inv(_matrix(XYZ_FROM_RGB, lab)), xyz)
    rgb = linear_to_srgb(lin)
    return rgb.clamp(0, 1) if clip else rgb


def u8_to_ab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) -> its CIE a*, b* (..., 2) in float64, in numpy: `rgb_to_lab`'s formulas (the tests
    hold them equal to 1e-9) without a tensor round trip, several times faster for scoring (`metrics.ab_error`)."""
    if rgb.dtype != np.uint8 or rgb.shape[-1] != 3:
        raise ValueError(f"u8_to_ab expects uint8 (..., 3), got {rgb.dtype} {rgb.shape}")
    xyz = _U8_TO_LINEAR[rgb] @ _XYZ_OVER_WHITE.T  # (..., 3), X/Xn, Y/Yn, Z/Zn
    f = np.where(xyz > _LAB_EPS, np.cbrt(np.maximum(xyz, _LAB_EPS)), _LAB_KAPPA * xyz + 16 / 116)
    return np.stack((500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])), axis=-1)  # (..., 2)


_levels = np.arange(256) / 255.0
_U8_TO_LINEAR = np.where(_levels > _SRGB_LIN_EPS, ((np.maximum(_levels, _SRGB_LIN_EPS) + 0.055) / 1.055) ** 2.4,
                         _levels / 12.92)  # the inverse gamma of each 8-bit level
_XYZ_OVER_WHITE = np.array(XYZ_FROM_RGB) / np.array(WHITE_D65)[:, None]


# --- RGB <-> YUV (BT.601) --------------------------------------------------------
def rgb_to_yuv(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] -> YUV (BT.601, as skimage.color.rgb2yuv): Y in [0, 1], |U| <= 0.436, |V| <= 0.615."""
    _check(rgb, 3, "rgb")
    return _apply_matrix(_matrix(YUV_FROM_RGB, rgb), rgb)


def yuv_to_rgb(yuv: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """YUV (BT.601) -> sRGB, clipped to [0, 1] unless `clip=False`."""
    _check(yuv, 3, "yuv")
    rgb = _apply_matrix(torch.linalg.inv(_matrix(YUV_FROM_RGB, yuv)), yuv)
    return rgb.clamp(0, 1) if clip else rgb


# --- Grayscale -------------------------------------------------------------------
def rgb_to_gray(rgb: torch.Tensor) -> torch.Tensor:
    """The grayscale photo of `rgb`: the neutral sRGB value with the same L* -> (B, 1, H, W)."""
    return L_to_gray(rgb_to_lab(rgb)[:, :1])


def L_to_gray(L: torch.Tensor) -> torch.Tensor:
    """L* in [0, 100] -> sRGB value of the neutral pixel with that lightness."""
    return linear_to_srgb(_lab_f_inv((L + 16) / 116)).clamp(0, 1)


def gray_to_L(gray: torch.Tensor) -> torch.Tensor:
    """sRGB value of a neutral pixel -> its L* in [0, 100] (inverse of `L_to_gray`)."""
    return 116 * _lab_f(srgb_to_linear(gray)) - 16


def gray_to_rgb(gray: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) -> (B, 3, H, W): the neutral colour image (the zero-chroma baseline)."""
    return gray.expand(-1, 3, -1, -1)


# --- Joining predicted chrominance with full-resolution luminance ----------------
def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of chrominance maps to (H, W); a no-op when sizes already match."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def join_lab(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Full-resolution L (B,1,H,W) + ab at any size (B,2,h,w) -> sRGB (B,3,H,W).

    The predicted chrominance is upsampled and joined with the *input* L, so
    the output keeps every detail of the grayscale photo (richzhang/colorization).
    """
    return lab_to_rgb(torch.cat((L, resize_to(ab, L.shape[-2:])), dim=1))


def join_yuv(Y: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Full-resolution Y (B,1,H,W) + uv at any size (B,2,h,w) -> sRGB (B,3,H,W)."""
    return yuv_to_rgb(torch.cat((Y, resize_to(uv, Y.shape[-2:])), dim=1))


# --- The one pre/post pair of every model's colourisation ----------------------------
# Pre: the network sees the gray photo at a working size. Post: its chrominance is
# upsampled to the photo's size and joined with the photo's own, full-resolution
# lightness, so any input size works and no detail of the photo is lost.
def working_size(hw: tuple[int, int], *, multiple: int | None = None, square: int | None = None,
                 longer: int | None = None, shorter: int | None = None) -> tuple[int, int]:
    """The (h, w) a network runs at for a photo of size `hw`.

    square: exactly (square, square) (Koalarization's 224 x 224). longer / shorter:
    that side scaled to the given length, never enlarged, aspect kept (Cheng's
    `work_size`, `colorize --size`). multiple: each side then rounded to the nearest
    multiple, at least one multiple (Iizuka's colorize.lua rounds to 8).
    """
    h, w = int(hw[0]), int(hw[1])
    if square is not None:
        h = w = int(square)
    for side, fn in ((longer, max), (shorter, min)):
        if side is not None and fn(h, w) > side:
            scale = side / fn(h, w)
            h, w = max(1, round(h * scale)), max(1, round(w * scale))
    if multiple:
        h, w = (max(multiple, round(v / multiple) * multiple) for v in (h, w))
    return h, w


def to_working(gray: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pre: gray (B, 1, H, W) -> (B, 1, h, w) at the working size (antialiased bilinear; no-op when equal)."""
    if tuple(gray.shape[-2:]) == tuple(size):
        return gray
    out = F.interpolate(gray.float(), size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return out.clamp_(0, 1).to(gray.dtype)


def from_working(gray: torch.Tensor, chroma: torch.Tensor, space: str = "lab") -> torch.Tensor:
    """Post: full-resolution gray (B, 1, H, W) + predicted chroma at any size (B, 2, h, w) -> sRGB (B, 3, H, W).

    space "lab": chroma is a, b and the photo's L is kept; "yuv": chroma is U, V and Y = gray.
    Computed in float32 even under autocast, so the lightness stays exact.
    """
    with torch.autocast(gray.device.type, enabled=False):
        gray, chroma = gray.float(), chroma.float()
        if space == "lab":
            return join_lab(gray_to_L(gray), chroma)
        if space == "yuv":
            return join_yuv(gray, chroma)
    raise ValueError(f"space must be 'lab' or 'yuv', got {space!r}")


# --- Per-paper normalisations ----------------------------------------------------
def iizuka_ab_to_unit(ab: torch.Tensor) -> torch.Tensor:
    """Iizuka sec. 3.2.5: ab -> [0, 1] target of the sigmoid output (clipped at |ab| = 100)."""
    return ((ab + IIZUKA_AB_RANGE) / (2 * IIZUKA_AB_RANGE)).clamp(0, 1)


def iizuka_unit_to_ab(y: torch.Tensor) -> torch.Tensor:
    """Inverse of `iizuka_ab_to_unit`: ab = 100 * (2 y - 1), as colorize.lua."""
    return IIZUKA_AB_RANGE * (2 * y - 1)


def yuv_uv_to_unit(uv: torch.Tensor) -> torch.Tensor:
    """Iizuka sec. 4.8 (colour-space comparison): UV "normalized to [0, 1]" for the sigmoid."""
    return uv / (2 * uv.new_tensor((U_MAX, V_MAX)).view(1, 2, 1, 1)) + 0.5


def yuv_unit_to_uv(y: torch.Tensor) -> torch.Tensor:
    """Inverse of `yuv_uv_to_unit`."""
    return (y - 0.5) * 2 * y.new_tensor((U_MAX, V_MAX)).view(1, 2, 1, 1)


def koala_L_to_input(L: torch.Tensor) -> torch.Tensor:
    """Baldassarre et al.: L in [0, 100] -> [-1, 1]."""
    return 2 * L / L_MAX - 1


def koala_ab_to_target(ab: torch.Tensor) -> torch.Tensor:
    """Baldassarre et al.: ab -> ab / 128, the tanh range."""
    return ab / KOALA_AB_SCALE


def koala_target_to_ab(y: torch.Tensor) -> torch.Tensor:
    return y * KOALA_AB_SCALE


def cheng_uv_to_target(uv: torch.Tensor) -> torch.Tensor:
    """Cheng et al.: YUV chrominance -> [-1, 1] per channel (scaling not given in the paper)."""
    return uv / uv.new_tensor((U_MAX, V_MAX)).view(1, 2, 1, 1)


def cheng_target_to_uv(y: torch.Tensor) -> torch.Tensor:
    return y * y.new_tensor((U_MAX, V_MAX)).view(1, 2, 1, 1)


def cheng_uv_to_target_np(uv: np.ndarray) -> np.ndarray:
    """Same as `cheng_uv_to_target` for per-pixel arrays `(..., 2)`."""
    return uv / np.array((U_MAX, V_MAX), dtype=uv.dtype)


# --- 8-bit images <-> tensors ----------------------------------------------------
def to_float(images: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 images (H,W,3) or (B,H,W,3) (or (.., H, W) gray) -> float (B, C, H, W) in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        images = np.asarray(images)
        images = images if images.flags.writeable else images.copy()  # memmaps, PIL buffers
    t = torch.as_tensor(images)
    if t.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 images, got {t.dtype}")
    if t.ndim == 2:  # (H, W) gray
        t = t[None, None]
    elif t.ndim == 3:  # (H, W, C)
        t = t.permute(2, 0, 1)[None]
    elif t.ndim == 4:  # (B, H, W, C)
        t = t.permute(0, 3, 1, 2)
    else:
        raise ValueError(f"to_float: cannot read an array of shape {tuple(t.shape)} as images")
    return t.to(dtype) / 255.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (B, C, H, W) in [0, 1] -> uint8 (B, H, W, C), rounded to nearest."""
    x = x.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
