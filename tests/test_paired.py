"""`colorlab compare`: two configurations at the same seeds, trained once, scored paired by seed (smoke)."""

from __future__ import annotations

import argparse
import json
import shlex

import numpy as np
import pytest

from colorlab import cli, paired, readout
from colorlab.commands import compare
from colorlab.commands import readouts as readouts_command
from colorlab.errors import ColorlabError


def test_a_variant_is_key_value_overrides_of_the_preset():
    v = paired.Variant.parse(["color_loss=l1", "train.lr=0.001"])
    assert v.name == "color_loss=l1 train.lr=0.001" and dict(v.overrides) == {"color_loss": "l1", "train.lr": "0.001"}
    assert paired.Variant.parse([]).name == "preset" and paired.Variant.parse([], "paper").name == "paper"
    with pytest.raises(ColorlabError, match="KEY=VALUE"):
        paired.Variant.parse(["color_loss"])
    with pytest.raises(ColorlabError, match="--seeds"):
        paired.Variant.parse(["train.seed=3"])
    with pytest.raises(ColorlabError, match="'alpha' is set twice"):
        paired.Variant.parse(["alpha=0", "alpha=1"])
    with pytest.raises(ColorlabError, match="'alpha' is set twice"):  # two spellings of one field
        paired.Variant.parse(["alpha=0", "model.alpha=1"])
    assert len(paired.Variant.parse(["model.x=1", "train.x=2"]).overrides) == 2  # two fields of one name


def test_repeated_variant_flags_add_up_and_a_negative_limit_is_refused(capsys):
    parser = argparse.ArgumentParser()
    compare.add_arguments(parser)
    args = parser.parse_args(["--model", "iizuka2016", "--a", "color_loss=l1", "--a", "alpha=0", "--seeds", "0", "1"])
    a, b, _ = compare._variants(args)
    assert dict(a.overrides) == {"color_loss": "l1", "alpha": "0"} and b.name == "preset"
    assert cli.main(["compare", "--model", "iizuka2016", "--limit", "-1"]) == 2
    assert "--limit must be 0 (all photos) or a positive number, got -1" in capsys.readouterr().err
    with pytest.raises(ColorlabError, match="limit must be a positive number"):
        paired.eval_sets(["smoke"], "smoke", limit=0)


def test_a_comparison_of_a_configuration_with_itself_or_a_bad_field_is_refused_before_training():
    same = paired.Variant.parse(["alpha=0"], "x"), paired.Variant.parse(["model.alpha=0.0"], "y")
    with pytest.raises(ColorlabError, match="same configuration at seed 0"):
        paired.compare("iizuka2016", "smoke", *same, seeds=[0, 1], sets=["smoke"])
    with pytest.raises(ColorlabError, match="no such field 'no_such_field'"):
        paired.compare("iizuka2016", "smoke", paired.Variant.parse(["no_such_field=1"]), paired.Variant("preset"),
                       seeds=[0], sets=["smoke"])
    with pytest.raises(ColorlabError, match="distinct"):
        paired.compare("iizuka2016", "smoke", paired.Variant.parse(["alpha=0"]), paired.Variant("preset"), seeds=[0, 0])
    with pytest.raises(ColorlabError, match="no evaluation split known for \\['nowhere'\\]"):
        paired.eval_sets(["nowhere"], "smoke")


@pytest.mark.slow
def test_two_variants_are_trained_at_each_seed_and_differenced_seed_by_seed(tmp_path, capsys):
    a, b = paired.Variant.parse(["alpha=0"], "alpha 0"), paired.Variant("preset")
    record = paired.compare("iizuka2016", "smoke", a, b, seeds=[0, 1], limit=5, common={"train.lr": "0.5"})
    assert [(s["dataset"], s["images"]) for s in record["sets"]] == [("smoke", 5)]  # the default set, at the limit
    assert list(record["runs"]) == ["alpha 0/0", "alpha 0/1", "preset/0", "preset/1"]
    assert len({r["key"] for r in record["runs"].values()}) == 4
    points = {(p["variant"], p["seed"]): p for p in record["points"]}
    by_metric = {(d["dataset"], d["metric"]): d for d in record["paired"]}
    for metric in paired.METRICS:
        d = by_metric[("smoke", metric)]
        per_seed = [points[("alpha 0", s)][metric] - points[("preset", s)][metric] for s in (0, 1)]
        assert d["seeds"] == 2 and d["diff"] == pytest.approx(np.mean(per_seed))
        assert d["ci_low"] <= d["diff"] <= d["ci_high"]
        assert d["a_against_b"] == ("higher" if d["ci_low"] > 0 else "lower" if d["ci_high"] < 0 else "undecided")
    assert (paired.TOP1, "top1") in by_metric  # Iizuka's scene head, paired too
    assert all(r["threads"] == 1 for r in record["runs"].values())  # trained here, on this test's one thread
    json.dumps(record, allow_nan=False)  # strict JSON as it stands

    # the record's command makes the comparison again: every run is found trained, nothing retrains
    argv = shlex.split(record["command"])[1:]
    assert "--b" not in argv and argv[argv.index("--b-name") + 1] == "preset"  # the preset: no overrides to give
    assert argv[argv.index("--set") + 1] == "train.lr=0.5" and argv[argv.index("--limit") + 1] == "5"
    assert argv[argv.index("--threads") + 1] == "1"  # the thread count that trained them, not in their keys
    assert cli.main(argv + ["--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(line.endswith(" trained") for line in lines)
    assert {line.split(" run ")[1].split()[0] for line in lines} == {r["key"] for r in record["runs"].values()}
    out = tmp_path / "record.json"
    assert cli.main(argv + ["--out", str(out)]) == 0
    again = json.loads(out.read_text())
    assert again["paired"] == record["paired"] and again["sets"] == record["sets"]


def test_one_seed_gives_no_interval_and_the_record_stays_strict_json():
    one = [{"a": "x", "b": "y", "metric": "psnr", "diff": 0.1, "ci_low": float("nan"), "ci_high": float("nan")}]
    clean = paired._json_clean({"paired": one, "n": np.int64(3), "v": np.float32(0.5)})
    assert clean["paired"][0]["ci_low"] is None and type(clean["n"]) is int and clean["v"] == 0.5
    assert paired._direction(one[0]) == "undecided"
    json.dumps(clean, allow_nan=False)


def test_a_readout_sweep_needs_a_readout_besides_the_own_colours_and_valid_gains():
    found = paired.readouts([1.5, 1.0, 1.5], shorter=None)
    assert list(found) == [paired.OWN, "gain 1.5"]  # the own colours first, a repeated gain once
    assert list(paired.readouts([2], shorter=[64])) == [paired.OWN, "gain 2", "gain 1 shorter 64", "gain 2 shorter 64"]
    assert list(paired.readouts([1.2345671, 1.2345674, 1.0000001])) == [  # labels read back as their gains
        paired.OWN, "gain 1.2345671", "gain 1.2345674", "gain 1.0000001"]
    with pytest.raises(ColorlabError, match="nothing to sweep"):
        paired.sweep_readouts("iizuka2016", "smoke", [1.0], seeds=[0], sets=["smoke"])
    with pytest.raises(ColorlabError, match="bad readout \\(gain -1.0, shorter None\\): gain must be a finite number"):
        paired.sweep_readouts("iizuka2016", "smoke", [-1.0], seeds=[0], sets=["smoke"])
    with pytest.raises(ColorlabError, match="bad readout \\(gain 1.0, shorter 4\\): shorter must be"):
        paired.readouts([2.0], shorter=[4])
    with pytest.raises(ColorlabError, match="not as an override"):
        paired.sweep_readouts("iizuka2016", "smoke", [2.0], seeds=[0], common={"train.seed": "1"})
    with pytest.raises(ColorlabError, match="workers must be at least 1"):
        paired.sweep_readouts("iizuka2016", "smoke", [2.0], seeds=[0], workers=0)
    with pytest.raises(ColorlabError, match="no such field 'no_such_field'"):
        paired.sweep_readouts("iizuka2016", "smoke", [2.0], seeds=[0], common={"no_such_field": "1"})


def test_a_sweeps_command_line_parses_back_to_the_same_readouts():
    parser = argparse.ArgumentParser()
    readouts_command.add_arguments(parser)
    gains, shorter = [1.2345671, 2.0, 1.0], [64]
    chosen = [argparse.Namespace(dataset="smoke")]
    flags = ["--gains"] + [readout.number(g) for g in gains] + ["--shorter", "64"]
    line = paired.command("readouts", "iizuka2016", "smoke", flags, [0, 1], chosen, None, 2, 1)
    args = parser.parse_args(shlex.split(line)[2:])
    assert paired.readouts(args.gains, args.shorter) == paired.readouts(gains, shorter)
    assert (args.seeds, args.sets, args.limit, args.workers, args.threads) == ([0, 1], ["smoke"], 0, 2, 1)


@pytest.mark.slow
def test_each_readout_is_paired_by_seed_against_the_runs_own_colours(tmp_path, capsys):
    record = paired.sweep_readouts("koalarization2017", "smoke", [2.0], seeds=[0, 1], limit=5,
                                   common={"train.lr": "0.5"})
    assert list(record["readouts"]) == [paired.OWN, "gain 2"] and list(record["runs"]) == ["0", "1"]
    assert len(record["points"]) == 4  # 2 readouts x 2 seeds x 1 set
    points = {(p["readout"], p["seed"]): p for p in record["points"]}
    assert {p["run"] for p in record["points"]} == {r["key"] for r in record["runs"].values()}
    for metric in paired.METRICS:
        d = next(d for d in record["paired"] if d["metric"] == metric)
        per_seed = [points[("gain 2", s)][metric] - points[(paired.OWN, s)][metric] for s in (0, 1)]
        assert (d["a"], d["b"], d["seeds"]) == ("gain 2", paired.OWN, 2) and d["diff"] == pytest.approx(np.mean(per_seed))
        assert d["a_against_b"] == ("higher" if d["ci_low"] > 0 else "lower" if d["ci_high"] < 0 else "undecided")
    # twice the chroma: more colourful than the same weights' own colours
    assert all(points[("gain 2", s)]["colorfulness_ratio"] > points[(paired.OWN, s)]["colorfulness_ratio"] for s in (0, 1))
    targets = {t["readout"]: t for t in record["vivid_targets"]}
    assert targets["gain 2"]["colorfulness_ratio_seed_0"] == pytest.approx(points[("gain 2", 0)]["colorfulness_ratio"])
    assert list(paired.differences_table(record, "readout")["readout"].unique()) == ["gain 2"]
    json.dumps(record, allow_nan=False)

    argv = shlex.split(record["command"])[1:]  # the record's command finds every run trained
    assert argv[argv.index("--gains") + 1] == "2" and argv[argv.index("--threads") + 1] == "1"
    assert argv[argv.index("--limit") + 1] == "5" and argv[argv.index("--set") + 1] == "train.lr=0.5"
    assert cli.main(argv + ["--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.endswith(" trained") for line in lines[:2])
    assert {line.split(" run ")[1].split()[0] for line in lines[:2]} == {r["key"] for r in record["runs"].values()}
    assert lines[2].startswith("readouts: gain 1, gain 2")
    out = tmp_path / "sweep.json"
    assert cli.main(argv + ["--out", str(out)]) == 0
    again = json.loads(out.read_text())
    assert again["paired"] == record["paired"] and again["vivid_targets"] == record["vivid_targets"]
