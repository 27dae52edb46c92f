"""colorlab.color against scikit-image, round trips, gradients and the per-paper normalisations."""

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from colorlab import color


def _np(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).detach().numpy()


def _edges() -> torch.Tensor:
    """Gamut corners, the gamma breakpoints and near-black values, as a (1, 3, N, 1) image."""
    values = [0.0, 1.0, 0.04045, 0.0031308, 1e-6, 0.5]
    pts = np.array(np.meshgrid(values, values, values)).reshape(3, -1)
    return torch.tensor(pts, dtype=torch.float64).reshape(1, 3, -1, 1)


@pytest.fixture(params=["random", "edges"])
def rgb(request) -> torch.Tensor:
    if request.param == "edges":
        return _edges()
    return torch.rand(1, 3, 23, 17, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_lab_matches_skimage(rgb):
    assert np.abs(_np(color.rgb_to_lab(rgb)) - skcolor.rgb2lab(_np(rgb))).max() < 1e-4


def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
    lab = torch.stack(torch.meshgrid(torch.linspace(0, 100, 11), torch.linspace(-120, 120, 13),
                                     torch.linspace(-120, 120, 13), indexing="ij")).reshape(1, 3, -1, 1).double()
    ours = _np(color.lab_to_rgb(lab))
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = skcolor.lab2rgb(_np(lab))
    assert ours.min() >= 0 and ours.max() <= 1, "out-of-gamut Lab must be clipped"
    assert np.abs(ours - theirs).max() < 1e-4


def test_yuv_matches_skimage(rgb):
    assert np.abs(_np(color.rgb_to_yuv(rgb)) - skcolor.rgb2yuv(_np(rgb))).max() < 1e-4
    assert np.abs(_np(color.yuv_to_rgb(color.rgb_to_yuv(rgb))) - _np(rgb)).max() < 1e-10


def test_round_trip_lab(rgb):
    assert (color.lab_to_rgb(color.rgb_to_lab(rgb)) - rgb).abs().max() < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_batch_preserved(dtype):
    x = torch.rand(4, 3, 5, 6, dtype=dtype)
    for f in (color.rgb_to_lab, color.rgb_to_yuv):
        y = f(x)
        assert y.dtype == dtype and y.shape == x.shape
    assert (color.lab_to_rgb(color.rgb_to_lab(x)) - x).abs().max() < (1e-4 if dtype == torch.float32 else 1e-9)


def test_differentiable_with_finite_gradients_at_edges():
    x = _edges().clone().requires_grad_(True)
    (color.lab_to_rgb(color.rgb_to_lab(x)).sum() + color.rgb_to_yuv(x).sum()).backward()
    assert torch.isfinite(x.grad).all()
    assert torch.autograd.gradcheck(color.rgb_to_lab, (torch.rand(1, 3, 2, 2, dtype=torch.float64) * 0.8 + 0.1).requires_grad_())


def test_gray_keeps_lightness_and_has_no_chroma(rgb):
    gray = color.rgb_to_gray(rgb)
    assert gray.shape[1] == 1 and gray.min() >= 0 and gray.max() <= 1
    lab_gray = color.rgb_to_lab(color.gray_to_rgb(gray))
    # 1e-5: skimage's rounded constants (0.008856, 7.787) leave a 4e-6 step where f's two branches meet
    assert (lab_gray[:, 0] - color.rgb_to_lab(rgb)[:, 0]).abs().max() < 1e-5
    assert lab_gray[:, 1:].abs().max() < 0.01  # neutral up to skimage's rounded white point
    assert (color.gray_to_L(gray) - color.rgb_to_lab(rgb)[:, :1]).abs().max() < 1e-5


def test_join_lab_keeps_full_resolution_L():
    rgb = torch.rand(2, 3, 16, 24, dtype=torch.float64)
    lab = color.rgb_to_lab(rgb)
    ab_small = torch.nn.functional.avg_pool2d(lab[:, 1:], 2)
    out = color.join_lab(lab[:, :1], ab_small)
    assert out.shape == rgb.shape
    # L is exact wherever the joined colour is inside the gamut
    inside = ((color.lab_to_rgb(torch.cat((lab[:, :1], color.resize_to(ab_small, (16, 24))), 1), clip=False) - 0.5).abs() <= 0.5).all(1, keepdim=True)
    assert (color.rgb_to_lab(out)[:, :1] - lab[:, :1])[inside].abs().max() < 1e-6


def test_iizuka_normalisation_round_trip_and_range():
    ab = torch.tensor([-100.0, -50, 0, 50, 100]).view(1, 1, 1, 5).expand(1, 2, 1, 5)
    unit = color.iizuka_ab_to_unit(ab)
    assert unit.min() == 0 and unit.max() == 1 and unit[0, 0, 0, 2] == 0.5
    assert torch.allclose(color.iizuka_unit_to_ab(unit), ab)
    assert color.iizuka_ab_to_unit(torch.full((1, 2, 1, 1), -120.0)).min() == 0  # clipped, documented


def test_koala_normalisation():
    L = torch.tensor([0.0, 50, 100]).view(1, 1, 1, 3)
    assert torch.allclose(color.koala_L_to_input(L), torch.tensor([-1.0, 0, 1]).view(1, 1, 1, 3))
    lab = color.rgb_to_lab(torch.rand(1, 3, 32, 32))
    target = color.koala_ab_to_target(lab[:, 1:])
    assert target.abs().max() < 1  # every sRGB ab fits the tanh range
    assert torch.allclose(color.koala_target_to_ab(target), lab[:, 1:])


def test_cheng_normalisation_covers_gamut():
    corners = _edges().float()
    t = color.cheng_uv_to_target(color.rgb_to_yuv(corners)[:, 1:])
    assert t.abs().max() <= 1 + 1e-6
    assert torch.allclose(color.cheng_target_to_uv(t), color.rgb_to_yuv(corners)[:, 1:], atol=1e-6)


def test_uint8_round_trip():
    img = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    t = color.to_float(img)
    assert t.shape == (2, 3, 5, 7) and t.dtype == torch.float32
    assert np.array_equal(color.to_uint8(t), img)
    with pytest.raises(TypeError):
        color.to_float(img.astype(np.float32))


def test_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        color.rgb_to_lab(torch.rand(3, 4, 4))


def test_yuv_unit_normalisation_covers_gamut():
    uv = color.rgb_to_yuv(_edges())[:, 1:]
    unit = color.yuv_uv_to_unit(uv)
    assert unit.min() >= -1e-9 and unit.max() <= 1 + 1e-9
    assert torch.allclose(color.yuv_unit_to_uv(unit), uv)


def test_u8_to_ab_equals_rgb_to_lab_on_every_kind_of_colour():
    rng = np.random.default_rng(0)
    # random colours, the grey axis, and the levels around the gamma and f(t) breakpoints
    levels = np.arange(256, dtype=np.uint8)
    rgb = np.concatenate([rng.integers(0, 256, (4096, 3), dtype=np.uint8), np.repeat(levels[:, None], 3, axis=1),
                          np.stack((levels, levels[::-1], np.full(256, 7, np.uint8)), axis=-1)])
    expected = color.rgb_to_lab(color.to_float(rgb[None], dtype=torch.float64))[0, 1:, 0].T.numpy()  # (n, 2)
    np.testing.assert_allclose(color.u8_to_ab(rgb), expected, rtol=0, atol=1e-9)
    assert color.u8_to_ab(rgb.reshape(8, -1, 3)).shape == (8, rgb.shape[0] // 8, 2)


def test_u8_to_ab_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        color.u8_to_ab(np.zeros((2, 2, 3)))
