"""Notebook 08's library: the trial sequence is seeded and mixes real and colourised images, answers are appended
durably (a restarted or second session adds to the file), malformed rows are skipped and counted, the Wilson
interval is the textbook one, the report sits beside the paper, and the notebook runs headless under papermill."""

from __future__ import annotations

import math
import multiprocessing

import numpy as np
import pandas as pd
import pytest

from colorlab import baselines, naturalness, naturalness_ui, notebooks, settings
from colorlab.study import EvalSet

NOTEBOOK = notebooks.notebooks_dir() / "08_naturalness_study.ipynb"


@pytest.fixture(scope="module")
def trials():
    """Four small photos x (real, gray, mean-ab): no training, no data folder."""
    rng = np.random.default_rng(0)
    photos = EvalSet("fake", "val", [f"img{i}" for i in range(4)],
                     [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(4)])
    methods = {"gray": baselines.GrayBaseline(), "mean-ab": baselines.MeanChromaBaseline((12.0, 20.0))}
    return naturalness.make_trials(photos, methods)


def _keys(seq):
    return [(t.image, t.method) for t in seq]


def test_trials_show_every_photo_real_and_colourised(trials):
    assert len(trials) == 4 * 3
    assert {t.method for t in trials} == {naturalness.REAL, "gray", "mean-ab"}
    real, gray = trials[0], trials[1]
    assert real.image == gray.image and real.method == naturalness.REAL and gray.method == "gray"
    assert gray.rgb.shape == real.rgb.shape and gray.rgb.dtype == np.uint8
    assert np.ptp(gray.rgb.astype(int), axis=-1).max() <= 1  # the gray baseline: no chroma


def test_sequence_is_seeded_per_viewer_and_mixes_real_and_colourised(trials):
    a = naturalness.sequence(trials, 0, "ann")
    assert _keys(a) == _keys(naturalness.sequence(trials, 0, "ann"))
    assert sorted(_keys(a)) == sorted(_keys(trials))  # every trial once
    assert _keys(a) != _keys(naturalness.sequence(trials, 1, "ann"))
    assert _keys(a) != _keys(naturalness.sequence(trials, 0, "bob"))
    assert _keys(a) != _keys(trials)
    first_half = {t.method for t in a[: len(a) // 2]}
    assert naturalness.REAL in first_half and first_half - {naturalness.REAL}  # shuffled, not blocked by method


def test_answers_append_and_survive_a_restart(trials, tmp_path):
    path = tmp_path / "answers.csv"
    first = naturalness.Session(path, naturalness.sequence(trials, 0, "ann"), "ann", seed=0)
    for value in (1, 0, 1):
        first.answer(bool(value))
    del first  # the kernel restarts: nothing was held in memory only
    answers, skipped = naturalness.read_answers(path)
    assert len(answers) == 3 and skipped == 0
    second = naturalness.Session(path, naturalness.sequence(trials, 0, "bob"), "bob", seed=0)
    naturalness.answer_all(second, [1, 1])
    answers, skipped = naturalness.read_answers(path)
    assert len(answers) == 5 and skipped == 0
    assert answers.groupby("viewer").size().to_dict() == {"ann": 3, "bob": 2}
    assert answers["session"].nunique() == 2 and answers["natural"].sum() == 4
    assert path.read_text().count("time,session,viewer") == 1  # one header, written by the first session
    assert list(answers.columns) == list(naturalness.COLUMNS)
    assert answers.loc[answers["viewer"] == "bob", "trial"].tolist() == [0, 1]


def _append_many(path, viewer: str, n: int) -> None:
    for i in range(n):
        naturalness.append_answer(path, {"time": "t", "session": viewer, "viewer": viewer, "seed": 0, "trial": i,
                                         "dataset": "fake", "image": f"img{i}", "method": "gray", "natural": i % 2})


def test_sessions_appending_at_once_lose_no_answer(tmp_path):
    path = tmp_path / "answers.csv"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_append_many, args=(path, f"v{k}", 40)) for k in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    answers, skipped = naturalness.read_answers(path)
    assert skipped == 0 and len(answers) == 160
    assert answers.groupby("viewer").size().tolist() == [40] * 4


def test_a_session_rejects_answers_after_its_last_trial(trials, tmp_path):
    session = naturalness.Session(tmp_path / "a.csv", trials[:2], "ann")
    naturalness.answer_all(session, [0, 1])
    assert session.done and session.current is None
    with pytest.raises(IndexError):
        session.answer(True)
    with pytest.raises(ValueError, match="ANSWERS"):
        naturalness.answer_all(naturalness.Session(tmp_path / "b.csv", trials[:2], "bob"), [1, 1, 1])
    with pytest.raises(ValueError, match="ANSWERS"):
        naturalness.answer_all(naturalness.Session(tmp_path / "c.csv", trials[:2], "bob"), [2])


def test_truncated_and_malformed_rows_are_skipped_and_counted(trials, tmp_path):
    path = tmp_path / "answers.csv"
    naturalness.answer_all(naturalness.Session(path, trials, "ann, the \"first\"\nstudent"), [1, 0, 1])
    with open(path, "a") as f:
        f.write("not,a,row\n")
        f.write("2024-01-01T00:00:00+00:00,s,ann,0,3,fake,img0,gray,yes\n")  # natural must be 0 or 1
        f.write("2024-01-01T00:00:00+00:00,s,ann,0,4,fake,img1,gr")  # a crash mid-line: no newline
    naturalness.answer_all(naturalness.Session(path, trials, "bob"), [1])  # starts a fresh line
    answers, skipped = naturalness.read_answers(path)
    assert skipped == 3 and len(answers) == 4
    assert set(answers["viewer"]) == {'ann, the "first" student', "bob"}  # commas and quotes survive, newlines do not
    table = naturalness.report(answers, ["gray", "mean-ab"])
    assert table["answers"].sum() == 4
    assert "3 malformed rows skipped" in naturalness.describe(answers, skipped, path)


def test_reading_a_missing_file_gives_no_answers(tmp_path):
    answers, skipped = naturalness.read_answers(tmp_path / "none.csv")
    assert answers.empty and skipped == 0
    table = naturalness.report(answers, [naturalness.FULL])
    assert table["method"].tolist() == [naturalness.REAL, naturalness.FULL]
    assert (table["answers"] == 0).all() and table["naturalness"].isna().all()


def test_wilson_interval_matches_the_closed_form_by_hand():
    # 8 of 10, z = 1.959964: centre (0.8 + z^2/20) / (1 + z^2/10) = 0.716746,
    # half width z * sqrt(0.8 * 0.2 / 10 + z^2 / 400) / (1 + z^2/10) = 0.226578
    low, high = naturalness.wilson(8, 10)
    assert low == pytest.approx(0.490162, abs=1e-5) and high == pytest.approx(0.943324, abs=1e-5)
    low, high = naturalness.wilson(0, 5)  # no natural answer: the interval still has width
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.434482, abs=1e-5)
    assert all(math.isnan(v) for v in naturalness.wilson(0, 0))


def _answers(rows):
    df = pd.DataFrame(rows, columns=["image", "method", "natural"])
    return df.assign(time="t", session="s", viewer=[f"v{i % 2}" for i in range(len(df))], seed=0, trial=0,
                     dataset="fake")[list(naturalness.COLUMNS)]


def test_report_sets_naturalness_and_its_median_over_images_beside_the_paper():
    real = naturalness.REAL
    answers = _answers([("a", real, 1), ("a", real, 1), ("b", real, 1), ("b", real, 0), ("c", real, 0),
                        ("c", real, 0), ("a", naturalness.FULL, 1), ("b", naturalness.FULL, 1)])
    table = naturalness.report(answers, [naturalness.FULL, naturalness.NO_GLOBAL]).set_index("method")
    assert list(table.index) == [real, naturalness.FULL, naturalness.NO_GLOBAL]
    assert {"paper_median", "paper_note", "median_per_image", "ci95_low", "ci95_high", "answers"} <= set(table.columns)
    assert table.loc[real, "answers"] == 6 and table.loc[real, "naturalness"] == pytest.approx(0.5)
    assert table.loc[real, "median_per_image"] == pytest.approx(0.5)  # per-image shares 1, 0.5, 0
    assert (table.loc[real, "ci95_low"], table.loc[real, "ci95_high"]) == pytest.approx(naturalness.wilson(3, 6))
    assert table.loc[real, "paper_median"] == 0.977 and table.loc[naturalness.FULL, "paper_median"] == 0.926
    assert table.loc[naturalness.NO_GLOBAL, "paper_median"] == 0.698
    assert "median over images" in table.loc[real, "paper_note"]
    assert table.loc[naturalness.NO_GLOBAL, "answers"] == 0 and table.loc[real, "images"] == 3
    fig = naturalness.figure(table.reset_index(), answers, skipped=2)
    title = fig.axes[0].get_title()
    assert "3 fake images" in title and "8 answers" in title and "2 malformed" in title


def test_simulated_answers_are_seeded_and_follow_the_paper(trials):
    many = trials * 50
    a = naturalness.simulate(many, 0)
    assert a == naturalness.simulate(many, 0) and a != naturalness.simulate(many, 1)
    real = np.mean([v for v, t in zip(a, many) if t.method == naturalness.REAL])
    other = np.mean([v for v, t in zip(a, many) if t.method == "gray"])
    assert real > 0.9 and 0.35 < other < 0.65  # 0.977 for real photos; 0.5 for a method without a paper value


def test_answers_default_to_the_profiles_folder_and_simulated_ones_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_RESULTS", str(tmp_path))
    root = settings.results_dir()
    assert naturalness.answers_path("", "smoke") == root / "naturalness" / "smoke" / "answers.csv"
    assert naturalness.answers_path("", "smoke", simulated=True).name == "answers_simulated.csv"
    assert naturalness.answers_path("class/a.csv") == root / "class" / "a.csv"
    assert naturalness.answers_path(tmp_path / "x.csv") == tmp_path / "x.csv"


def test_page_records_each_click(trials, tmp_path):
    path = tmp_path / "answers.csv"
    page = naturalness_ui.build_ui(trials, path, seed=0, methods=["gray", "mean-ab"])
    c = page.controls
    c["start"].click()  # no name yet
    assert "name" in c["status"].value and not path.exists()
    c["viewer"].value = "ann"
    c["start"].click()
    assert c["image"].value[:4] == b"\x89PNG" and not c["natural"].disabled
    c["natural"].click()
    c["not_natural"].click()
    answers, _ = naturalness.read_answers(path)
    assert answers["natural"].tolist() == [1, 0] and set(answers["viewer"]) == {"ann"}
    expected = naturalness.sequence(trials, 0, "ann")[:2]
    assert list(zip(answers["image"], answers["method"])) == _keys(expected)
    for _ in range(len(trials) - 2):
        c["natural"].click()
    assert c["natural"].disabled and "Thank you" in c["status"].value
    assert len(naturalness.read_answers(path)[0]) == len(trials)


@pytest.mark.slow
def test_notebook_runs_headless_and_a_second_session_appends(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_RESULTS", str(tmp_path / "results"))
    params = {"INTERACTIVE": False, "ANSWERS": "auto", "N_IMAGES": 3}
    notebooks.run_one(NOTEBOOK, "smoke", tmp_path / "executed", params)
    table = pd.read_csv(tmp_path / "results" / "tables" / "08_naturalness.csv").set_index("method")
    trials = int(table["answers"].sum())
    assert trials == 3 * 3  # 3 photos x (real, with and without global features)
    assert table.loc[naturalness.REAL, "paper_median"] == 0.977 and naturalness.NO_GLOBAL in table.index
    assert ((table["ci95_low"] <= table["naturalness"]) & (table["naturalness"] <= table["ci95_high"])).all()
    assert (tmp_path / "results" / "figures" / "08_naturalness.png").stat().st_size > 1000
    csv = tmp_path / "results" / "naturalness" / "smoke" / "answers_simulated.csv"
    assert len(naturalness.read_answers(csv)[0]) == trials
    notebooks.run_one(NOTEBOOK, "smoke", tmp_path / "executed", {**params, "ANSWERS": [1, 0, 1]})
    answers, skipped = naturalness.read_answers(csv)
    assert len(answers) == trials + 3 and answers["session"].nunique() == 2 and skipped == 0
    table = pd.read_csv(tmp_path / "results" / "tables" / "08_naturalness.csv")
    assert table["answers"].sum() == trials + 3
