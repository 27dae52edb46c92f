"""`colorlab bench`: FLOP counts, the registry and hooks, and a quick run that writes the expected JSON."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from colorlab import bench, cli
from colorlab.models import iizuka2016 as iz


def _conv(cin, cout, hw):
    return 2 * cin * cout * 9 * hw * hw


def _paper_gflop(S: int, G: int = 224, n_classes: int = 205) -> float:
    """Table 1 of Iizuka et al. 2016 by hand, square input S, global input G."""
    def low(s):
        return (_conv(1, 64, s // 2) + _conv(64, 128, s // 2) + _conv(128, 128, s // 4) + _conv(128, 256, s // 4)
                + _conv(256, 256, s // 8) + _conv(256, 512, s // 8))

    total = low(S) + (0 if S == G else low(G))
    total += _conv(512, 512, S // 8) + _conv(512, 256, S // 8)  # mid-level
    total += _conv(512, 512, G // 16) * 2 + _conv(512, 512, G // 32) * 2  # global convs
    total += 2 * (7 * 7 * 512 * 1024 + 1024 * 512 + 512 * 256)  # global FCs
    total += 2 * 512 * 256 * (S // 8) ** 2  # fusion, 1x1
    total += _conv(256, 128, S // 8) + _conv(128, 64, S // 4) + _conv(64, 64, S // 4) + _conv(64, 32, S // 2)
    total += _conv(32, 2, S // 2)
    total += 2 * (512 * 256 + 256 * n_classes)  # classification head
    return total / 1e9


def test_count_flops_is_exact():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    assert bench.count_flops(net, torch.rand(2, 3, 8, 8)) == 2 * (2 * 3 * 4 * 9 * 16 + 2 * 64 * 5)
    paper = iz.fold_batchnorm(iz.build(iz.PRESETS["paper"]))
    for size in (224, 512):
        assert bench.count_flops(paper, torch.rand(1, 1, size, size)) / 1e9 == pytest.approx(_paper_gflop(size), rel=1e-9)


def test_timed_reports_median_and_min():
    calls = []
    t = bench.timed(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and t["runs"] == 3 and 0 <= t["min_s"] <= t["median_s"]


def test_quick_cli_writes_expected_json(tmp_path):
    out = tmp_path / "bench.json"
    args = ["bench", "--quick", "--out", str(out), "--threads", "1"]
    for name in ("matmul", "iizuka2016_inference", "iizuka2016_train"):
        args += ["--only", name]
    assert cli.main(args) == 0
    result = json.loads(out.read_text())
    assert result["quick"] is True and {"cpu", "threads", "torch"} <= set(result["machine"])
    r = result["results"]
    assert set(r) == {"matmul", "iizuka2016_inference", "iizuka2016_train"}
    assert r["matmul"]["fp32"]["gflops"] > 0
    inf = r["iizuka2016_inference"]
    assert set(inf["sizes"]) == {"32", "64"} and set(inf["gflop"]) == {"32", "64"}
    for size in ("32", "64"):
        for dtype in bench.dtypes():
            assert inf["sizes"][size][dtype]["median_s"] > 0 and inf["sizes"][size][dtype]["gflops"] > 0
    assert set(inf["best"]) == set(bench.dtypes()) and inf["best"]["fp32"] in inf["variants"]
    assert inf["variants"]["fp32/contiguous/eager"]["max_abs_diff_vs_fp32"] < 1e-5
    if "bf16" in bench.dtypes():
        assert inf["variants"]["bf16/channels_last/eager"]["max_abs_diff_vs_fp32"] < 0.05
    assert inf["meets_target_512"] is False  # never claimed from a quick run
    dtypes = bench.dtypes()
    assert "error" not in r["iizuka2016_train"], r["iizuka2016_train"]
    assert r["iizuka2016_train"]["fp32"]["images_per_s"] > 0 and r["iizuka2016_train"]["gflop_per_step"] > 0
    assert ("bf16" in dtypes) == isinstance(r["iizuka2016_train"]["bf16"], dict)  # emulated bf16 is skipped, saying so
    assert result["training_vs_ceilings"]["iizuka2016_train/fp32"]["of_matmul_ceiling"] > 0


def test_training_is_reported_against_the_ceilings_and_emulated_bf16_is_skipped(tmp_path, monkeypatch):
    from colorlab import train

    monkeypatch.setattr(train, "native_bf16", lambda: False)
    out = tmp_path / "bench.json"
    args = ["bench", "--quick", "--out", str(out), "--threads", "1"]
    for name in ("matmul", "conv", "koalarization2017_train"):
        args += ["--only", name]
    assert cli.main(args) == 0
    result = json.loads(out.read_text())
    r = result["results"]
    assert all(isinstance(r[n]["bf16"], str) and "emulated" in r[n]["bf16"] for n in r)
    assert r["conv"]["fp32"]["forward_backward"]["gflops"] > 0
    frac = result["training_vs_ceilings"]["koalarization2017_train/fp32"]
    assert 0 < frac["of_conv_ceiling"] and 0 < frac["of_matmul_ceiling"]


def test_unknown_bench_is_refused(tmp_path, capsys):
    assert cli.main(["bench", "--quick", "--only", "nope", "--out", str(tmp_path / "b.json")]) == 2
    assert "nope" in capsys.readouterr().err and not (tmp_path / "b.json").exists()


def test_registry_hooks_and_failures_are_recorded(tmp_path, monkeypatch):
    seen = {}

    def offered(sizes=(224,), preset="paper", repeats=5, device="cpu"):
        seen.update(sizes=sizes, preset=preset, repeats=repeats)
        return {"seconds": {str(s): 0.1 for s in sizes}}

    def broken(opts):
        raise RuntimeError("boom")

    monkeypatch.setattr(bench, "_model_benches", lambda: {"fake_model": bench._calling(offered)})
    monkeypatch.setitem(bench.BENCHES, "broken", broken)
    out = tmp_path / "b.json"
    assert cli.main(["bench", "--quick", "--only", "fake_model", "--only", "broken", "--out", str(out)]) == 1
    result = json.loads(out.read_text())["results"]
    assert seen == {"sizes": (32, 64), "preset": "smoke", "repeats": 2}
    assert result["fake_model"]["seconds"] == {"32": 0.1, "64": 0.1}
    assert "boom" in result["broken"]["error"]


@pytest.mark.data
def test_bf16_quality_on_kodak(mirror):
    mirror("kodak24")
    r = bench.bench_iizuka_bf16_quality(bench.Options(quick=True))
    assert r["images"] == 2 and r["weights"] == "random" and "needs trained weights" in r["note"]
    assert r["psnr_bf16_vs_fp32_db"] > 30 and abs(r["delta_db"]) < 1


def test_training_steps_are_timed_in_both_layouts_and_side_by_side(tmp_path):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--quick", "--out", str(out), "--threads", "2", "--only", "iizuka2016_train",
                     "--only", "thread_layout"]) == 0
    r = json.loads(out.read_text())["results"]
    step = r["iizuka2016_train"]["fp32"]
    assert set(step["layouts"]) == {"contiguous", "channels_last"} and step["layout"] in step["layouts"]
    assert all(v["images_per_s"] > 0 for v in step["layouts"].values())
    layout = r["thread_layout"]
    assert layout["processes"] >= 2 and len(layout["per_process_images_per_s"]) == layout["processes"]
    assert layout["gain"] == pytest.approx(layout["side_by_side_images_per_s"] / layout["one_process_images_per_s"])


def test_compiling_is_timed_only_on_request(monkeypatch):
    called = []
    monkeypatch.setitem(bench.BENCHES, "iizuka2016_train_compiled", lambda opts: called.append(1) or {})
    monkeypatch.setattr(bench, "_model_benches", dict)
    for name in list(bench.BENCHES):
        if name != "iizuka2016_train_compiled":
            monkeypatch.setitem(bench.BENCHES, name, lambda opts: {"ran": True})
    r = bench.run_benches(bench.Options(quick=True), progress=None)["results"]
    assert "iizuka2016_train_compiled" in bench.ON_REQUEST and "iizuka2016_train_compiled" not in r and not called
    assert set(r) == set(bench.BENCHES) - bench.ON_REQUEST


@pytest.mark.slow
def test_a_compiled_training_step_is_timed_against_eager(tmp_path):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--quick", "--out", str(out), "--threads", "1", "--only", "iizuka2016_train_compiled"]) == 0
    r = json.loads(out.read_text())["results"]["iizuka2016_train_compiled"]
    assert "error" not in r, r
    assert r["eager"]["images_per_s"] > 0 and r["compiled"]["images_per_s"] > 0 and r["compile_seconds"] > 0
    assert r["speedup"] == pytest.approx(r["eager"]["median_s"] / r["compiled"]["median_s"])
