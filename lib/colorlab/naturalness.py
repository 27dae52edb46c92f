"""Notebook 08, a classroom naturalness study: Iizuka et al. 2016's user study (sec. 4.3, Fig. 5) re-run with a class.

The paper asked 10 people "Does this image look natural to you?" about real
photos and photos colourised with and without its global features, one image
at a time, in random order. Here a student (or a class taking turns, each with
a viewer name) does the same: each *trial* is one image, a real photo or one
method's colours of its gray version; each answer is one row of a CSV
(`COLUMNS`), appended and made durable as it is given, so a kernel restart
loses nothing and a second session adds to the same file.

The report gives each method's naturalness (share of "natural" answers) with a
95 % Wilson interval and, as the paper reports it, the median over images of
each image's share of "natural". The widgets are `colorlab.naturalness_ui`.
"""

from __future__ import annotations

import csv
import datetime
import io
import os
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from colorlab import plots, profiles, settings, study
from colorlab.errors import ColorlabError

REAL = "real photo"
FULL = "iizuka2016"
NO_GLOBAL = "iizuka2016 no global"
# Iizuka et al. 2016 Fig. 5: median naturalness over images (10 users, ~1,500 images each).
# Our method name -> (value, the paper's label).
PAPER = {REAL: (0.977, "ground truth"), FULL: (0.926, "proposed"), NO_GLOBAL: (0.698, "baseline: no global features")}
MAX_SIDE = 256  # longer side of every trial image (the paper showed 224 x 224): a light page
COLUMNS = ("time", "session", "viewer", "seed", "trial", "dataset", "image", "method", "natural")
HEADER = ",".join(COLUMNS) + "\n"
FALLBACK_ERRORS = (ColorlabError, OSError, LookupError, RuntimeError, ValueError)  # missing data and the like


@dataclass(frozen=True, eq=False)
class Trial:
    """One image to judge: a real photo (`method == REAL`) or a method's colours of its gray version."""

    image: str
    method: str
    rgb: np.ndarray = field(repr=False)  # (H, W, 3) uint8
    dataset: str = ""


# --- photos, methods and the sequence ------------------------------------------------------
def study_photos(profile: str, n_images: int | None, max_side: int = MAX_SIDE) -> study.EvalSet:
    """The profile's first evaluation set (`profiles.eval_sets`), `n_images` spread over it, shrunk to `max_side`;
    the smoke photos when that set is not on this machine."""
    from colorlab.playground import fit_side

    dataset, split = profiles.eval_sets(profile)[0]
    try:
        photos = study.load_eval_set(dataset, split, n_images)
    except FileNotFoundError as err:  # data.DatasetMissingError
        print(f"{dataset}/{split} is not here ({err}); using the smoke photos")
        photos = study.load_eval_set("smoke", "val", n_images)
    photos.rgb = [fit_side(rgb, max_side) for rgb in photos.rgb]
    return photos


def paper_methods(profile: str, seed: int = 0) -> dict[str, object]:
    """The paper's comparison: Iizuka et al. 2016 with and without global features (`experiments.get`).

    When they cannot be had (no training data here), two clearly named baselines stand in.
    """
    from colorlab import baselines, experiments, playground

    try:
        return {FULL: experiments.get(FULL, profile, seed=seed, progress=False),
                NO_GLOBAL: experiments.get(FULL, profile, seed=seed, use_global=False, progress=False)}
    except FALLBACK_ERRORS as err:
        print(f"no trained Iizuka et al. 2016 at {profile} ({type(err).__name__}: {err});\n"
              "FALLBACK: the gray and mean-ab baselines stand in (they have no paper value)")
        return {"baseline: gray": baselines.GrayBaseline(),
                "baseline: mean-ab": baselines.MeanChromaBaseline(playground.mean_ab(profile))}


def make_trials(photos: study.EvalSet, methods: Mapping[str, object]) -> list[Trial]:
    """Every photo as it is and as each method colours its gray version, in a fixed order (see `sequence`)."""
    trials = []
    for name, rgb in zip(photos.names, photos.rgb):
        trials.append(Trial(name, REAL, rgb, photos.dataset))
        trials += [Trial(name, m, study.colorize_u8(method, rgb)[0], photos.dataset) for m, method in methods.items()]
    return trials


def sequence(trials: Sequence[Trial], seed: int, viewer: str = "") -> list[Trial]:
    """The trials in a random order fixed by `seed` and the viewer's name: each student gets their own order."""
    rng = np.random.default_rng([seed, zlib.crc32(viewer.encode())])
    return [trials[i] for i in rng.permutation(len(trials))]


# --- answers: one durable line each ---------------------------------------------------------
def answers_path(path: str | Path = "", profile: str = "cpu", simulated: bool = False) -> Path:
    """Where answers go: `path` (relative = under `settings.results_dir()`), else
    results/naturalness/<profile>/answers.csv; simulated answers get their own file, never mixed with a class's."""
    if path:
        path = Path(path).expanduser()
        return path if path.is_absolute() else settings.results_dir() / path
    return settings.results_dir() / "naturalness" / profile / ("answers_simulated.csv" if simulated else "answers.csv")


def _line(values: Sequence) -> str:
    """One CSV line; text is put on one line (a newline in a viewer's name would split the row)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([" ".join(str(v).split()) for v in values])
    return buf.getvalue()


def append_answer(path: str | Path, row: Mapping) -> None:
    """Append one answer row (keys `COLUMNS`) to the CSV at `path`, durable when this returns.

    Why not `atomic.write_text` (rewrite the whole file, then rename)? Each answer would copy the whole file, and two
    sessions answering at once would each rename their own copy over the other's: the last one wins and answers are
    lost. One `os.write` of a whole line on an O_APPEND descriptor is placed at the end of the file by the kernel,
    so concurrent sessions interleave whole lines; `fsync` makes it survive a crash. A crash mid-write can leave at
    most a truncated last line, which `read_answers` skips and counts (and the next append starts a fresh line).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        head = HEADER if size == 0 else ("\n" if _last_byte(path, size) != b"\n" else "")
        os.write(fd, (head + _line([row[c] for c in COLUMNS])).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if size == 0 and hasattr(os, "O_DIRECTORY"):  # a new file: make its name durable too
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1)


class Session:
    """One viewer going through a sequence of trials; `answer` writes each answer to `path` as it is given."""

    def __init__(self, path: str | Path, trials: Sequence[Trial], viewer: str, seed: int = 0,
                 session: str | None = None):
        self.path, self.trials, self.viewer, self.seed = Path(path), list(trials), " ".join(viewer.split()), seed
        self.session = session or f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        self.position = 0

    @property
    def done(self) -> bool:
        return self.position >= len(self.trials)

    @property
    def current(self) -> Trial | None:
        return None if self.done else self.trials[self.position]

    def answer(self, natural: bool) -> dict:
        """Record the answer to the current trial and move to the next; returns the row written."""
        if self.done:
            raise IndexError(f"session {self.session} is over: all {len(self.trials)} trials answered")
        t = self.trials[self.position]
        row = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "session": self.session, "viewer": self.viewer or "anonymous", "seed": self.seed,
               "trial": self.position, "dataset": t.dataset, "image": t.image, "method": t.method,
               "natural": int(bool(natural))}
        append_answer(self.path, row)
        self.position += 1
        return row


def simulate(trials: Sequence[Trial], seed: int) -> list[int]:
    """Seeded stand-in answers for a headless run: "natural" with the paper's rate for the method (0.5 without one)."""
    rng = np.random.default_rng([seed, 8])
    rates = np.array([PAPER.get(t.method, (0.5,))[0] for t in trials])
    return (rng.random(len(trials)) < rates).astype(int).tolist()


def answer_all(session: Session, answers: str | Sequence[int]) -> Session:
    """Headless mode: `answers` = "auto" (`simulate`) or a list of 0/1, given to the trials in order."""
    values = simulate(session.trials, session.seed) if answers == "auto" else list(answers)
    if len(values) > len(session.trials) or any(v not in (0, 1) for v in values):
        raise ValueError(f"ANSWERS: 'auto' or at most {len(session.trials)} values of 0 or 1, got {answers!r}")
    for value in values:
        session.answer(bool(value))
    return session


def read_answers(path: str | Path) -> tuple[pd.DataFrame, int]:
    """All answers in the CSV (every session) -> (frame with `COLUMNS`, number of malformed rows skipped).

    A row is malformed when it has the wrong number of fields, a `natural` other than 0/1, a non-integer
    trial or seed, or no image or method (a line cut short by a crash, a hand edit). Header lines are not counted.
    """
    path = Path(path)
    rows, skipped = [], 0
    text = path.read_text(errors="replace") if path.exists() else ""
    for line in text.splitlines():
        if not line.strip() or line + "\n" == HEADER:
            continue
        fields = next(csv.reader([line]), [])
        row = dict(zip(COLUMNS, fields))
        if (len(fields) != len(COLUMNS) or row["natural"] not in ("0", "1") or not row["image"] or not row["method"]
                or not row["trial"].isdigit() or not row["seed"].lstrip("-").isdigit()):
            skipped += 1
            continue
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    return df.astype({"seed": int, "trial": int, "natural": int}), skipped


# --- the report ---------------------------------------------------------------------------------
def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n (scipy's `binomtest(...).proportion_ci`); NaN without answers."""
    if n == 0:
        return float("nan"), float("nan")
    from scipy import stats

    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def report(answers: pd.DataFrame, methods: Sequence[str] = ()) -> pd.DataFrame:
    """One row per method (real photos first, then `methods`, then any other method answered).

    naturalness: share of all answers that said natural, with its 95 % Wilson interval (answers treated as
    independent: a viewer who judges many images makes the interval somewhat too narrow). median_per_image:
    each image's share of natural, then the median over images: the statistic the paper reports (paper_median).
    """
    rows = []
    for method in dict.fromkeys([REAL, *methods, *answers["method"]]):
        g = answers[answers["method"] == method]
        k, n = int(g["natural"].sum()), len(g)
        low, high = wilson(k, n)
        paper, label = PAPER.get(method, (float("nan"), ""))
        rows.append({"method": method, "answers": n, "natural": k, "images": g["image"].nunique(),
                     "viewers": g["viewer"].nunique(), "naturalness": k / n if n else float("nan"),
                     "ci95_low": low, "ci95_high": high,
                     "median_per_image": g.groupby("image")["natural"].mean().median() if n else float("nan"),
                     "paper_median": paper,
                     "paper_note": f"Iizuka et al. 2016 Fig. 5 '{label}': median over images of per-image "
                                   "naturalness" if label else ""})
    return pd.DataFrame(rows)


def describe(answers: pd.DataFrame, skipped: int, path: str | Path) -> str:
    """One line: how many answers, viewers and sessions the report counts, and how many rows were skipped."""
    return (f"{len(answers)} answers from {answers['viewer'].nunique()} viewers in {answers['session'].nunique()} "
            f"sessions, {skipped} malformed rows skipped, in {path}")


def figure(table: pd.DataFrame, answers: pd.DataFrame, skipped: int = 0):
    """Naturalness per method: share natural with its 95 % Wilson interval, our median over images, the paper's."""
    plt = plots._pyplot()
    x = np.arange(len(table))
    share, low, high, median, paper = (100 * table[c].to_numpy(dtype=float) for c in
                                       ("naturalness", "ci95_low", "ci95_high", "median_per_image", "paper_median"))
    fig, ax = plt.subplots(figsize=(1.6 * len(table) + 3, 4))
    ax.errorbar(x, share, yerr=[share - low, high - share], fmt="o", color="C0", capsize=5,
                label="share of answers 'natural' (95 % Wilson interval)")
    ax.plot(x + 0.12, median, "s", mfc="none", color="C0", label="ours: median over images")
    ax.plot(x + 0.24, paper, "D", color="C3", label="Iizuka et al. 2016: median over images")
    ax.set_xticks(x, table["method"], rotation=15)
    ax.set_ylim(0, 105)
    ax.set_ylabel("naturalness (%)")
    datasets = ", ".join(sorted(answers["dataset"].unique())) or "no"
    note = f"; {skipped} malformed rows skipped" if skipped else ""
    simulated = set(answers["viewer"]) == {"simulated"}
    who = "SIMULATED viewer, no people" if simulated else f"{answers['viewer'].nunique()} viewer(s)"
    images = answers["image"].nunique()
    ax.set_title(f"Naturalness, 'Does this image look natural to you?': {images} {datasets} images,\n"
                 f"{len(answers)} answers from {who}{note}", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
