"""MobileNetV2 converted from the uint8 TFLite file: TF padding, the graph, the weight cache,
and agreement with the reference interpreter (ai-edge-litert, a test-only dependency)."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colorlab import color, data, images, settings
from colorlab.models import layers
from colorlab.models import mobilenet_v2 as mn
from colorlab.models import tflite as tfl


def test_same_padding_is_tensorflows():
    assert mn.SameConv2d is layers.SameConv2d  # re-exported for colorlab.models.koalarization2017
    assert layers.same_padding(224, 3, 2) == (0, 1)  # the odd pixel goes after
    assert layers.same_padding(225, 3, 2) == (1, 1)
    assert layers.same_padding(7, 3, 1) == (1, 1)
    assert layers.same_padding(7, 1, 1) == (0, 0)


@pytest.mark.parametrize("h, w", [(8, 9), (15, 16), (7, 7)])
@pytest.mark.parametrize("stride", [1, 2])
def test_same_conv_matches_tf_padding(h, w, stride):
    torch.manual_seed(0)
    conv = layers.SameConv2d(2, 3, 3, stride=stride)
    x = torch.randn(1, 2, h, w)

    def pads(n):  # TF: out = ceil(n / s), pad total = max((out - 1) s + k - n, 0), the extra one after
        total = max((math.ceil(n / stride) - 1) * stride + 3 - n, 0)
        return total // 2, total - total // 2

    (t, b), (l, r) = pads(h), pads(w)
    expected = F.conv2d(F.pad(x, (l, r, t, b)), conv.weight, conv.bias, stride)
    out = conv(x)
    assert out.shape[-2:] == (math.ceil(h / stride), math.ceil(w / stride))
    torch.testing.assert_close(out, expected)


def test_random_classifier_runs_on_any_size_and_is_seeded():
    net = mn.load(mn.ClassifierConfig("mobilenet_v2_random"))
    assert not net.pretrained and "RANDOM" in net.source
    x = torch.rand(2, 3, 37, 50)
    with torch.no_grad():
        out = net(x)
        again = mn.load(mn.ClassifierConfig("mobilenet_v2_random"))(x)
        other = mn.load(mn.ClassifierConfig("mobilenet_v2_random", seed=1))(x)
    assert out.shape == (2, mn.NUM_CLASSES) and torch.isfinite(out).all()
    torch.testing.assert_close(out, again)
    assert not torch.allclose(out, other)
    assert out.std() > 0  # He init: the logits neither vanish nor saturate
    with pytest.raises(ValueError, match="quantisation grids"):
        net.emulate_uint8(True)


def test_inception_resnet_v2_is_explained():
    with pytest.raises(NotImplementedError, match="weights not available here"):
        mn.load(mn.ClassifierConfig("inception_resnet_v2", weights="/nowhere/irv2.ckpt"))
    with pytest.raises(ValueError, match="unknown classifier"):
        mn.load(mn.ClassifierConfig("vgg16"))


def test_missing_weights_say_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path / "no-data"))
    assert not mn.available()
    with pytest.raises(FileNotFoundError, match="mobilenet_v2") as err:
        mn.load()
    assert "colorlab data fetch mobilenet_v2" in str(err.value)
    assert mn.resolve("mobilenet_v2", fallback_random=True).name == "mobilenet_v2_random"
    assert mn.resolve("mobilenet_v2").name == "mobilenet_v2"


def test_a_file_that_is_not_tflite_is_named(tmp_path):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"definitely not a flatbuffer")
    with pytest.raises(ValueError, match="broken.tflite"):
        tfl.convert(bad, mn.MobileNetV2())


# --- with the data mirror ----------------------------------------------------------
@pytest.fixture
def tflite(mirror):
    return mirror("mobilenet_v2") / mn.TFLITE_NAME


def _interpreter(path):
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert (test dependency) not installed")
    with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": reading the logits is what we want
        warnings.simplefilter("ignore", UserWarning)
        it = litert.Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    (logits,) = [d for d in it.get_tensor_details() if d["name"].startswith("MobilenetV2/Logits/Conv2d_1c_1x1/BiasAdd")
                 and tuple(d["shape"]) == (1, 1, 1, mn.NUM_CLASSES)]
    return it, logits


def _reference_logits(it, logits, batch_u8):
    """The interpreter's pre-softmax logits as uint8 codes, one image at a time."""
    out = []
    for x in batch_u8:
        it.set_tensor(it.get_input_details()[0]["index"], x[None])
        it.invoke()
        out.append(it.get_tensor(logits["index"]).reshape(-1).astype(np.int32))
    return np.stack(out)


@pytest.mark.data
def test_graph_labels_and_weight_cache(tflite, monkeypatch):
    graph = tfl.read_tflite(tflite)
    assert graph["counts"] == {"CONV_2D": 36, "DEPTHWISE_CONV_2D": 17, "ADD": 10, "AVERAGE_POOL_2D": 1,
                               "RESHAPE": 1, "SOFTMAX": 1}
    assert graph["input_grid"] == (0.0078125, 128)  # x = q / 128 - 1
    labels = mn.labels()
    assert len(labels) == 1001 and labels[:2] == ["background", "tench"]

    net = mn.load()
    cached = list((settings.cache_dir() / "classifiers").glob("*.pt"))
    assert [p.name for p in cached] == [tfl.cache_path(tflite, mn.MobileNetV2).name]
    assert mn.identity(mn.ClassifierConfig()) == f"mobilenet_v2-{tfl.weights_key(tflite, mn.MobileNetV2)[:16]}-u8"
    monkeypatch.setattr(tfl, "convert", lambda path, net: pytest.fail("converted twice"))
    again = mn.load()
    for (k, a), (_, b) in zip(net.state_dict().items(), again.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    assert "sha256 " + tfl.sha256(tflite)[:12] in again.source


@pytest.mark.data
def test_matches_the_interpreter_on_synthetic_images(tflite):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:224, 0:224] / 223.0
    smooth = np.stack([xx, yy, 1 - xx * yy], -1)
    checker = ((np.floor(xx * 8) + np.floor(yy * 8)) % 2)[..., None].repeat(3, -1)
    batch = np.stack([
        rng.integers(0, 256, (224, 224, 3)),  # noise
        smooth * 255, checker * 255, np.full((224, 224, 3), 128.0), np.zeros((224, 224, 3)),
        np.clip(smooth * 255 + rng.normal(0, 20, (224, 224, 3)), 0, 255),
    ]).round().astype(np.uint8)
    it, logits = _interpreter(tflite)
    ref = _reference_logits(it, logits, batch)  # (6, 1001) uint8 codes
    scale, zero = logits["quantization"]
    with torch.no_grad():
        exact = mn.load()(color.to_float(batch)).numpy()
        plain = mn.load(mn.ClassifierConfig(uint8_activations=False))(color.to_float(batch)).numpy()
    codes = np.clip(np.round(exact / scale) + zero, 0, 255)
    assert np.mean(codes == ref) > 0.999 and np.abs(codes - ref).max() <= 1  # bit-exact but for the final rounding
    assert (exact.argmax(1) == ref.argmax(1)).all()
    ref_real = (ref - zero) * scale
    for ours in (exact, plain):
        assert np.corrcoef(ours.ravel(), ref_real.ravel())[0, 1] > 0.98


@pytest.mark.data
@pytest.mark.slow
def test_top1_agrees_with_the_interpreter_on_imagenet_sample(tflite, mirror, capsys):
    """All 1000 photos, the classifier's own preprocessing (centre crop 87.5 %, resize to 224)."""
    mirror("imagenet-sample")
    samples = data.samples("imagenet-sample", "all")
    batch = np.stack([mn.prepare_uint8(images.read_rgb(s.path)) for s in samples])  # (1000, 224, 224, 3)
    labels = np.array([s.label + 1 for s in samples])  # TFLite index 0 is "background"
    it, logits = _interpreter(tflite)
    ref = _reference_logits(it, logits, batch)
    net = mn.load()
    with torch.no_grad():
        ours = np.concatenate([net(color.to_float(batch[i : i + 50])).numpy() for i in range(0, len(batch), 50)])
    top = ours.argmax(1)
    # the interpreter's 8-bit logits can tie: agreeing with any of its tied maxima counts
    agree = np.mean(ref[np.arange(len(ref)), top] == ref.max(1))
    from colorlab import metrics

    acc, ref_acc = metrics.topk_accuracy(ours, labels), metrics.topk_accuracy(ref.astype(np.float64), labels)
    with capsys.disabled():
        print(f"\nMobileNetV2 on imagenet-sample: top-1 agreement with the interpreter {agree:.3f}; "
              f"ours top-1/5 {acc[1]:.3f}/{acc[5]:.3f}, interpreter {ref_acc[1]:.3f}/{ref_acc[5]:.3f} (ties count against)")
    assert agree >= 0.99
    assert abs(acc[1] - ref_acc[1]) <= 0.01 and acc[1] > 0.6
