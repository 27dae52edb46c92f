"""`colorlab colorize`: colourize photos of any size with a trained model.

    colorlab colorize photo.jpg --out DIR                        # the shipped default model (weights/)
    colorlab colorize --model cheng2015 photos/ --out DIR        # that paper's shipped model
    colorlab colorize --model iizuka2016 --run 3f2a9c INPUT... --out DIR
    colorlab colorize --checkpoint weights.safetensors photos/ --out colorized/ [--global-from style.jpg]
    colorlab colorize photos/ --out DIR --gain 1.5                # chrominance x 1.5: more vivid (notebook 10)

Inputs are files or folders (searched recursively). Colour photos are first
turned into their grayscale version (`color.rgb_to_gray`), so a folder of
ground-truth photos can be colourized and then scored with `colorlab
evaluate`. Each output is the input's path relative to its folder (or its
name, for a file given directly) with `.png`, written atomically: an existing
output is either left whole or replaced whole.

Resolution: the model runs on the image at its own size (or, with
`--size N`, on a copy whose longer side is N) and its chrominance is
upsampled and joined with the input's full-resolution lightness, so no
detail of the photo is lost. Images are processed one at a time; each
model's `colorize` bounds its own memory (Cheng tiles its features; the
paper-size Iizuka net at 2048 x 2048 in fp32 peaked at 1.7 GiB resident for
the whole process, measured).

Unreadable files are skipped and listed at the end; the exit status is 1
when any file was skipped, 0 otherwise, and the other outputs are written.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from colorlab import color, images, models, profiles, readout
from colorlab.errors import ColorlabError


class ModelLoadError(ColorlabError, ValueError):
    """A model that cannot be loaded as asked; the message says why and what to pass."""


# --- loading ---------------------------------------------------------------------
def _prepare(module, model: nn.Module) -> nn.Module:
    model = model.eval()
    return module.fold_batchnorm(model)  # same outputs, fewer kernels


def _from_torch_file(path: Path, name: str | None) -> tuple[str, nn.Module]:
    from colorlab import runs

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle, zip and weights_only errors all mean "not loadable"
        raise ModelLoadError(f"{path}: not a loadable torch checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ModelLoadError(f"{path}: expected a dict with 'model' (state dict), 'config' and 'model_name'")
    saved_name = ckpt.get("model_name") or (ckpt.get("meta") or {}).get("model_name")  # final.pt / checkpoint.pt
    if name and saved_name and name != saved_name:
        raise ModelLoadError(f"{path} holds a {saved_name} model, not {name}")
    name = name or saved_name
    if not name:
        raise ModelLoadError(f"{path} does not say which model it holds: pass --model")
    module = models.get(name)
    config = ckpt.get("config", ckpt.get("model_config"))
    cfg = runs.config_from_dict(module.Config, config) if config is not None else module.Config()
    model = module.build(cfg)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise ModelLoadError(f"{path}: weights do not fit {name} with config {cfg}: {err}") from err
    return name, model


def load_model(name: str | None, checkpoint: str | Path | None = None, run: str | None = None,
               profile: str | None = None, random_weights: bool = False) -> nn.Module:
    """A model ready for inference (eval mode, BatchNorm folded where the model offers it).

    checkpoint: a torch file {"model": state_dict, "config": dict, "model_name": str, ...}
    (loaded with `weights_only=True`) or a safetensors file written by `colorlab runs
    export` (metadata: model_name, config JSON). run: a run key (>= 6 leading digits)
    under `settings.runs_dir()`. Neither: refused, unless `random_weights`, which
    builds `PRESETS[profile]` untrained (for timing and demos only).
    """
    from colorlab import runs, weights

    if checkpoint is not None and run is not None:
        raise ModelLoadError("give either a checkpoint or a run, not both")
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise ModelLoadError(f"{path}: no such checkpoint file")
        if path.suffix == ".safetensors":
            try:
                model, meta = weights.load_exported(path)
            except Exception as err:  # noqa: BLE001 - header, metadata and shape errors alike
                raise ModelLoadError(f"{path}: cannot load ({type(err).__name__}: {err})") from err
            if name and meta["model_name"] != name:
                raise ModelLoadError(f"{path} holds a {meta['model_name']} model, not {name}")
            name = meta["model_name"]
        else:
            name, model = _from_torch_file(path, name)
    elif run is not None:
        try:
            found = runs.load_run(name, run)
            model = found.model
        except ColorlabError as err:
            raise ModelLoadError(err.problem, path=err.path, fix=err.fix) from err
        name = found.model_name
    elif random_weights:
        if not name:
            raise ModelLoadError("--random-weights needs --model")
        model = models.get(name).build(models.get(name).PRESETS[profile or profiles.DEFAULT_PROFILE])
    else:
        raise ModelLoadError("no weights: pass --checkpoint FILE or --run KEY (see `colorlab runs list`); "
                             "--random-weights gives an untrained model, for timing only")
    return _prepare(models.get(name), model)


# --- one image ---------------------------------------------------------------------
def _takes(model, name: str) -> bool:
    """Whether `model.colorize` (or, for a readout of a model, the model's own) takes the keyword `name`."""
    if isinstance(model, readout.ReadoutModel):
        return model.takes(name)
    return name in inspect.signature(model.colorize).parameters


def _gray(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W), (H, W, 1) or (H, W, 3) -> gray (1, 1, H, W) in [0, 1]."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    x = color.to_float(image)  # (1, C, H, W)
    return x if x.shape[1] == 1 else color.rgb_to_gray(x)


def colorize_array(model: nn.Module, image: np.ndarray, size: int | None = None,
                   global_from: np.ndarray | None = None) -> np.ndarray:
    """One photo (uint8 gray or RGB, any size) -> colourized RGB uint8 (H, W, 3) at the same size.

    size: run the model on a copy whose longer side is `size` and join its
    chroma with the full-resolution L (faster on big photos; None = native size).
    global_from: a second photo whose global features set the colours (Iizuka
    sec. 4.5); only for models whose `colorize` takes `global_from`.
    """
    gray = _gray(image)
    kwargs = {}
    if global_from is not None:
        if not _takes(model, "global_from"):
            raise ValueError(f"{type(model).__name__} has no global features to take from another image")
        kwargs["global_from"] = _gray(global_from)
    with torch.inference_mode():
        net_gray = gray if size is None else color.to_working(gray, color.working_size(gray.shape[-2:], longer=size))
        rgb = model.colorize(net_gray, **kwargs)  # (1, 3, h, w)
        if net_gray is not gray:
            rgb = color.from_working(gray, color.rgb_to_lab(rgb)[:, 1:], "lab")  # (1, 3, H, W)
    return color.to_uint8(rgb)[0]


# --- many files --------------------------------------------------------------------
@dataclass
class Outcome:
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (input, why)


def plan(inputs: list[str | Path], out_dir: Path) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """(input, output) pairs for files and folders (recursive), and inputs that cannot be planned."""
    out_dir = Path(out_dir).resolve()
    pairs, problems, taken = [], [], {}
    for item in map(Path, inputs):
        if item.is_dir():
            found = [(p, p.relative_to(item).with_suffix(".png")) for p in images.list_images(item)
                     if out_dir not in p.resolve().parents]  # never re-colourize our own outputs
            if not found:
                problems.append((item, "folder holds no images"))
        elif item.exists():
            found = [(item, Path(item.name).with_suffix(".png"))]
        else:
            problems.append((item, "no such file or folder"))
            continue
        for src, rel in found:
            dst = out_dir / rel
            if dst in taken:
                problems.append((src, f"its output {dst} is already that of {taken[dst]}"))
                continue
            taken[dst] = src
            pairs.append((src, dst))
    return pairs, problems


def colorize_paths(model: nn.Module, inputs: list[str | Path], out_dir: Path, size: int | None = None,
                   global_from: np.ndarray | None = None, progress: bool = True) -> Outcome:
    """Colourize every image of `inputs` into `out_dir`; bad files are skipped, not fatal."""
    pairs, problems = plan(inputs, out_dir)
    outcome = Outcome(skipped=list(problems))
    for src, dst in tqdm(pairs, desc="colorize", unit="img", disable=not progress):
        try:
            rgb = colorize_array(model, images.read_rgb(src), size=size, global_from=global_from)
            dst.parent.mkdir(parents=True, exist_ok=True)
            outcome.written.append(images.write_image(dst, rgb))
        except (ValueError, RuntimeError, OSError, MemoryError) as err:  # ImageReadError is a ValueError
            outcome.skipped.append((src, err.problem if isinstance(err, images.ImageReadError) else f"{type(err).__name__}: {err}"))
    return outcome


# --- command line --------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (recursive)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--model", choices=sorted(models.MODULES),
                        help="model name (read from the checkpoint if omitted); alone, picks that paper's shipped file")
    parser.add_argument("--checkpoint", type=Path, help="weights: final.pt / checkpoint .pt or exported .safetensors")
    parser.add_argument("--run", help="weights of a trained run: its key (>= 6 digits, see `colorlab runs list`)")
    parser.add_argument("--profile", choices=("paper", *profiles.PROFILES), help="preset for --random-weights (default cpu)")
    parser.add_argument("--random-weights", action="store_true", help="untrained model: timing and demos only")
    parser.add_argument("--global-from", type=Path, metavar="IMAGE", help="take global features from IMAGE (Iizuka sec. 4.5)")
    parser.add_argument("--size", type=int, metavar="N", help="run the net with the longer side at N (output keeps full size)")
    parser.add_argument("--gain", type=float, default=1.0, metavar="G",
                        help="multiply the predicted chrominance by G (default 1: the model's own colours); notebook 10 "
                             "measures what a gain costs and buys (an extension, not a paper's method)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.size is not None and args.size < 8:
        print(f"colorlab colorize: --size must be at least 8, got {args.size}", file=sys.stderr)
        return 2
    try:
        chroma = readout.Readout(gain=args.gain)
    except ValueError as err:
        print(f"colorlab colorize: --gain: {err}", file=sys.stderr)
        return 2
    checkpoint = args.checkpoint
    if checkpoint is None and args.run is None and not args.random_weights:
        from colorlab import weights

        checkpoint = weights.shipped_path(args.model)  # verified against the manifest
        print(f"using the shipped model {checkpoint} (card: {checkpoint.with_suffix('.md')}); "
              "--run KEY or --checkpoint FILE picks another")
    try:
        model = load_model(args.model, checkpoint, args.run, args.profile, args.random_weights)
        style = None if args.global_from is None else images.read_rgb(args.global_from)
    except (ModelLoadError, KeyError, images.ImageReadError) as err:
        print(f"colorlab colorize: {err}", file=sys.stderr)
        return 2
    if args.random_weights:
        print("WARNING: untrained model (--random-weights): outputs are for timing/demo only", file=sys.stderr)
    if style is not None and not _takes(model, "global_from"):
        print(f"colorlab colorize: {type(model).__name__} cannot take global features from another image", file=sys.stderr)
        return 2
    if not chroma.is_identity:
        model = chroma.wrap(model)
    outcome = colorize_paths(model, args.inputs, args.out, size=args.size, global_from=style, progress=not args.quiet)
    print(f"wrote {len(outcome.written)} images to {args.out}")
    if outcome.skipped:
        print(f"skipped {len(outcome.skipped)}:", file=sys.stderr)
        for src, why in outcome.skipped:
            print(f"  {src}: {why}", file=sys.stderr)
        return 1
    return 0
