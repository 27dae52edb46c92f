"""`colorlab train --data FOLDER`: any of the three methods on a folder of your own photos, keyed by its content."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata

from colorlab import cli, images

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "class photos"
    (root / "trip").mkdir(parents=True)
    for i, photo in enumerate((skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket())):
        images.write_image(root / ("trip" if i % 2 else ".") / f"p{i}.png", photo[::4, ::4])
    images.write_image(root / "old_gray.png", np.repeat(skdata.camera()[::4, ::4, None], 3, axis=2))
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def train(folder, *extra):
    return cli.main(["train", "--model", "iizuka2016", "--profile", "smoke", "--data", str(folder), "--steps", "2",
                     "--no-progress", *extra])


def test_a_folder_trains_skipping_gray_and_broken_files_by_name(photos, capsys):
    assert train(photos) == 0
    out, err = capsys.readouterr()
    assert "skipped 2" in err and "broken.jpg" in err and "old_gray.png" in err and "trained on 4 photos" in err
    assert "run " in out


def test_runs_are_keyed_by_content_not_by_the_folder_name(photos, tmp_path, capsys):
    assert train(photos) == 0
    capsys.readouterr()
    moved = photos.rename(tmp_path / "renamed")
    assert train(moved, "--dry-run") == 0
    assert "trained: it would be loaded" in capsys.readouterr().out
    images.write_image(moved / "new.png", skdata.astronaut()[::5, ::5])
    assert train(moved, "--dry-run") == 0
    assert "not trained: it would be trained" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("model", ["koalarization2017", "cheng2015"])
def test_every_method_trains_on_a_folder(model, photos, capsys):
    assert cli.main(["train", "--model", model, "--profile", "smoke", "--data", str(photos), "--val", str(photos),
                     "--steps", "2", "--no-progress"]) == 0
    assert "broken.jpg" in capsys.readouterr().err


def test_a_missing_folder_is_one_line(tmp_path, capsys):
    assert train(tmp_path / "nowhere") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err and "no such folder" in err


def test_skipped_files_are_named_for_a_users_folder_only(capsys, tmp_path):
    from types import SimpleNamespace

    from colorlab.experiments import images
    from colorlab.profiles import DataSpec

    dec = SimpleNamespace(rgb=[0, 0], reasons={"old.png": "grayscale original"})
    images.report_skipped(DataSpec("miniplaces", "train", 64), dec)  # the decoder warned once, with the counts
    assert capsys.readouterr().err == ""
    images.report_skipped(DataSpec(str(tmp_path), "all", 64), dec)
    assert "trained on 2 photos, skipped 1: old.png (grayscale original)" in capsys.readouterr().err
