"""torchrun data parallel on CPU (gloo): 2 processes follow the 1-process loss curve of the same global batch.

What matches: without BatchNorm, every logged training loss, the validation loss
and the final weights agree to float rounding (the gradient of the mean over
the global batch is the mean of the per-process gradients). With BatchNorm in
training mode each CPU process normalises with its own half batch (torch
refuses SyncBatchNorm on CPU inside DDP), so there the run is only checked to
complete and write its files once.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent('''
    """One fit of a BatchNorm-free model on fixed synthetic data (run alone or under torchrun)."""
    import sys

    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    from colorlab import color, train


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1))

        def training_loss(self, batch):
            rgb = batch["rgb"]
            loss = F.mse_loss(self.body(color.rgb_to_gray(rgb)), color.rgb_to_lab(rgb)[:, 1:] / 100)
            return loss, {"color": loss.item()}


    def main(out):
        torch.set_num_threads(1)
        torch.manual_seed(0)
        rgb = np.random.default_rng(0).integers(0, 256, (44, 18, 18, 3), dtype=np.uint8)
        cfg = train.TrainConfig(steps=20, batch_size=8, optimizer="adam", lr=1e-2, crop=16, flip=True,
                                eval_every=10, ckpt_every=10, log_every=1, device="cpu")
        return train.fit(Net(), {"rgb": rgb}, {"rgb": rgb[:7]}, cfg, out, progress=False)


    if __name__ == "__main__":
        main(sys.argv[1])
''')


def torchrun(args, tmp_path, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_two_processes_follow_the_one_process_curve(tmp_path):
    script = tmp_path / "fit_script.py"
    script.write_text(SCRIPT)
    torchrun([str(script), str(tmp_path / "two")], tmp_path)

    spec = importlib.util.spec_from_file_location("fit_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = torch.get_num_threads()
    try:
        one = module.main(tmp_path / "one")
    finally:
        torch.set_num_threads(before)

    two = pd.read_csv(tmp_path / "two" / "history.csv")
    assert list(two["step"]) == list(range(1, 21)) == list(one.history["step"])
    np.testing.assert_allclose(two["train_loss"], one.history["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(two["val_loss"].dropna(), one.history["val_loss"].dropna(), rtol=1e-4)
    assert two["train_loss"].iloc[-5:].mean() < two["train_loss"].iloc[:5].mean()  # it did learn
    w2 = torch.load(tmp_path / "two" / "final.pt", weights_only=True)["model"]
    for k, v in one.model.state_dict().items():
        assert torch.allclose(v, w2[k], atol=1e-4), k
    ckpt = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and ckpt["step"] == 20
    assert not [p for p in (tmp_path / "two").iterdir() if p.name.endswith(".tmp")]


def test_colorlab_train_runs_under_torchrun(tmp_path):
    """`torchrun -m colorlab train` on the smoke dataset: Iizuka's smoke net (with BatchNorm), one run folder."""
    from colorlab import runs

    torchrun(["-m", "colorlab", "train", "--model", "iizuka2016", "--profile", "smoke", "--steps", "4",
              "--set", "eval_every=2", "--no-progress"], tmp_path)
    found = runs.find_runs("iizuka2016", steps=4)
    assert len(found) == 1 and found[0].done
    history = found[0].history
    assert list(history["step"]) == [1, 2, 3, 4] and np.isfinite(history["train_loss"]).all()
    assert history["val_loss"].notna().sum() == 2
    assert found[0].model.colorize(torch.rand(1, 1, 20, 28)).shape == (1, 3, 20, 28)
