"""Notebook 07, "try it yourself": pick a photo, pick colorizers, see them beside the truth.

The classroom kit. A *method* is one colorizer a student can choose:

- the two baselines every method must beat (`gray`, `mean-ab`, `colorlab.baselines`);
- every finished trained run under `settings.runs_dir()` (`colorlab runs list`),
  named `<model> <first 6 digits of its key>`;
- every weights file in a folder a teacher handed out (`colorlab runs export`
  writes them: `*.safetensors`; a run's `final.pt` works too), named by its file name.

Models are loaded on first use, exactly as `colorlab colorize` loads them
(`colorize.load_model`: eval mode, BatchNorm folded), and photos are colourised
through the same `colorize.colorize_array`, so the notebook and the command
line give the same pixels for the same weights file.

The ipywidgets page built on these is `colorlab.playground_ui.build_ui`.

Photos are shrunk so their longer side is at most `MAX_SIDE` pixels before
anything else (a phone photo of 12 megapixels would take a laptop a while, and
the figures show them at a few inches anyway); ground truth and predictions
are scored at that size. A grayscale photo (an old black-and-white print) has
no colour original: it is colourised and shown, and its scores are left empty.
"""

from __future__ import annotations

import inspect
import json
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import torch

from colorlab import baselines, color, experiments, images, metrics, models, plots, runs, settings, weights
from colorlab import data as datasets
from colorlab.commands import runs as run_table

MAX_SIDE = 512  # longer side of every photo, in pixels
WEIGHT_SUFFIXES = (".safetensors", ".pt")
BASELINES = ("gray", "mean-ab")
GRAY_TITLE, TRUTH_TITLE = "gray input", "ground truth"
MEAN_AB_SIZE = 64  # the decoded size whose training photos give the mean-ab baseline
METHOD_ERRORS = (ValueError, RuntimeError, OSError, LookupError, ImportError, TypeError)  # a method that fails is reported


# --- photos ------------------------------------------------------------------------------
def fit_side(rgb: np.ndarray, max_side: int | None = MAX_SIDE) -> np.ndarray:
    """Shrink (antialiased) so the longer side is at most `max_side`; smaller photos are kept as they are."""
    h, w = rgb.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    return images.resize(rgb, max(1, round(h * scale)), max(1, round(w * scale)))


def gallery(max_side: int | None = MAX_SIDE, kodak: bool = True) -> dict[str, np.ndarray]:
    """Bundled photos, name -> RGB uint8: the smoke photos (shipped inside scikit-image and
    scikit-learn, so always here) and Kodak24 when the data folder has it."""
    found = {s.name.split("/")[-1]: s.path for s in datasets.samples("smoke", "val")}
    if kodak:
        try:
            found.update({s.name: s.path for s in datasets.samples("kodak24", "all")})
        except datasets.DatasetMissingError:
            pass  # no Kodak24 on this laptop: the smoke photos alone
    return {name: fit_side(images.read_rgb(path), max_side) for name, path in found.items()}


def pick_photos(photos: Mapping[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """The named photos of a gallery, in order; an unknown name is an error that lists the known ones."""
    missing = [n for n in names if n not in photos]
    if missing:
        raise KeyError(f"no photo named {missing} in the gallery; choose among {sorted(photos)}")
    return {n: photos[n] for n in names}


def gallery_figure(photos: Mapping[str, np.ndarray], columns: int = 8, cell_inches: float = 1.5):
    """Thumbnails of the gallery with their names, to choose from."""
    names = list(photos)
    rows = [names[i:i + columns] for i in range(0, len(names), columns)]
    return plots.image_grid([[photos[n] for n in row] for row in rows], annotations=rows, cell_inches=cell_inches)


def _uploaded_files(value) -> list[tuple[str, bytes]]:
    """(name, bytes) of each file in a FileUpload value: ipywidgets 8 (tuple of dicts) or 7 (dict by name)."""
    if isinstance(value, Mapping):  # ipywidgets 7: {name: {"metadata": {...}, "content": bytes}}
        items = [{"name": name, **v} for name, v in value.items()]
    else:
        items = list(value or ())
    return [(str(item.get("name") or "upload"), bytes(item.get("content") or b"")) for item in items]


def read_upload_bytes(name: str, content: bytes, max_side: int | None = MAX_SIDE) -> np.ndarray:
    """An uploaded file's bytes -> RGB uint8, through the one safe reader (`images.read_rgb`).

    Raises `images.ImageReadError` naming the uploaded file (not the temporary copy) and the problem.
    """
    suffix = Path(name).suffix if Path(name).suffix.lower() in images.IMAGE_EXTENSIONS else ""
    with tempfile.TemporaryDirectory(prefix="colorlab-upload-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(content)
        try:
            return fit_side(images.read_rgb(path), max_side)
        except images.ImageReadError as err:
            raise images.ImageReadError(name, err.problem) from None


def read_upload(value, max_side: int | None = MAX_SIDE) -> np.ndarray:
    """The photo of a FileUpload widget's value (its first file) -> RGB uint8; a clear error otherwise."""
    files = _uploaded_files(value)
    if not files:
        raise ValueError("no file uploaded: choose a photo with the Upload button first")
    return read_upload_bytes(*files[0], max_side=max_side)


def add_uploads(photos: dict[str, np.ndarray], value, max_side: int | None = MAX_SIDE) -> tuple[list[str], list[str]]:
    """Read every uploaded file into `photos` -> (names added, one error line per file skipped)."""
    added, errors = [], []
    for name, content in _uploaded_files(value):
        try:
            photos[name] = read_upload_bytes(name, content, max_side)
            added.append(name)
        except images.ImageReadError as err:
            errors.append(str(err))
    return added, errors


# --- methods -----------------------------------------------------------------------------
@dataclass(eq=False)
class Method:
    """One colorizer a student can pick; the model is loaded on first use."""

    name: str
    kind: str  # "baseline" | "run" | "file"
    model_name: str | None  # colorlab.models name; None for a baseline or a file not yet read
    source: str  # "built in", a run key, or a file path
    about: str  # one line for the methods table
    load: Callable[[], torch.nn.Module] = field(repr=False)
    config: dict = field(default_factory=dict, repr=False)  # the model config, as saved
    _model: torch.nn.Module | None = field(default=None, repr=False)

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = self.load()
        return self._model


def supports_global_from(model) -> bool:
    """Whether a model's global features can come from another photo (Iizuka et al. 2016 sec. 4.5)."""
    colorize = getattr(model, "colorize", None)
    if colorize is None or "global_from" not in inspect.signature(colorize).parameters:
        return False
    return bool(getattr(getattr(model, "cfg", None), "use_global", True))


def _load_weights(name: str | None, **where) -> Callable[[], torch.nn.Module]:
    def load() -> torch.nn.Module:
        from colorlab import colorize

        return colorize.load_model(name, **where)

    return load


def _mean_ab_baseline(ab_mean: tuple[float, float] | None) -> Callable[[], torch.nn.Module]:
    def load() -> torch.nn.Module:
        return baselines.MeanChromaBaseline(ab_mean if ab_mean is not None else mean_ab("smoke"))

    return load


def mean_ab(profile: str, size: int = MEAN_AB_SIZE) -> tuple[float, float]:
    """Mean ab of the profile's training photos (the decoded cache training shares); the smoke
    photos when the profile's dataset is not on this machine."""
    from colorlab import profiles

    spec = profiles.train_data(profile, size)
    try:
        rgb = datasets.decoded(spec.name, spec.split, spec.size, spec.limit, progress=False).rgb
    except datasets.DatasetMissingError as err:
        print(f"mean-ab baseline: {spec.name} is not here ({err}); using the smoke photos' mean ab")
        rgb = datasets.decoded("smoke", "train", size, progress=False).rgb
    return baselines.mean_ab(rgb)


def _run_about(row: dict | None) -> str:
    """config summary, data, steps and validation loss of a `commands.runs.list_runs` row."""
    if row is None:
        return ""
    parts = [f"{row['config']}", f"data {row['data']}", f"{row['steps']} steps"]
    if pd.notna(row["val_loss"]):
        parts.append(f"val loss {row['val_loss']:.4g}")
    return ", ".join(parts)


def _file_method(path: Path) -> Method:
    """A weights file; a safetensors file's metadata is read now (cheap), its tensors on first use."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if "model_name" not in meta or "config" not in meta:
            raise ValueError("not a colorlab weights file (no model_name / config in its metadata)")
        data = json.loads(meta.get("data") or "{}").get("train") or {}
        trained = f"trained on {data['name']}/{data['split']}@{data['size']}" if data else "exported run"
        about = f"{trained}, run {meta.get('key', '')[:12]}, colorlab {meta.get('colorlab_version', '?')}"
        return Method(path.name, "file", meta["model_name"], str(path), about, _load_weights(None, checkpoint=path),
                      json.loads(meta["config"]))
    return Method(path.name, "file", None, str(path), "torch checkpoint", _load_weights(None, checkpoint=path))


def weights_files(weights_dir: str | Path) -> list[Path]:
    """Weights files directly in `weights_dir` (a relative path is taken from the repository root).

    The project's own `weights/` folder may be absent (a checkout before `make weights`): then there
    are none, and a note says how to get them; any other folder that is not there is an error.
    """
    folder = Path(weights_dir).expanduser()
    folder = folder if folder.is_absolute() else settings.REPO_ROOT / folder
    if not folder.is_dir() and folder == settings.REPO_ROOT / "weights":
        print(f"no shipped weights in {folder} (`make weights` builds them)")
        return []
    if not folder.is_dir():
        raise NotADirectoryError(f"WEIGHTS_DIR {folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file() and not p.name.startswith("."))


def available_methods(weights_dir: str | Path | None = None, ab_mean: tuple[float, float] | None = None) -> dict[str, Method]:
    """Every colorizer on this machine, name -> Method: baselines, finished runs, then weights files.

    ab_mean: the mean-ab baseline's colour (`mean_ab(profile)`); None = the smoke photos' mean,
    computed on first use. A weights file that cannot be read is left out with a warning.
    """
    methods = {
        "gray": Method("gray", "baseline", None, "built in", "zero chroma: the gray photo itself",
                       baselines.GrayBaseline),
        "mean-ab": Method("mean-ab", "baseline", None, "built in", "the training photos' mean ab on every pixel",
                          _mean_ab_baseline(ab_mean)),
    }
    listed = {(r["method"], r["key"]): r for r in run_table.list_runs().to_dict("records")}
    for model_name in models.MODULES:
        for run in runs.find_runs(model_name, done=True):
            name = method_name(run)
            methods[name] = Method(name, "run", model_name, run.key, _run_about(listed.get((model_name, run.key[:12]))),
                                   _load_weights(model_name, run=run.key), dict(run.model_config))
    for path in weights_files(weights_dir) if weights_dir else []:
        try:
            methods[path.name] = _file_method(path)
        except Exception as err:  # noqa: BLE001 - safetensors, JSON and OS errors alike mean "not a weights file"
            warnings.warn(f"{path}: skipped, {type(err).__name__}: {err}", stacklevel=2)
    return methods


def select(methods: Mapping[str, Method], names: list[str]) -> dict[str, Method]:
    """The named methods, in order; an unknown name is an error that lists the known ones."""
    missing = [n for n in names if n not in methods]
    if missing:
        raise KeyError(f"no method named {missing}; choose among {list(methods)} (see the methods table)")
    return {n: methods[n] for n in names}


def methods_table(methods: Mapping[str, Method]) -> pd.DataFrame:
    """One row per method: name, kind, model, source, about."""
    return pd.DataFrame([{"method": m.name, "kind": m.kind, "model": m.model_name or "", "source": m.source,
                          "about": m.about} for m in methods.values()],
                        columns=["method", "kind", "model", "source", "about"])


def _is_preset(config: dict, model_name: str, profile: str) -> bool:
    preset = models.get(model_name).PRESETS.get(profile)
    return preset is not None and json.loads(json.dumps(asdict(preset), default=str)) == config  # as config.json has it


def default_selection(methods: Mapping[str, Method], profile: str, include: tuple[str, ...] = (),
                      seed: int | None = None) -> list[str]:
    """What to show without asking: the baselines, `include` (e.g. the demo run), one run of each other model
    trained with the profile's preset, and every weights file. That run is the preset's own run at `seed` when it
    is here (the same one however many other runs the store holds), else the newest run with the preset's network."""
    picked = [*BASELINES, *include]
    shown = {methods[n].model_name for n in include if n in methods}
    chosen, candidates = {}, Counter()
    for m in methods.values():  # runs are listed oldest first
        if m.kind == "run" and m.model_name not in shown and _is_preset(m.config, m.model_name, profile):
            chosen[m.model_name] = m.name
            candidates[m.model_name] += 1
    if seed is not None:  # a key is worked out only where there is a choice (Koalarization's may embed photos)
        own = {m.source: m.name for m in methods.values() if m.kind == "run"}
        for model_name in [n for n in chosen if candidates[n] > 1]:
            chosen[model_name] = own.get(experiments.preset_key(model_name, profile, seed), chosen[model_name])
    picked += [*chosen.values(), *(m.name for m in methods.values() if m.kind == "file")]
    return [name for name in dict.fromkeys(picked) if name in methods]


def demo_run(profile: str, seed: int = 0, model_name: str = "iizuka2016") -> runs.Run:
    """A trained run to show: the profile's preset run (loaded when cached, trained otherwise).

    Without the profile's dataset (a student laptop with no MiniPlaces) the smoke preset is
    trained instead: seconds, on photos that ship with the Python packages.
    """
    try:
        return experiments.get(model_name, profile, seed=seed, progress=False)
    except datasets.DatasetMissingError as err:
        if profile == "smoke":
            raise
        print(f"no {profile} run of {model_name} can be trained here ({err});\ntraining the smoke preset instead")
        return experiments.get(model_name, "smoke", seed=seed, progress=False)


def demo(profile: str, seed: int = 0, model_name: str = "iizuka2016", weights_dir: str | Path | None = None) -> str:
    """The name (in `available_methods`) of the colorizer the lesson demonstrates, training only when
    nothing is there: the profile's run when it is already trained, else the shipped file of
    `model_name` in `weights_dir`, else `demo_run` (trains; the smoke preset without the dataset)."""
    recipe = experiments.recipe(model_name, profile, seed=seed, progress=False)
    if runs.status(recipe)[1] == "trained":
        return method_name(runs.get(recipe, progress=False))
    if weights_dir:
        shipped = next((p for p in weights_files(weights_dir) if p.name == weights.SHIPPED.get(model_name)), None)
        if shipped is not None:
            print(f"no trained {profile} run of {model_name} here: using the shipped {shipped.name} (no training)")
            return shipped.name
    return method_name(demo_run(profile, seed, model_name))


def method_name(run: runs.Run) -> str:
    """The name `available_methods` gives a run."""
    return f"{run.model_name} {run.key[:6]}"


# --- colourising and comparing ------------------------------------------------------------------
def colorize_photo(model, rgb: np.ndarray, global_from: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The gray version of `rgb` colourised as `colorlab colorize` does -> (RGB uint8, seconds)."""
    from colorlab import colorize

    start = time.perf_counter()
    out = colorize.colorize_array(model, rgb, global_from=global_from)
    return out, time.perf_counter() - start


def gray_of(rgb: np.ndarray) -> np.ndarray:
    """The grayscale photo a colorizer sees, as (H, W) uint8."""
    return color.to_uint8(color.rgb_to_gray(color.to_float(rgb)))[0, ..., 0]


SCORES = ("psnr", "ssim", "auc", "colorfulness_ratio")


def _scores(pred: np.ndarray, truth: np.ndarray | None) -> dict[str, float]:
    """The study's metrics against the truth (NaN without one), and the prediction's own colourfulness."""
    scores = metrics.image_metrics(pred, truth) if truth is not None else dict.fromkeys(SCORES, float("nan"))
    return {**scores, "colorfulness": metrics.colorfulness(pred)}


def score_note(row: Mapping) -> str:
    """Two short lines of metrics under an image."""
    if row.get("note"):
        return "failed: see the table"
    if not np.isfinite(row.get("auc", np.nan)):
        return f"colourfulness {row['colorfulness']:.1f}\n(no colour original)"
    return (f"PSNR {row['psnr']:.1f} dB  SSIM {row['ssim']:.2f}\n"
            f"AuC {row['auc']:.3f}  colour x{row['colorfulness_ratio']:.2f}")


def _method_model(method):
    return method.model if isinstance(method, Method) else method


def compare_photos(methods: Mapping[str, object], photos: Mapping[str, np.ndarray], cell_inches: float = 1.7,
                   title: str | None = None):
    """Every method on every photo -> (figure, metrics table).

    Figure: one row per photo: gray input | each method | ground truth, the
    metrics under each prediction. Table: photo, method, psnr, ssim, auc,
    colorfulness_ratio, colorfulness (of the prediction), seconds, note (why a
    method failed, else empty). A gray photo has no ground truth: its scores are NaN.
    """
    if not methods or not photos:
        raise ValueError("compare needs at least one method and one photo")
    rows, grid, notes = [], [], []
    for photo, rgb in photos.items():
        truth = None if images.is_grayscale(rgb) else rgb
        cells = [gray_of(rgb)]
        line = [f"{rgb.shape[1]} x {rgb.shape[0]} px"]
        for name, method in methods.items():
            try:
                pred, seconds = colorize_photo(_method_model(method), rgb)
                row = {"photo": photo, "method": name, **_scores(pred, truth), "seconds": seconds, "note": ""}
            except METHOD_ERRORS as err:
                pred = np.full_like(rgb, 230)  # a blank tile where the method failed
                row = {"photo": photo, "method": name, "seconds": float("nan"), "note": f"{type(err).__name__}: {err}"}
            rows.append(row)
            cells.append(pred)
            line.append(score_note(row))
        cells.append(truth if truth is not None else np.full_like(rgb, 230))
        line.append(f"colourfulness {metrics.colorfulness(rgb):.1f}" if truth is not None else "no colour original")
        grid.append(cells)
        notes.append(line)
    fig = plots.image_grid(grid, row_titles=list(photos), col_titles=[GRAY_TITLE, *methods, TRUTH_TITLE],
                           annotations=notes, cell_inches=cell_inches, title=title)
    columns = ["photo", "method", "psnr", "ssim", "auc", "colorfulness_ratio", "colorfulness", "seconds", "note"]
    return fig, pd.DataFrame(rows).reindex(columns=columns)


def compare(methods: Mapping[str, object], rgb: np.ndarray, name: str = "photo", cell_inches: float = 2.4):
    """`compare_photos` for one photo -> (figure, metrics table with one row per method)."""
    return compare_photos(methods, {name: rgb}, cell_inches)


def restyle(model, rgb: np.ndarray, style_rgb: np.ndarray) -> np.ndarray:
    """`rgb`'s gray photo colourised with the global features of `style_rgb`'s gray photo
    (Iizuka et al. 2016 sec. 4.5); the lightness stays that of `rgb`."""
    if not supports_global_from(model):
        raise ValueError(f"{type(model).__name__} has no global features to take from another photo "
                         "(style transfer needs Iizuka et al. 2016 with use_global=True)")
    return colorize_photo(model, rgb, global_from=style_rgb)[0]


def style_transfer(model, rgb: np.ndarray, styles: np.ndarray | Mapping[str, np.ndarray], cell_inches: float = 2.4,
                   title: str | None = None):
    """Swap the global features (Iizuka et al. 2016 sec. 4.5) -> (figure, table).

    One row per style photo: gray input | its own colours | the style photo (the
    net sees only its gray version) | the input with the style's global features.
    The table says how far each restyled result moved from the input's own
    colours (mean ab distance) and how colourful it is.
    """
    styles = {"style": styles} if isinstance(styles, np.ndarray) else dict(styles)
    own = colorize_photo(model, rgb)[0]
    grid, notes, rows = [], [], []
    for name, style in styles.items():
        out = restyle(model, rgb, style)
        moved = float(metrics.ab_error(out, own).mean())
        rows.append({"style": name, "mean_ab_change": moved, "colorfulness": metrics.colorfulness(out),
                     "own_colorfulness": metrics.colorfulness(own)})
        grid.append([gray_of(rgb), own, style, out])
        notes.append(["", f"colourfulness {metrics.colorfulness(own):.1f}", "",
                      f"colourfulness {metrics.colorfulness(out):.1f}\nab moved {moved:.1f} on average"])
    titles = [GRAY_TITLE, "own global features", "style photo (net sees it gray)", "style's global features"]
    fig = plots.image_grid(grid, row_titles=[f"style: {n}" for n in styles], col_titles=titles, annotations=notes,
                           cell_inches=cell_inches, title=title)
    return fig, pd.DataFrame(rows)
